#include "save_image.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "sha256.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace vmupdate {
namespace {

// libvirt's src/qemu/qemu_saveimage.h: a 16-byte magic, then 19 native-endian
// uint32 (version, data_len, was_running, format, cookieOffset, 14 unused), then
// data_len bytes of domain XML and cookie (zero padded), then QEMU's stream.
// libvirt writes the "Part" magic first and the "Save" magic only once the whole
// image is on disk.
constexpr std::string_view magic_complete = "LibvirtQemudSave";
constexpr std::string_view magic_partial = "LibvirtQemudPart";
constexpr std::size_t header_size = 16 + 19 * 4;
// The XML of a domain with many devices stays far below this.
constexpr std::uint32_t max_data_len = 8u << 20;
// QEMU's stream opens with "QEVM", its version and the configuration section
// (machine type, then the validated capabilities): all within a few hundred bytes.
constexpr std::string_view qemu_magic = "QEVM";
constexpr std::size_t stream_window = 64 * 1024;
constexpr std::string_view capability = "x-ignore-shared";

std::uint32_t u32_at(std::string_view s, std::size_t offset) {
    std::uint32_t v{};
    std::memcpy(&v, s.data() + offset, sizeof v);
    return v;
}

} // namespace

Result<SaveImageFacts> parse_save_image(std::string_view head, std::uint64_t size,
                                        const std::string& object) {
    if (head.size() < header_size)
        return fail(Errc::verify, object, "not a libvirt save image", "shorter than its header");
    SaveImageFacts facts;
    facts.size = size;
    std::string_view magic = head.substr(0, 16);
    if (magic == magic_complete)
        facts.complete = true;
    else if (magic != magic_partial)
        return fail(Errc::verify, object, "not a libvirt save image", "unknown magic");
    std::uint32_t data_len = u32_at(head, 20);
    std::uint32_t format = u32_at(head, 28);
    if (data_len > max_data_len)
        return fail(Errc::verify, object, "not a libvirt save image",
                    "its domain XML would be " + std::to_string(data_len) + " bytes long");
    facts.compressed = format != 0;
    if (facts.compressed)
        return facts;
    std::size_t stream = header_size + data_len;
    if (stream >= head.size())
        return facts;
    std::string_view rest = head.substr(stream, stream_window);
    // Zero padding may sit between the XML and the stream.
    auto at = rest.find(qemu_magic);
    if (at == std::string_view::npos)
        return facts;
    facts.ignore_shared = rest.substr(at).find(capability) != std::string_view::npos;
    return facts;
}

namespace {

// The image, never through a link in its last component (the directory above is
// in libvirt-qemu's tree) and only if it is a regular file (a FIFO or a device
// there would block or never end the reads below); with its size at open time.
Result<std::pair<Fd, std::uint64_t>> open_image(const std::string& path) {
    int raw;
    do
        raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    while (raw < 0 && errno == EINTR);
    Fd fd(raw);
    if (!fd) {
        if (errno == ENOENT)
            return fail(Errc::not_found, path, "cannot read the managed-save image",
                        std::strerror(ENOENT));
        return fail_errno(errno, path, "cannot read the managed-save image");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return fail_errno(errno, path, "cannot read the managed-save image");
    if (!S_ISREG(st.st_mode))
        return fail(Errc::verify, path, "cannot read the managed-save image", "not a regular file");
    return std::pair{std::move(fd), static_cast<std::uint64_t>(st.st_size)};
}

} // namespace

Result<std::string> image_sha256(const std::string& path, bool sync) {
    auto image = open_image(path);
    if (!image)
        return std::unexpected(image.error());
    auto& [fd, size] = *image;
    if (sync && ::fsync(fd.get()) != 0)
        return fail_errno(errno, path, "cannot flush to disk");
    // Bounded by the size at open: a file that grows meanwhile is not followed.
    Sha256 sha;
    std::string buf(1 << 16, '\0');
    std::uint64_t done = 0;
    while (done < size) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - done));
        ssize_t n = ::pread(fd.get(), buf.data(), want, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(errno, path, "cannot read the managed-save image");
        if (n == 0)
            return fail(Errc::verify, path, "cannot read the managed-save image",
                        "it shrank while being read");
        sha.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        done += static_cast<std::uint64_t>(n);
    }
    return sha.hex_digest();
}

Result<SaveImageFacts> read_save_image(const std::string& path) {
    auto image = open_image(path);
    if (!image)
        return std::unexpected(image.error());
    auto& [fd, size] = *image;
    std::string head;
    // The header first, then only as much as its data_len says the XML takes.
    // Each read goes on where the last stopped: nothing else reads this descriptor.
    auto read_up_to = [&](std::uint64_t want) -> Result<void> {
        want = std::min(want, size);
        std::size_t had = head.size();
        if (want <= had)
            return {};
        head.resize(static_cast<std::size_t>(want));
        auto got = read_full(fd.get(), head.data() + had, head.size() - had, path,
                             "cannot read the managed-save image");
        if (!got)
            return std::unexpected(got.error());
        head.resize(had + *got);
        return {};
    };
    if (auto ok = read_up_to(header_size); !ok)
        return std::unexpected(ok.error());
    if (head.size() == header_size) {
        std::uint64_t data_len = std::min(u32_at(head, 20), max_data_len);
        if (auto ok = read_up_to(header_size + data_len + stream_window); !ok)
            return std::unexpected(ok.error());
    }
    return parse_save_image(head, size, path);
}

Result<ImageCheck> check_image_for_restore(const Manifest& m) {
    auto facts = read_save_image(m.image);
    if (!facts)
        return std::unexpected(facts.error());
    auto refuse = [&](std::string why) {
        return fail(Errc::verify, m.image, "managed-save image", why);
    };
    if (!facts->complete)
        return refuse("libvirt did not finish writing it (its header says partial)");
    ImageCheck out{facts->size, {}, {}};
    if (!m.image_sha256.empty()) {
        // The size first: hashing a stock full-RAM image takes seconds.
        if (facts->size != m.image_size)
            return refuse("it is " + std::to_string(facts->size) + " bytes, vmupdate saved " +
                          std::to_string(m.image_size));
        auto sum = image_sha256(m.image, false);
        if (!sum)
            return std::unexpected(sum.error());
        if (*sum != m.image_sha256)
            return refuse("its checksum differs from the one vmupdate recorded");
        out.sha256 = *sum;
        return out;
    }
    if (m.state != SaveState::saving)
        return refuse("no checksum was recorded for it");
    if (facts->compressed)
        return refuse("it is compressed (save_image_format in qemu.conf): vmupdate cannot tell "
                      "whether QEMU wrote it with x-ignore-shared");
    if (!facts->ignore_shared)
        return refuse("no QEMU migration stream found in it");
    if (!*facts->ignore_shared)
        return refuse("QEMU wrote it without x-ignore-shared: it is a stock managed save");
    auto sum = image_sha256(m.image, false);
    if (!sum)
        return std::unexpected(sum.error());
    out.sha256 = *sum;
    out.unverified =
        "the save was interrupted before vmupdate recorded the image's checksum; "
        "verified: libvirt completed the image and QEMU wrote it with x-ignore-shared; "
        "not verifiable: its checksum";
    return out;
}

} // namespace vmupdate
