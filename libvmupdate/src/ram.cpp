#include "vmupdate/ram.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "preserved_file.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

// The QEMU user owns memory_backing_dir (libvirt chowns it at every daemon start)
// and every <id>-<name> directory in it, and may plant links or swap entries
// there at any moment. So nothing below the backing directory is reached by a
// path: each step goes from a directory descriptor opened without following
// links, and vmupdate's own directories must be root's and closed to others,
// after which what they hold can change only through root.

namespace vmupdate {
namespace {

constexpr size_t short_name_max = 20; // libvirt's VIR_DOMAIN_SHORT_NAME_MAX

struct Identity {
    std::uint64_t device, inode, size;
};

Identity identity_of(const struct stat& st) {
    return Identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                    static_cast<std::uint64_t>(st.st_size)};
}

// The file `name` in `dir`, never through a link.
Result<Identity> identity_at(int dir, const std::string& name, const std::string& path,
                             std::string_view domain, std::string_view what) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return fail_errno(errno, std::string(domain), std::string(what) + " " + path);
    if (!S_ISREG(st.st_mode))
        return fail(Errc::verify, std::string(domain), std::string(what) + " " + path,
                    "not a regular file");
    return identity_of(st);
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

struct Split {
    std::string dir, name;
};

Split split(std::string_view path) {
    while (path.size() > 1 && path.back() == '/')
        path.remove_suffix(1);
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos)
        return {".", std::string(path)};
    return {slash == 0 ? "/" : std::string(path.substr(0, slash)),
            std::string(path.substr(slash + 1))};
}

// Root's and closed to others: then only root can change what it holds, even
// if the QEMU user renames it or puts something else under its name.
Result<void> check_private(int fd, const std::string& shown) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return fail_errno(errno, shown, "cannot examine directory");
    if (st.st_uid != ::geteuid())
        return fail(Errc::refused, shown, "cannot use directory",
                    "it is owned by " + user_text(st.st_uid) + ", not by " +
                        user_text(::geteuid()) + ": another user made it");
    if ((st.st_mode & 077) != 0)
        return fail(Errc::refused, shown, "cannot use directory",
                    "other users have access to it (mode " + std::to_string((st.st_mode >> 6) & 7) +
                        std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
                        ")");
    return {};
}

// A preserved directory <backing>/vmupdate/<uuid>, opened level by level; both
// vmupdate levels are root's with mode 0700 (created so when `create`).
struct HeldDir {
    Fd top;      // <backing>/vmupdate
    Fd dir;      // <backing>/vmupdate/<uuid>
    Split where; // top's path and the <uuid> name
};

Result<HeldDir> open_held(const std::string& preserved, bool create) {
    HeldDir h;
    h.where = split(preserved);
    Split base = split(h.where.dir);
    if (!safe_file_name(h.where.name) || !safe_file_name(base.name))
        return fail(Errc::invalid_input, preserved, "invalid preserved RAM directory");
    auto backing = open_dir_no_links(base.dir);
    if (!backing)
        return std::unexpected(backing.error());
    if (create) {
        auto top = make_dir_at(backing->get(), base.name, 0700, std::nullopt, h.where.dir);
        if (!top)
            return std::unexpected(top.error());
        h.top = std::move(*top);
    } else {
        auto top = open_dir_at(backing->get(), base.name, h.where.dir);
        if (!top)
            return std::unexpected(top.error());
        h.top = std::move(*top);
    }
    if (auto ok = check_private(h.top.get(), h.where.dir); !ok)
        return std::unexpected(ok.error());
    auto dir = create ? make_dir_at(h.top.get(), h.where.name, 0700, std::nullopt, preserved)
                      : open_dir_at(h.top.get(), h.where.name, preserved);
    if (!dir)
        return std::unexpected(dir.error());
    h.dir = std::move(*dir);
    if (auto ok = check_private(h.dir.get(), preserved); !ok)
        return std::unexpected(ok.error());
    return h;
}

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

namespace {

// One preserved file, opened through root's directory and checked to be the file
// recorded (device, inode, size): the handle reinstate_ram links from.
struct VerifiedFile {
    HeldDir held;
    std::string name;
};

Result<VerifiedFile> open_verified(std::string_view domain, const RamFile& f) {
    Split at = split(f.preserved);
    if (!safe_file_name(at.name))
        return fail(Errc::invalid_input, std::string(domain), "invalid preserved RAM file",
                    f.preserved);
    auto held = open_held(at.dir, false);
    if (!held) {
        held.error().step = "preserved RAM file " + f.preserved + ": " + held.error().step + " " +
                            held.error().object;
        held.error().object = std::string(domain);
        return std::unexpected(held.error());
    }
    auto id = identity_at(held->dir.get(), at.name, f.preserved, domain, "preserved RAM file");
    if (!id)
        return std::unexpected(id.error());
    if (auto ok = matches(f, *id, domain, f.preserved); !ok)
        return std::unexpected(ok.error());
    return VerifiedFile{std::move(*held), std::move(at.name)};
}

// Every recorded file, verified, before anything is done with any of them.
Result<std::vector<VerifiedFile>> open_all_verified(std::string_view domain,
                                                    const std::vector<RamFile>& ram) {
    if (ram.empty())
        return fail(Errc::verify, std::string(domain), "cannot verify preserved RAM",
                    "no RAM file recorded");
    std::vector<VerifiedFile> out;
    for (const auto& f : ram) {
        auto v = open_verified(domain, f);
        if (!v)
            return std::unexpected(v.error());
        out.push_back(std::move(*v));
    }
    return out;
}

} // namespace

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

Result<Fd> open_preserved_file(std::string_view domain, const RamFile& f, FileOwner& owner) {
    auto v = open_verified(domain, f);
    if (!v)
        return std::unexpected(v.error());
    int fd;
    do
        fd = ::openat(v->held.dir.get(), v->name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, std::string(domain),
                          "cannot open preserved RAM file " + f.preserved);
    Fd file(fd);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0)
        return fail_errno(errno, std::string(domain), "cannot examine " + f.preserved);
    // Checked again on the open file: the name may have changed hands in between
    // only through root, but the link count is what the kernel will look at.
    if (auto ok = matches(f, identity_of(st), domain, f.preserved); !ok)
        return std::unexpected(ok.error());
    if (st.st_nlink != 1)
        return fail(Errc::refused, std::string(domain), "cannot hand over RAM file " + f.preserved,
                    "it has " + std::to_string(st.st_nlink) +
                        " links; only vmupdate's may remain (another user linked it)");
    owner = FileOwner{st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
    return file;
}

Result<void> unlink_preserved_file(std::string_view domain, const RamFile& f) {
    auto v = open_verified(domain, f);
    if (!v)
        return std::unexpected(v.error());
    if (::unlinkat(v->held.dir.get(), v->name.c_str(), 0) != 0)
        return fail_errno(errno, std::string(domain), "cannot unlink " + f.preserved);
    return fsync_fd(v->held.dir.get(), split(f.preserved).dir);
}

namespace {

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

} // namespace

Result<RamFile> rebuild_preserved_file(std::string_view domain, int src, const RamFile& f,
                                       const FileOwner& owner) {
    Split at = split(f.preserved);
    if (!safe_file_name(at.name))
        return fail(Errc::invalid_input, std::string(domain), "invalid preserved RAM file",
                    f.preserved);
    auto held = open_held(at.dir, true);
    if (!held)
        return std::unexpected(held.error());
    struct stat there {};
    if (::fstatat(held->dir.get(), at.name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0)
        return fail(Errc::refused, std::string(domain), "cannot rebuild RAM file " + f.preserved,
                    "a file is already there");
    // Unnamed until complete: a crash leaves no half-written file under the name.
    int fd;
    do
        fd = ::openat(held->dir.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, std::string(domain), "cannot create RAM file in " + at.dir);
    Fd out(fd);
    const std::string step = "cannot rebuild RAM file " + f.preserved;
    if (::fchown(out.get(), owner.uid, owner.gid) != 0 || ::fchmod(out.get(), owner.mode) != 0 ||
        ::ftruncate(out.get(), static_cast<off_t>(f.size)) != 0)
        return fail_errno(errno, std::string(domain), step);
    constexpr size_t page = 4096, chunk = 2 << 20;
    std::vector<char> buf(chunk);
    static const std::array<char, page> zero{};
    for (std::uint64_t off = 0; off < f.size; off += chunk) {
        size_t n = static_cast<size_t>(std::min<std::uint64_t>(chunk, f.size - off));
        if (!transfer_all(::pread, src, buf.data(), n, static_cast<off_t>(off)))
            return fail_errno(errno, std::string(domain), step + ": reading the handed-over RAM");
        // Write runs of non-zero pages; zero pages stay holes, as in QEMU's file.
        size_t i = 0;
        while (i < n) {
            size_t len = std::min(page, n - i);
            if (std::memcmp(buf.data() + i, zero.data(), len) == 0) {
                i += len;
                continue;
            }
            size_t j = i + len;
            while (j < n) {
                size_t l = std::min(page, n - j);
                if (std::memcmp(buf.data() + j, zero.data(), l) == 0)
                    break;
                j += l;
            }
            if (!transfer_all(::pwrite, out.get(), buf.data() + i, j - i,
                              static_cast<off_t>(off + i)))
                return fail_errno(errno, std::string(domain), step);
            i = j;
        }
        // Best effort: a sealed source keeps its pages until it is closed.
        (void)::fallocate(src, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                          static_cast<off_t>(n));
    }
    if (auto ok = fsync_fd(out.get(), f.preserved); !ok)
        return std::unexpected(ok.error());
    if (::linkat(out.get(), "", held->dir.get(), at.name.c_str(), AT_EMPTY_PATH) != 0)
        return fail_errno(errno, std::string(domain), step);
    if (auto ok = fsync_fd(held->dir.get(), at.dir); !ok)
        return std::unexpected(ok.error());
    struct stat st {};
    if (::fstat(out.get(), &st) != 0)
        return fail_errno(errno, std::string(domain), "cannot examine " + f.preserved);
    RamFile got = f;
    got.device = static_cast<std::uint64_t>(st.st_dev);
    got.inode = static_cast<std::uint64_t>(st.st_ino);
    return got;
}

} // namespace vmupdate
