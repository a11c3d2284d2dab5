#include "vmupdate/ram.hpp"

#include "fsutil.hpp"

#include <cerrno>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace vmupdate {
namespace {

constexpr size_t short_name_max = 20; // libvirt's VIR_DOMAIN_SHORT_NAME_MAX

struct Identity {
    std::uint64_t device, inode, size;
};

Result<Identity> identity(const std::string& path, std::string_view domain, std::string_view what) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0)
        return fail_errno(errno, std::string(domain), std::string(what) + " " + path);
    if (!S_ISREG(st.st_mode))
        return fail(Errc::verify, std::string(domain), std::string(what) + " " + path,
                    "not a regular file");
    return Identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                    static_cast<std::uint64_t>(st.st_size)};
}

Result<void> matches(const RamFile& f, const Identity& id, std::string_view domain,
                     const std::string& path) {
    if (id.device != f.device || id.inode != f.inode)
        return fail(Errc::verify, std::string(domain), "RAM file " + path,
                    "is not the file saved with the domain (device/inode differ)");
    if (id.size != f.size)
        return fail(Errc::verify, std::string(domain), "RAM file " + path,
                    "size is " + std::to_string(id.size) + " bytes, saved with " +
                        std::to_string(f.size));
    return {};
}

// RAM file names come from libvirt's directory listing or a manifest; never let
// one name a path outside the directory.
bool safe_file_name(std::string_view n) {
    return !n.empty() && n != "." && n != ".." && n.find('/') == std::string_view::npos;
}

} // namespace

std::string libvirt_short_name(int id, std::string_view name) {
    // Cut at 20 characters, not bytes, as libvirt does for multibyte names.
    size_t bytes = 0, chars = 0;
    while (bytes < name.size() && chars < short_name_max) {
        auto c = static_cast<unsigned char>(name[bytes]);
        size_t len = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 1;
        bytes += len;
        ++chars;
    }
    return std::to_string(id) + "-" + std::string(name.substr(0, std::min(bytes, name.size())));
}

std::string domain_ram_dir(std::string_view backing_dir, int id, std::string_view name) {
    return std::string(backing_dir) + "/" + libvirt_short_name(id, name);
}

Result<std::string> preserved_dir(std::string_view backing_dir, std::string_view uuid) {
    if (!is_canonical_uuid(uuid))
        return fail(Errc::invalid_input, std::string(uuid), "invalid domain UUID",
                    "not a canonical UUID");
    // libvirt names its per-domain directories "<id>-<name>": a name that does not
    // start with a number can never collide with one.
    return std::string(backing_dir) + "/vmupdate/" + std::string(uuid);
}

Result<std::vector<RamFile>> preserve_ram(const std::string& ram_dir,
                                          const std::string& preserved) {
    std::string parent = parent_dir(preserved);
    if (auto ok = make_dir(parent, 0700); !ok)
        return std::unexpected(ok.error());
    if (auto ok = make_dir(preserved, 0700); !ok)
        return std::unexpected(ok.error());

    std::vector<RamFile> held;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(ram_dir, ec)) {
        std::string name = entry.path().filename().string();
        // Not through symbolic links: the directory is the QEMU user's, and a link
        // there is not RAM (identity() would refuse it and preserve nothing).
        std::error_code type_ec;
        if (entry.is_symlink(type_ec) || !entry.is_regular_file(type_ec) || !safe_file_name(name))
            continue;
        std::string src = ram_dir + "/" + name;
        std::string dst = preserved + "/" + name;
        auto id = identity(src, ram_dir, "cannot inspect RAM file");
        if (!id)
            return std::unexpected(id.error());
        struct stat st {};
        if (lstat(dst.c_str(), &st) == 0) {
            if (static_cast<std::uint64_t>(st.st_ino) == id->inode &&
                static_cast<std::uint64_t>(st.st_dev) == id->device) {
                held.push_back(RamFile{name, dst, id->device, id->inode, id->size});
                continue;
            }
            // A link to the RAM of an earlier run of the domain.
            if (unlink(dst.c_str()) != 0)
                return fail_errno(errno, ram_dir, "cannot replace stale RAM link " + dst);
        }
        if (link(src.c_str(), dst.c_str()) != 0)
            return fail_errno(errno, ram_dir, "cannot link RAM file " + src + " to " + dst);
        held.push_back(RamFile{name, dst, id->device, id->inode, id->size});
    }
    if (ec)
        return fail(Errc::system, ram_dir, "cannot list RAM directory", ec.message());
    if (held.empty())
        return fail(Errc::verify, ram_dir, "cannot preserve RAM",
                    "the directory holds no RAM file");
    if (auto ok = fsync_path(preserved); !ok)
        return std::unexpected(ok.error());
    return held;
}

Result<void> verify_preserved(std::string_view domain, const std::vector<RamFile>& ram) {
    if (ram.empty())
        return fail(Errc::verify, std::string(domain), "cannot verify preserved RAM",
                    "no RAM file recorded");
    for (const auto& f : ram) {
        auto id = identity(f.preserved, domain, "preserved RAM file");
        if (!id)
            return std::unexpected(id.error());
        if (auto ok = matches(f, *id, domain, f.preserved); !ok)
            return ok;
    }
    return {};
}

Result<void> verify_in_use(std::string_view domain, const std::string& ram_dir,
                           const std::vector<RamFile>& ram) {
    for (const auto& f : ram) {
        if (!safe_file_name(f.name))
            return fail(Errc::invalid_input, std::string(domain), "invalid RAM file name", f.name);
        std::string path = ram_dir + "/" + f.name;
        auto id = identity(path, domain, "RAM file");
        if (!id)
            return std::unexpected(id.error());
        if (auto ok = matches(f, *id, domain, path); !ok)
            return ok;
    }
    return {};
}

Result<void> reinstate_ram(std::string_view domain, const std::vector<RamFile>& ram,
                           const std::string& ram_dir) {
    if (auto ok = verify_preserved(domain, ram); !ok)
        return ok;
    for (const auto& f : ram) {
        if (!safe_file_name(f.name))
            return fail(Errc::invalid_input, std::string(domain), "invalid RAM file name", f.name);
        std::string dst = ram_dir + "/" + f.name;
        if (link(f.preserved.c_str(), dst.c_str()) != 0) {
            int err = errno;
            // A retried start may find the link of the failed attempt in place.
            if (err == EEXIST) {
                auto id = identity(dst, domain, "RAM file");
                if (id && id->inode == f.inode && id->device == f.device)
                    continue;
            }
            return fail_errno(err, std::string(domain),
                              "cannot link RAM file " + f.preserved + " to " + dst);
        }
    }
    return {};
}

Result<void> drop_preserved(const std::string& preserved) {
    std::error_code ec;
    std::filesystem::remove_all(preserved, ec);
    if (ec)
        return fail(Errc::system, preserved, "cannot remove preserved RAM", ec.message());
    return {};
}

} // namespace vmupdate
