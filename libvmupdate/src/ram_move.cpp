#include "ram_move.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <linux/falloc.h>
#include <nmmintrin.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace vmupdate {
namespace {

constexpr std::size_t page = 4096;

std::array<std::uint32_t, 256> crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
    return t;
}

std::uint32_t crc32c_table(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    static const auto table = crc_table();
    while (n-- > 0)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

__attribute__((target("sse4.2"))) std::uint32_t
crc32c_sse42(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    std::uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    auto c32 = static_cast<std::uint32_t>(c);
    for (; n > 0; --n)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}

// A full pread or pwrite (`io`) at an offset, retrying EINTR and short
// transfers; false with errno set (EIO for an early end of file).
template <typename Io, typename Buf>
bool transfer_all(Io io, int fd, Buf* buf, size_t n, off_t at) {
    while (n > 0) {
        ssize_t r = io(fd, buf, n, at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return false;
        }
        buf += r;
        n -= static_cast<size_t>(r);
        at += r;
    }
    return true;
}

bool zero_page(const char* p, std::size_t len) {
    static const std::array<char, page> zero{};
    return std::memcmp(p, zero.data(), len) == 0;
}

// Writes the runs of non-zero pages of buf[0, n) to `fd` at `at`; zero pages
// stay holes, as in QEMU's file.
bool write_data(int fd, const char* buf, std::size_t n, off_t at) {
    std::size_t i = 0;
    while (i < n) {
        std::size_t len = std::min(page, n - i);
        if (zero_page(buf + i, len)) {
            i += len;
            continue;
        }
        std::size_t j = i + len;
        while (j < n && !zero_page(buf + j, std::min(page, n - j)))
            j += std::min(page, n - j);
        if (!transfer_all(::pwrite, fd, buf + i, j - i, at + static_cast<off_t>(i)))
            return false;
        i = j;
    }
    return true;
}

bool punch(int fd, off_t at, std::size_t n) {
    return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, static_cast<off_t>(n)) ==
           0;
}

std::string hex8(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i, v >>= 4)
        s[static_cast<std::size_t>(i)] = digits[v & 0xf];
    return s;
}

// Moves the chunks marked in `moved` from `dst` back into `src`: each is read,
// freed in `dst`, then written into `src`, so the two never need the chunk's
// memory twice (on one tmpfs that may be full).
Result<void> move_back(int src, int dst, std::uint64_t size, const std::vector<bool>& moved,
                       std::vector<char>& buf, const std::string& what) {
    for (std::size_t k = 0; k < moved.size(); ++k) {
        if (!moved[k])
            continue;
        auto at = static_cast<off_t>(k * ram_chunk);
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(ram_chunk, size - k * ram_chunk));
        if (!transfer_all(::pread, dst, buf.data(), n, at) ||
            (!punch(dst, at, n) && errno != EOPNOTSUPP) || !write_data(src, buf.data(), n, at))
            return fail(Errc::ram_lost, what,
                        "cannot move the RAM written so far back into the handed-over memory",
                        std::strerror(errno) + std::string(" at byte ") + std::to_string(at));
    }
    return {};
}

} // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) {
    static const bool hw = __builtin_cpu_supports("sse4.2");
    const auto* p = static_cast<const unsigned char*>(data);
    return ~(hw ? crc32c_sse42(~crc, p, n) : crc32c_table(~crc, p, n));
}

Result<std::string> chunk_sums(int fd, std::uint64_t size, const std::string& what) {
    std::vector<char> buf(ram_chunk);
    std::string out;
    out.reserve(static_cast<std::size_t>((size + ram_chunk - 1) / ram_chunk * 8));
    // RAM a guest never touched is a hole: its chunks are not read (the sum of
    // a zero chunk is known), which keeps the pass short for sparse guests.
    const std::vector<char> zeros(ram_chunk, '\0');
    const std::string zero_sum = hex8(crc32c(0, zeros.data(), zeros.size()));
    // The data segment at or after the current chunk, [data, data_end): found
    // once per segment (each SEEK_HOLE scans the segment; per chunk it would
    // scan the rest of the file each time).
    std::uint64_t data = 0, data_end = 0;
    for (std::uint64_t off = 0; off < size; off += ram_chunk) {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(ram_chunk, size - off));
        if (off >= data_end) {
            off_t d = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
            data = d < 0 ? size : static_cast<std::uint64_t>(d);
            off_t h = data >= size ? -1 : ::lseek(fd, static_cast<off_t>(data), SEEK_HOLE);
            data_end = h < 0 ? size : static_cast<std::uint64_t>(h);
        }
        if (data >= off + n) {
            out += n == ram_chunk ? zero_sum : hex8(crc32c(0, zeros.data(), n));
            continue;
        }
        // A chunk without holes is read through a mapping (half the time of
        // pread's copy); one with holes by pread, which, unlike a fault on a
        // mapping, allocates nothing for them.
        if (data <= off && data_end >= off + n) {
            void* map = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(off));
            if (map != MAP_FAILED) {
                (void)::madvise(map, n, MADV_POPULATE_READ);
                out += hex8(crc32c(0, map, n));
                ::munmap(map, n);
                continue;
            }
        }
        if (!transfer_all(::pread, fd, buf.data(), n, static_cast<off_t>(off)))
            return fail_errno(errno, what, "cannot read the RAM to checksum it");
        out += hex8(crc32c(0, buf.data(), n));
    }
    return out;
}

Result<void> move_ram(int src, int dst, std::uint64_t size, std::string_view sums,
                      const std::string& what, const std::function<Result<void>()>& commit) {
    const std::size_t chunks = static_cast<std::size_t>((size + ram_chunk - 1) / ram_chunk);
    if (!sums.empty() && sums.size() != chunks * 8)
        return fail(Errc::verify, what, "cannot check the RAM handed over",
                    "its checksums cover " + std::to_string(sums.size() / 8) + " chunks, not " +
                        std::to_string(chunks));
    std::vector<char> buf(ram_chunk);
    std::vector<bool> moved(chunks, false);
    auto undo = [&](Error e) -> Result<void> {
        if (auto back = move_back(src, dst, size, moved, buf, what); !back) {
            back.error().cause += "; after: " + e.message();
            return std::unexpected(back.error());
        }
        return std::unexpected(e);
    };
    for (std::size_t k = 0; k < chunks; ++k) {
        auto at = static_cast<off_t>(k * ram_chunk);
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(ram_chunk, size - k * ram_chunk));
        if (!transfer_all(::pread, src, buf.data(), n, at))
            return undo(fail_errno(errno, what, "cannot read the RAM handed over").error());
        if (!sums.empty() && hex8(crc32c(0, buf.data(), n)) != sums.substr(k * 8, 8))
            return undo(Error{Errc::verify, what, "the RAM handed over is not the guest's",
                              "chunk " + std::to_string(k) + " (byte " + std::to_string(at) +
                                  ") does not match its checksum taken at hand-over"});
        if (!write_data(dst, buf.data(), n, at))
            return undo(fail_errno(errno, what, "cannot write the RAM back").error());
        // Freed only now that it is written; a sealed source keeps its pages
        // until it is closed, which is no loss either.
        moved[k] = punch(src, at, n);
    }
    if (auto ok = commit(); !ok)
        return undo(ok.error());
    return {};
}

} // namespace vmupdate
