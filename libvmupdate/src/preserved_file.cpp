// Single preserved RAM files as open files, for the handover (handover.cpp):
// opened and unlinked through root's directory, and rebuilt from a memfd.
#include "preserved_file.hpp"

#include "fsutil.hpp"
#include "link_dirs.hpp"
#include "ram_move.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <vector>

namespace vmupdate {

using held::identity_of;
using held::matches;
using held::open_held;
using held::open_verified;
using held::safe_file_name;
using held::Split;
using held::split;

namespace {

// Opens the preserved file of `f` through root's directory (never by its path:
// the QEMU user can rename root's directory aside and plant a FIFO or a link
// under the name), without following links or waiting on a FIFO, and checks on
// the open file that it is the recorded regular file. Fills `st`.
Result<Fd> open_checked(std::string_view domain, const RamFile& f, int access, struct stat& st) {
    auto v = open_verified(domain, f);
    if (!v)
        return std::unexpected(v.error());
    int fd;
    do
        fd = ::openat(v->held.dir.get(), v->name.c_str(),
                      access | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, std::string(domain),
                          "cannot open preserved RAM file " + f.preserved);
    Fd file(fd);
    if (::fstat(file.get(), &st) != 0)
        return fail_errno(errno, std::string(domain), "cannot examine " + f.preserved);
    if (!S_ISREG(st.st_mode))
        return fail(Errc::verify, std::string(domain), "preserved RAM file " + f.preserved,
                    "not a regular file");
    if (auto ok = matches(f, identity_of(st), domain, f.preserved); !ok)
        return std::unexpected(ok.error());
    return file;
}

} // namespace

Result<Fd> open_preserved_file(std::string_view domain, const RamFile& f, FileOwner& owner) {
    struct stat st {};
    auto file = open_checked(domain, f, O_RDWR, st);
    if (!file)
        return file;
    // Checked on the open file: the link count is what the kernel will look at.
    if (st.st_nlink != 1)
        return fail(Errc::refused, std::string(domain), "cannot hand over RAM file " + f.preserved,
                    "it has " + std::to_string(st.st_nlink) +
                        " links; only vmupdate's may remain (another user linked it)");
    // The file goes to LUO as it was opened before: blocking.
    if (int fl = ::fcntl(file->get(), F_GETFL);
        fl < 0 || ::fcntl(file->get(), F_SETFL, fl & ~O_NONBLOCK) != 0)
        return fail_errno(errno, std::string(domain),
                          "cannot open preserved RAM file " + f.preserved);
    owner = FileOwner{st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
    return file;
}

Result<void> sync_preserved_file(std::string_view domain, const RamFile& f) {
    struct stat st {};
    auto file = open_checked(domain, f, O_RDONLY, st);
    if (!file)
        return std::unexpected(file.error());
    return fsync_fd(file->get(), std::string(domain) + ": " + f.preserved);
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

// Whether the filesystem of `dir` has room for what `src` holds (its allocated
// pages: zero pages stay holes), checked before a byte moves.
Result<void> check_room(std::string_view domain, int dir, int src, const std::string& where) {
    struct stat st {};
    struct statfs fs {};
    if (::fstat(src, &st) != 0)
        return fail_errno(errno, std::string(domain), "cannot examine the RAM handed over");
    if (::fstatfs(dir, &fs) != 0)
        return fail_errno(errno, std::string(domain), "cannot examine " + where);
    auto need = static_cast<std::uint64_t>(st.st_blocks) * 512;
    auto room = static_cast<std::uint64_t>(fs.f_bavail) * static_cast<std::uint64_t>(fs.f_bsize);
    if (room < need)
        return fail(Errc::refused, std::string(domain), "cannot write the RAM back into " + where,
                    std::string(std::strerror(ENOSPC)) + ": it needs " + std::to_string(need) +
                        " bytes, " + std::to_string(room) + " are free");
    return {};
}

} // namespace

Result<RamFile> rebuild_preserved_file(std::string_view domain, int src, const RamFile& f,
                                       const FileOwner& owner, std::string_view sums) {
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
    if (auto ok = check_room(domain, held->dir.get(), src, at.dir); !ok)
        return std::unexpected(ok.error());
    // Unnamed until complete: a crash leaves no half-written file under the name.
    int fd;
    do
        fd = ::openat(held->dir.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, std::string(domain), "cannot create RAM file in " + at.dir);
    Fd out(fd);
    const std::string step = "cannot rebuild RAM file " + f.preserved;
    if (::fchown(out.get(), owner.uid, owner.gid) != 0 || ::fchmod(out.get(), owner.mode) != 0)
        return fail_errno(errno, std::string(domain), step);
    // The file gets its name only once complete and on stable storage; until
    // then every failure moves what was written back into `src`.
    auto commit = [&]() -> Result<void> {
        if (::ftruncate(out.get(), static_cast<off_t>(f.size)) != 0)
            return fail_errno(errno, std::string(domain), step);
        if (auto ok = fsync_fd(out.get(), f.preserved); !ok)
            return ok;
        if (::linkat(out.get(), "", held->dir.get(), at.name.c_str(), AT_EMPTY_PATH) != 0)
            return fail_errno(errno, std::string(domain), step);
        return {};
    };
    if (auto ok = move_ram(src, out.get(), f.size, sums, std::string(domain) + ": " + f.preserved,
                           commit);
        !ok)
        return std::unexpected(ok.error());
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
