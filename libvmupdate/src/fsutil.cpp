#include "fsutil.hpp"

#include "fd.hpp"

#include <algorithm>
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
namespace {

int open_retry(const char* path, int flags, mode_t mode = 0) {
    int fd;
    do
        fd = ::open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

Result<void> write_all(int fd, std::string_view data, const std::string& object) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(errno, object, "cannot write file");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

// Feeds the file to `sink` in chunks until the end or until `sink` returns false.
template <typename Sink>
Result<std::uint64_t> read_all(int fd, const std::string& object, Sink&& sink) {
    std::string buf(1 << 16, '\0');
    std::uint64_t total = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(errno, object, "cannot read file");
        }
        if (n == 0)
            return total;
        total += static_cast<std::uint64_t>(n);
        if (!sink(std::string_view(buf.data(), static_cast<size_t>(n))))
            return total;
    }
}

std::string base_name(std::string_view path) {
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Deletes the temporary file unless the rename took it over.
struct TempFile {
    std::string path;
    bool keep = false;
    ~TempFile() {
        if (!keep && !path.empty())
            ::unlink(path.c_str());
    }
};

} // namespace

Result<void> fsync_fd(int fd, const std::string& object) {
    int r;
    do
        r = ::fsync(fd);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return fail_errno(errno, object, "cannot flush to disk");
    return {};
}

std::string parent_dir(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos)
        return ".";
    if (slash == 0)
        return "/";
    return std::string(path.substr(0, slash));
}

Result<void> write_file_atomic(const std::string& path, std::string_view content, mode_t mode) {
    // Unique among this process's threads by the counter and among processes by
    // the pid; O_EXCL settles any leftover from a crashed run with the same pid.
    static std::atomic<unsigned> counter{0};
    std::string dir = parent_dir(path);
    TempFile temp;
    Fd fd;
    for (int tries = 0; tries < 100 && !fd; ++tries) {
        temp.path = dir + "/." + base_name(path) + ".tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(counter++);
        fd.reset(open_retry(temp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
        if (!fd && errno != EEXIST) {
            int err = errno;
            temp.path.clear();
            return fail_errno(err, path, "cannot create temporary file in " + dir);
        }
    }
    if (!fd) {
        temp.path.clear();
        return fail(Errc::system, path, "cannot create temporary file in " + dir,
                    "too many leftover temporary files");
    }
    // open() applied the umask; the caller's mode is what the file must have.
    if (::fchmod(fd.get(), mode) < 0)
        return fail_errno(errno, temp.path, "cannot set file mode");
    if (auto r = write_all(fd.get(), content, temp.path); !r)
        return r;
    if (auto r = fsync_fd(fd.get(), temp.path); !r)
        return r;
    // close() can report a deferred write error (NFS); EINTR still closes on Linux.
    if (::close(fd.release()) < 0 && errno != EINTR)
        return fail_errno(errno, temp.path, "cannot close file");
    if (::rename(temp.path.c_str(), path.c_str()) < 0)
        return fail_errno(errno, path, "cannot replace file");
    temp.keep = true;
    return fsync_path(dir);
}

namespace {

// Opens `path` to read it; Errc::not_found when it does not exist.
Result<Fd> open_to_read(const std::string& path) {
    Fd fd(open_retry(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            return fail(Errc::not_found, path, "cannot read file", std::strerror(ENOENT));
        return fail_errno(errno, path, "cannot read file");
    }
    return fd;
}

} // namespace

Result<std::string> read_file(const std::string& path, std::size_t max) {
    auto fd = open_to_read(path);
    if (!fd)
        return std::unexpected(fd.error());
    std::string out;
    bool too_large = false;
    auto r = read_all(fd->get(), path, [&](std::string_view chunk) {
        if (chunk.size() > max - out.size()) {
            too_large = true;
            return false;
        }
        out += chunk;
        return true;
    });
    if (!r)
        return std::unexpected(r.error());
    if (too_large)
        return fail(Errc::invalid_input, path, "cannot read file",
                    "larger than " + std::to_string(max) + " bytes");
    return out;
}

Result<std::string> read_file_tail(const std::string& path, std::size_t max) {
    auto fd = open_to_read(path);
    if (!fd)
        return std::unexpected(fd.error());
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0)
        return fail_errno(errno, path, "cannot read file");
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max && ::lseek(fd->get(), static_cast<off_t>(size - max), SEEK_SET) < 0)
        return fail_errno(errno, path, "cannot read file");
    std::string out;
    auto r = read_all(fd->get(), path, [&](std::string_view chunk) {
        // The file may grow while it is read: keep the newest `max` bytes.
        out += chunk;
        if (out.size() > max)
            out.erase(0, out.size() - max);
        return true;
    });
    if (!r)
        return std::unexpected(r.error());
    return out;
}

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
    Fd parent(open_retry(parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
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

Result<void> fsync_path(const std::string& path) {
    Fd fd(open_retry(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return fail_errno(errno, path, "cannot open to flush to disk");
    return fsync_fd(fd.get(), path);
}

Result<std::string> sha256_file(const std::string& path) {
    Fd fd(open_retry(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return fail_errno(errno, path, "cannot open file to hash");
    Sha256 sha;
    auto r = read_all(fd.get(), path, [&](std::string_view chunk) {
        sha.update(chunk);
        return true;
    });
    if (!r)
        return std::unexpected(r.error());
    return sha.hex_digest();
}

namespace {

constexpr std::array<std::uint32_t, 64> k_round{
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

constexpr std::uint32_t rotr(std::uint32_t v, int n) {
    return (v >> n) | (v << (32 - n));
}

} // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const unsigned char* p) {
    std::array<std::uint32_t, 64> w{};
    for (size_t i = 0; i < 16; ++i)
        w[i] = std::uint32_t{p[4 * i]} << 24 | std::uint32_t{p[4 * i + 1]} << 16 |
               std::uint32_t{p[4 * i + 2]} << 8 | std::uint32_t{p[4 * i + 3]};
    for (size_t i = 16; i < 64; ++i) {
        std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto [a, b, c, d, e, f, g, h] = h_;
    for (size_t i = 0; i < 64; ++i) {
        std::uint32_t t1 =
            h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k_round[i] + w[i];
        std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    const std::array<std::uint32_t, 8> add{a, b, c, d, e, f, g, h};
    for (size_t i = 0; i < 8; ++i)
        h_[i] += add[i];
}

void Sha256::update(std::string_view data) {
    length_ += data.size();
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    size_t n = data.size();
    if (buffered_ != 0) {
        size_t take = std::min(n, buffer_.size() - buffered_);
        std::memcpy(buffer_.data() + buffered_, p, take);
        buffered_ += take;
        p += take;
        n -= take;
        if (buffered_ < buffer_.size())
            return;
        block(buffer_.data());
        buffered_ = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        block(p);
    std::memcpy(buffer_.data(), p, n);
    buffered_ = n;
}

std::string Sha256::hex_digest() {
    std::uint64_t bits = length_ * 8;
    // Padding: 0x80, zeros up to 56 mod 64, then the bit length big-endian.
    std::string pad(1, '\x80');
    pad.append((buffered_ < 56 ? 55 : 119) - buffered_, '\0');
    for (int i = 7; i >= 0; --i)
        pad += static_cast<char>((bits >> (8 * i)) & 0xff);
    update(pad);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::uint32_t v : h_)
        for (int shift = 28; shift >= 0; shift -= 4)
            out += digits[(v >> shift) & 0xf];
    return out;
}

} // namespace vmupdate
