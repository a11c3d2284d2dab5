// RAM preservation: libvirt's RAM directories, holding their files in root's
// directories, checking them and linking them back. Nothing below the QEMU
// user's backing directory is reached by a path (link_dirs.hpp says why).
#include "vmupdate/ram.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "link_dirs.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace vmupdate {

using held::Identity;
using held::identity_at;
using held::identity_of;
using held::matches;
using held::open_all_verified;
using held::open_held;
using held::safe_file_name;
using held::VerifiedFile;

namespace {

constexpr size_t short_name_max = 20; // libvirt's VIR_DOMAIN_SHORT_NAME_MAX

// Holds RAM file `name` of `ram` in `held`; nullopt when it is no regular file.
Result<std::optional<Identity>> hold_one(int ram, int held, const std::string& name,
                                         const std::string& ram_dir, const std::string& preserved) {
    std::string src = ram_dir + "/" + name;
    std::string dst = preserved + "/" + name;
    struct stat st {};
    if (::fstatat(ram, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return std::nullopt;
        return fail_errno(errno, ram_dir, "cannot inspect RAM file " + src);
    }
    if (!S_ISREG(st.st_mode))
        return std::nullopt;
    struct stat old {};
    if (::fstatat(held, name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISREG(old.st_mode) && old.st_dev == st.st_dev && old.st_ino == st.st_ino)
            return identity_of(old);
        // A link to the RAM of an earlier run of the domain.
        if (::unlinkat(held, name.c_str(), 0) != 0)
            return fail_errno(errno, ram_dir, "cannot replace stale RAM link " + dst);
    } else if (errno != ENOENT) {
        return fail_errno(errno, ram_dir, "cannot inspect RAM link " + dst);
    }
    // Flags 0: a link in the RAM directory is linked as the link itself, never
    // followed to what it names.
    if (::linkat(ram, name.c_str(), held, name.c_str(), 0) != 0) {
        if (errno == ENOENT)
            return std::nullopt;
        return fail_errno(errno, ram_dir, "cannot link RAM file " + src + " to " + dst);
    }
    // What the QEMU user's directory held a moment ago is not what counts (it may
    // have been swapped since): the link in root's directory is.
    struct stat got {};
    if (::fstatat(held, name.c_str(), &got, AT_SYMLINK_NOFOLLOW) != 0)
        return fail_errno(errno, ram_dir, "cannot inspect RAM link " + dst);
    if (!S_ISREG(got.st_mode)) {
        if (::unlinkat(held, name.c_str(), 0) != 0)
            return fail_errno(errno, ram_dir, "cannot remove " + dst + ", which is not RAM");
        return std::nullopt;
    }
    return identity_of(got);
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

std::string libvirt_short_name_bytes(int id, std::string_view name) {
    return std::to_string(id) + "-" + std::string(name.substr(0, short_name_max));
}

std::string domain_ram_dir(std::string_view backing_dir, int id, std::string_view name) {
    return std::string(backing_dir) + "/" + libvirt_short_name(id, name);
}

Result<std::string> find_domain_ram_dir(std::string_view backing_dir, int id,
                                        std::string_view name) {
    std::string backing(backing_dir);
    auto dir = open_dir_no_links(backing);
    if (!dir)
        return std::unexpected(dir.error());
    // libvirtd cuts at characters in a UTF-8 locale and at bytes in the C locale
    // (mbstowcs fails); which one it runs in is not knowable from here.
    std::string by_chars = libvirt_short_name(id, name);
    std::string by_bytes = libvirt_short_name_bytes(id, name);
    std::vector<std::string> found;
    for (const auto& candidate : {by_chars, by_bytes}) {
        if (!found.empty() && candidate == found.front())
            continue;
        struct stat st {};
        if (::fstatat(dir->get(), candidate.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            return fail_errno(errno, std::string(name),
                              "cannot inspect RAM directory " + backing + "/" + candidate);
        }
        if (!S_ISDIR(st.st_mode))
            return fail(Errc::refused, std::string(name),
                        "cannot use RAM directory " + backing + "/" + candidate,
                        S_ISLNK(st.st_mode) ? "it is a symbolic link" : "it is not a directory");
        found.push_back(candidate);
    }
    if (found.empty())
        return fail(Errc::not_found, std::string(name), "no RAM directory in " + backing,
                    by_chars == by_bytes ? "looked for " + by_chars
                                         : "looked for " + by_chars + " and " + by_bytes);
    if (found.size() > 1)
        return fail(Errc::refused, std::string(name), "cannot tell the RAM directory in " + backing,
                    "both " + by_chars + " and " + by_bytes + " exist");
    return backing + "/" + found.front();
}

Result<std::string> preserved_dir(std::string_view backing_dir, std::string_view uuid) {
    if (!is_canonical_uuid(uuid))
        return fail(Errc::invalid_input, std::string(uuid), "invalid domain UUID",
                    "not a canonical UUID");
    // libvirt names its per-domain directories "<id>-<name>": a name that does not
    // start with a number can never collide with one.
    return std::string(backing_dir) + "/vmupdate/" + std::string(uuid);
}

Result<std::vector<RamFile>> preserve_ram(const std::string& ram_dir, const std::string& preserved,
                                          const std::vector<std::string>& names) {
    if (names.empty())
        return fail(Errc::verify, ram_dir, "cannot preserve RAM", "the domain has no RAM file");
    for (const auto& name : names)
        if (!safe_file_name(name))
            return fail(Errc::invalid_input, ram_dir, "invalid RAM file name", name);
    auto held = open_held(preserved, true);
    if (!held)
        return std::unexpected(held.error());
    auto ram = open_dir_no_links(ram_dir);
    if (!ram)
        return std::unexpected(ram.error());

    // By the names QEMU was given, never by what the directory lists: the QEMU
    // user can rename the RAM file (pc.ram -> pc.ram.swap, a link in its place),
    // and a file held under another name would be linked back under that name at
    // restore, where QEMU would create an empty pc.ram beside it.
    std::vector<RamFile> out;
    for (const auto& name : names) {
        auto id = hold_one(ram->get(), held->dir.get(), name, ram_dir, preserved);
        if (!id)
            return std::unexpected(id.error());
        if (!*id)
            return fail(Errc::verify, ram_dir, "cannot preserve RAM",
                        "RAM file " + ram_dir + "/" + name +
                            " is missing or not a regular file (the QEMU user owns that "
                            "directory and may have moved it)");
        out.push_back(
            RamFile{name, preserved + "/" + name, (*id)->device, (*id)->inode, (*id)->size});
    }
    if (auto ok = fsync_fd(held->dir.get(), preserved); !ok)
        return std::unexpected(ok.error());
    return out;
}

Result<void> verify_preserved(std::string_view domain, const std::vector<RamFile>& ram) {
    auto all = open_all_verified(domain, ram);
    if (!all)
        return std::unexpected(all.error());
    return {};
}

namespace {

// Checks the recorded names, then opens the domain's RAM directory (the QEMU
// user's) without following links; errors name the domain.
Result<Fd> open_ram_dir_for(std::string_view domain, const std::string& ram_dir,
                            const std::vector<RamFile>& ram) {
    for (const auto& f : ram)
        if (!safe_file_name(f.name))
            return fail(Errc::invalid_input, std::string(domain), "invalid RAM file name", f.name);
    auto dir = open_dir_no_links(ram_dir);
    if (!dir) {
        dir.error().step += " " + dir.error().object;
        dir.error().object = std::string(domain);
    }
    return dir;
}

} // namespace

Result<void> verify_in_use(std::string_view domain, const std::string& ram_dir,
                           const std::vector<RamFile>& ram) {
    auto dir = open_ram_dir_for(domain, ram_dir, ram);
    if (!dir)
        return std::unexpected(dir.error());
    for (const auto& f : ram) {
        std::string path = ram_dir + "/" + f.name;
        auto id = identity_at(dir->get(), f.name, path, domain, "RAM file");
        if (!id)
            return std::unexpected(id.error());
        if (auto ok = matches(f, *id, domain, path); !ok)
            return ok;
    }
    return {};
}

Result<void> reinstate_ram(std::string_view domain, const std::vector<RamFile>& ram,
                           const std::string& ram_dir) {
    auto dir = open_ram_dir_for(domain, ram_dir, ram);
    if (!dir)
        return std::unexpected(dir.error());
    // All of it before any link: QEMU must not start on half the RAM.
    auto verified = open_all_verified(domain, ram);
    if (!verified)
        return std::unexpected(verified.error());
    for (size_t i = 0; i < ram.size(); ++i) {
        const RamFile& f = ram[i];
        const VerifiedFile& v = (*verified)[i];
        std::string dst = ram_dir + "/" + f.name;
        if (::linkat(v.held.dir.get(), v.name.c_str(), dir->get(), f.name.c_str(), 0) != 0) {
            int err = errno;
            // A retried start may find the link of the failed attempt in place.
            if (err == EEXIST) {
                auto there = identity_at(dir->get(), f.name, dst, domain, "RAM file");
                if (there && there->inode == f.inode && there->device == f.device)
                    continue;
            }
            return fail_errno(err, std::string(domain),
                              "cannot link RAM file " + f.preserved + " to " + dst);
        }
    }
    return {};
}

Result<void> drop_preserved(const std::string& preserved) {
    auto held = open_held(preserved, false);
    if (!held) {
        // Nothing preserved, or never was: nothing to drop.
        if (held.error().code == Errc::not_found)
            return {};
        return std::unexpected(held.error());
    }
    auto names = list_dir(held->dir.get(), preserved);
    if (!names)
        return std::unexpected(names.error());
    std::string stray;
    for (const auto& name : *names) {
        struct stat st {};
        if (::fstatat(held->dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            return fail_errno(errno, preserved, "cannot inspect " + preserved + "/" + name);
        }
        // Only links to RAM files are put here; a directory is not vmupdate's.
        if (S_ISDIR(st.st_mode)) {
            stray = name;
            continue;
        }
        if (::unlinkat(held->dir.get(), name.c_str(), 0) != 0 && errno != ENOENT)
            return fail_errno(errno, preserved, "cannot remove preserved RAM " + name);
    }
    if (!stray.empty())
        return fail(Errc::refused, preserved, "cannot remove preserved RAM",
                    "it holds a directory, " + stray + ", that vmupdate did not put there");
    if (::unlinkat(held->top.get(), held->where.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return fail_errno(errno, preserved, "cannot remove preserved RAM");
    return fsync_fd(held->top.get(), held->where.dir);
}

} // namespace vmupdate
