// Directories reached without following links (openat2 RESOLVE_NO_SYMLINKS, or a
// walk of O_NOFOLLOW opens where openat2 is hidden), created only where no
// other user can swap them: the link-safe layer of fsutil.hpp, below the
// durable writes of fsutil.cpp.
#include "fd.hpp"
#include "fsutil.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace vmupdate {

std::string user_text(uid_t uid) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::array<char, 4096> buf{};
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
        return std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")";
    return "uid " + std::to_string(uid);
}

namespace {

int openat_retry(int dir, const char* name, int flags) {
    int fd;
    do
        fd = ::openat(dir, name, flags);
    while (fd < 0 && errno == EINTR);
    return fd;
}

constexpr int dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// O_NOFOLLOW|O_DIRECTORY reports a symbolic link as ELOOP or ENOTDIR depending
// on its target: fstatat tells the two apart for the message.
std::unexpected<Error> open_dir_error(int err, int parent, const std::string& name,
                                      const std::string& shown) {
    struct stat lst {};
    if ((err == ELOOP || err == ENOTDIR) &&
        ::fstatat(parent, name.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0)
        return fail(Errc::refused, shown, "cannot use directory",
                    S_ISLNK(lst.st_mode) ? "it is a symbolic link" : "it is not a directory");
    if (err == ENOENT)
        return fail(Errc::not_found, shown, "cannot open directory", std::strerror(err));
    return fail_errno(err, shown, "cannot open directory");
}

std::string octal_mode(mode_t mode) {
    std::string out(4, '0');
    for (int i = 3; i >= 0; --i, mode >>= 3)
        out[static_cast<size_t>(i)] = static_cast<char>('0' + (mode & 7));
    return out;
}

// Another user who can write a directory can rename anything in it, so a path
// through it may lead anywhere by the time it is used. A sticky directory only
// lets each user move their own entries.
bool others_can_write(const struct stat& st) {
    bool trusted_owner = st.st_uid == 0 || st.st_uid == ::geteuid();
    return !trusted_owner || ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(st.st_mode & S_ISVTX));
}

// Walks up from `dir` through "..": the directories it really is in, whatever
// links its path went through.
Result<void> check_ancestors(int dir, const std::string& shown) {
    Fd up;
    int cur = dir;
    for (int depth = 0; depth < 4096; ++depth) {
        struct stat st {};
        if (::fstat(cur, &st) != 0)
            return fail_errno(errno, shown, "cannot examine the directories above");
        if (others_can_write(st))
            return fail(Errc::refused, shown, "cannot create directory",
                        "a directory above it (owned by " + user_text(st.st_uid) + ", mode " +
                            octal_mode(st.st_mode) + ") is writable by another user");
        // O_PATH: searching needs no read permission on the directories above.
        Fd parent(openat_retry(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!parent)
            return fail_errno(errno, shown, "cannot examine the directories above");
        struct stat pst {};
        if (::fstat(parent.get(), &pst) != 0)
            return fail_errno(errno, shown, "cannot examine the directories above");
        if (pst.st_dev == st.st_dev && pst.st_ino == st.st_ino)
            return {}; // the root: ".." is itself
        up = std::move(parent);
        cur = up.get();
    }
    return fail(Errc::system, shown, "cannot examine the directories above", "too deep");
}

// The kernels vmupdate runs on have openat2 (5.6); this is for seccomp
// sandboxes that hide it.
Result<Fd> open_dir_walk(const std::string& path) {
    Fd cur(openat_retry(AT_FDCWD, path.starts_with('/') ? "/" : ".",
                        O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!cur)
        return fail_errno(errno, path, "cannot open directory");
    size_t pos = 0;
    while (pos < path.size()) {
        size_t slash = path.find('/', pos);
        if (slash == std::string::npos)
            slash = path.size();
        std::string part = path.substr(pos, slash - pos);
        pos = slash + 1;
        if (part.empty() || part == ".")
            continue;
        Fd next(openat_retry(cur.get(), part.c_str(), O_PATH | dir_flags));
        if (!next) {
            auto e = open_dir_error(errno, cur.get(), part, path);
            if (e.error().code == Errc::refused)
                e.error().cause = path.substr(0, slash) + " is a symbolic link or not a directory";
            return e;
        }
        cur = std::move(next);
    }
    Fd dir(openat_retry(cur.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir)
        return fail_errno(errno, path, "cannot open directory");
    return dir;
}

} // namespace

Result<Fd> open_dir_no_links(const std::string& path) {
    static std::atomic<bool> no_openat2{false};
    if (path.empty())
        return fail(Errc::invalid_input, path, "cannot open directory", "empty path");
    if (!no_openat2.load(std::memory_order_relaxed)) {
        struct open_how how {};
        how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd;
        do
            fd = ::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0)
            return Fd(static_cast<int>(fd));
        int err = errno;
        if (err == ELOOP)
            return fail(Errc::refused, path, "cannot use directory",
                        "its path goes through a symbolic link (another user may have planted "
                        "it; give the real path)");
        if (err == ENOENT)
            return fail(Errc::not_found, path, "cannot open directory", std::strerror(err));
        if (err != ENOSYS)
            return fail_errno(err, path, "cannot open directory");
        no_openat2.store(true, std::memory_order_relaxed);
    }
    return open_dir_walk(path);
}

Result<Fd> open_dir_at(int parent, const std::string& name, const std::string& shown) {
    Fd fd(openat_retry(parent, name.c_str(), dir_flags));
    if (!fd)
        return open_dir_error(errno, parent, name, shown);
    return fd;
}

Result<Fd> make_dir_at(int parent, const std::string& name, mode_t mode, std::optional<Owner> owner,
                       const std::string& shown) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        return fail(Errc::invalid_input, shown, "cannot create directory", "invalid name");
    bool created = ::mkdirat(parent, name.c_str(), mode) == 0;
    if (!created && errno != EEXIST)
        return fail_errno(errno, shown, "cannot create directory");
    // Opened without following a link, so that the checks and changes below apply
    // to the directory itself, and whatever replaces the name later does not matter.
    auto fd = open_dir_at(parent, name, shown);
    if (!fd)
        return fd;
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0)
        return fail_errno(errno, shown, "cannot examine directory");
    // One made by another user may hold anything they put there first (or be
    // theirs in place of the one just created): never adopt it.
    if (st.st_uid != ::geteuid() && !(owner && st.st_uid == owner->uid))
        return fail(Errc::refused, shown, "cannot use directory",
                    "it is owned by " + user_text(st.st_uid) + ", not by " +
                        user_text(::geteuid()) + "; remove it if it is not in use");
    // Ownership first: chown may clear mode bits, chmod never changes the owner.
    if (owner && (st.st_uid != owner->uid || st.st_gid != owner->gid) &&
        ::fchown(fd->get(), owner->uid, owner->gid) < 0)
        return fail_errno(errno, shown, "cannot set directory owner");
    // mkdir() applied the umask, and an existing directory may be too open.
    if ((st.st_mode & 07777) != mode && ::fchmod(fd->get(), mode) < 0)
        return fail_errno(errno, shown, "cannot set directory mode");
    if (created)
        if (auto ok = fsync_fd(parent, shown); !ok)
            return std::unexpected(ok.error());
    return fd;
}

Result<void> make_dir(const std::string& path, mode_t mode, std::optional<Owner> owner) {
    std::string trimmed = path;
    while (trimmed.size() > 1 && trimmed.back() == '/')
        trimmed.pop_back();
    std::string name = base_name(trimmed);
    std::string parent_path = parent_dir(trimmed);
    if (name.empty() || name == "." || name == "..")
        return fail(Errc::invalid_input, path, "cannot create directory", "no directory name");
    // The path to the parent may go through links (/var/run) as long as the
    // directory it leads to sits only in directories no other user can change.
    Fd parent(openat_retry(AT_FDCWD, parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent)
        return fail_errno(errno, path, "cannot open the directory above");
    if (auto ok = check_ancestors(parent.get(), path); !ok)
        return ok;
    auto fd = make_dir_at(parent.get(), name, mode, owner, path);
    if (!fd)
        return std::unexpected(fd.error());
    return {};
}

Result<std::vector<std::string>> list_dir(int dir, const std::string& shown) {
    // A descriptor of its own for the stream: closedir() closes it, and reading
    // must start at the beginning whatever `dir` was used for.
    int own = openat_retry(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (own < 0)
        return fail_errno(errno, shown, "cannot list directory");
    DIR* d = ::fdopendir(own);
    if (!d) {
        int err = errno;
        ::close(own);
        return fail_errno(err, shown, "cannot list directory");
    }
    std::vector<std::string> names;
    for (;;) {
        errno = 0;
        struct dirent* e = ::readdir(d);
        if (!e)
            break;
        std::string_view n = e->d_name;
        if (n != "." && n != "..")
            names.emplace_back(n);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0)
        return fail_errno(err, shown, "cannot list directory");
    return names;
}

} // namespace vmupdate
