// Durable files: atomic replacement, whole and tail reads, syncs and hashes.
// The link-safe directories of fsutil.hpp are in dirs.cpp.
#include "fsutil.hpp"

#include "fd.hpp"
#include "sha256.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
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

std::string base_name(std::string_view path) {
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
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

Result<std::optional<std::string>> read_file_if_exists(const std::string& path, std::size_t max) {
    auto text = read_file(path, max);
    if (!text) {
        if (text.error().code == Errc::not_found)
            return std::nullopt;
        return std::unexpected(text.error());
    }
    return std::move(*text);
}

Result<std::size_t> read_full(int fd, char* buf, std::size_t len, const std::string& object,
                              const std::string& step) {
    std::size_t got = 0;
    while (got < len) {
        ssize_t n = ::read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(errno, object, step);
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    return got;
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

} // namespace vmupdate
