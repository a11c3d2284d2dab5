#include "vmupdate/host.hpp"

#include "fd.hpp"
#include "mountinfo.hpp"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace vmupdate {
namespace {

bool is_under(std::string_view path, std::string_view mount_point) {
    if (mount_point == "/")
        return true;
    return path.starts_with(mount_point) &&
           (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}

// What a mount is for guest RAM.
FsInfo info_of(const MountEntry& m) {
    FsInfo info;
    info.mount_point = m.mount_point;
    info.fstype = m.fstype;
    info.source = m.source;
    if (m.fstype == "tmpfs" || m.fstype == "ramfs")
        info.kind = FsKind::memory;
    else if (has_dax_option(m.options) || has_dax_option(m.super_options))
        info.kind = FsKind::dax;
    else
        info.kind = FsKind::disk;
    return info;
}

// Whether only root (or this user) can change the entries of directory `st`:
// a link there can only be root's.
bool trusted_dir(const struct stat& st) {
    return (st.st_uid == 0 || st.st_uid == ::geteuid()) && (st.st_mode & 022) == 0;
}

// The names of `path`, last first (a stack to walk it by).
std::vector<std::string> names_reversed(std::string_view path) {
    std::vector<std::string> out;
    for (const auto& n : split(path, '/'))
        if (!n.empty() && n != ".")
            out.push_back(n);
    return {out.rbegin(), out.rend()};
}

// Opens (O_PATH) the nearest existing ancestor of absolute `path`, itself when
// it exists, one name at a time. A link is followed only in a directory no one
// but root can write to, its target walked the same way; one in a directory
// the QEMU user can write to (memory_backing_dir) is refused, since it could
// point elsewhere by the time the path is used.
Result<Fd> open_nearest(const std::string& path) {
    Fd cur(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (cur.get() < 0)
        return fail_errno(errno, "/", "cannot open directory");
    std::vector<std::string> todo = names_reversed(path);
    int links = 0;
    while (!todo.empty()) {
        std::string name = std::move(todo.back());
        todo.pop_back();
        Fd next(::openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (next.get() < 0) {
            // Not there yet: libvirt creates the directory at the first start.
            if (errno == ENOENT || errno == ENOTDIR)
                return cur;
            return fail_errno(errno, path, "cannot resolve path");
        }
        struct stat dir {};
        struct stat st {};
        if (::fstat(cur.get(), &dir) != 0 || ::fstat(next.get(), &st) != 0)
            return fail_errno(errno, path, "cannot resolve path");
        if (!S_ISLNK(st.st_mode)) {
            cur = std::move(next);
            continue;
        }
        if (!trusted_dir(dir))
            return fail(Errc::refused, path, "cannot tell which filesystem holds it",
                        "'" + name +
                            "' is a symbolic link in a directory other users can write to");
        char target[PATH_MAX];
        ssize_t n = ::readlinkat(next.get(), "", target, sizeof target);
        if (n < 0 || static_cast<std::size_t>(n) >= sizeof target || ++links > 40)
            return fail_errno(n < 0 ? errno : ELOOP, path, "cannot resolve path");
        std::string_view to(target, static_cast<std::size_t>(n));
        if (to.starts_with('/')) {
            cur = Fd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (cur.get() < 0)
                return fail_errno(errno, "/", "cannot open directory");
        }
        for (auto& more : names_reversed(to))
            todo.push_back(std::move(more));
    }
    return cur;
}

// The mount ID of the open file `fd`: statx, or the fdinfo of older kernels.
Result<std::string> mount_id_of(int fd, const std::string& path) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID))
        return std::to_string(sx.stx_mnt_id);
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("mnt_id:")) {
            auto b = line.find_first_not_of(" \t", 7);
            if (b != std::string::npos)
                return line.substr(b);
        }
    return fail(Errc::system, path, "cannot tell which filesystem holds it", "no mount ID");
}

} // namespace

std::string_view to_string(FsKind kind) {
    switch (kind) {
    case FsKind::memory:
        return "memory";
    case FsKind::dax:
        return "dax";
    case FsKind::disk:
        return "disk";
    }
    return "disk";
}

Result<std::string> conf_string(std::string_view text, std::string_view key) {
    std::string value;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        auto b = line.find_first_not_of(" \t");
        if (b == std::string::npos || line[b] == '#')
            continue;
        std::string_view l = std::string_view(line).substr(b);
        if (!l.starts_with(key))
            continue;
        std::string_view rest = l.substr(key.size());
        auto eq = rest.find_first_not_of(" \t");
        if (eq == std::string_view::npos || rest[eq] != '=')
            continue;
        rest = rest.substr(eq + 1);
        auto q = rest.find_first_not_of(" \t");
        if (q == std::string_view::npos || (rest[q] != '"' && rest[q] != '\''))
            return fail(Errc::invalid_input, std::string(key), "cannot read configuration",
                        "value is not a quoted string");
        char quote = rest[q];
        auto end = rest.find(quote, q + 1);
        if (end == std::string_view::npos)
            return fail(Errc::invalid_input, std::string(key), "cannot read configuration",
                        "unterminated string");
        // Later assignments win, as in libvirt's parser.
        value = std::string(rest.substr(q + 1, end - q - 1));
    }
    return value;
}

Result<std::string> memory_backing_dir(const std::string& qemu_conf) {
    std::ifstream in(qemu_conf);
    if (!in) {
        if (errno == ENOENT)
            return std::string(default_memory_backing_dir);
        return fail_errno(errno, qemu_conf, "cannot read libvirt's QEMU configuration");
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto value = conf_string(ss.str(), "memory_backing_dir");
    if (!value) {
        value.error().object = qemu_conf;
        value.error().step = "cannot read memory_backing_dir";
        return std::unexpected(value.error());
    }
    if (value->empty())
        return std::string(default_memory_backing_dir);
    // libvirt keeps its own subdirectory of a configured directory
    // (virQEMUDriverConfigLoadMemoryEntry); only the default is used as it is.
    return *value + "/libvirt/qemu";
}

Result<FsInfo> filesystem_from_mountinfo(std::string_view mountinfo, std::string_view path) {
    FsInfo best;
    bool found = false;
    // Later lines are mounts stacked on top of earlier ones: the last, longest match wins.
    for (const MountEntry& m : parse_mountinfo(mountinfo)) {
        if (!is_under(path, m.mount_point))
            continue;
        if (found && m.mount_point.size() < best.mount_point.size())
            continue;
        best = info_of(m);
        found = true;
    }
    if (!found)
        return fail(Errc::not_found, std::string(path), "cannot find the filesystem",
                    "no mount in mountinfo holds it");
    return best;
}

Result<FsInfo> filesystem_of(const std::string& path) {
    std::error_code ec;
    std::string p = std::filesystem::absolute(path, ec).string();
    if (ec)
        return fail(Errc::system, path, "cannot resolve path", ec.message());
    // Classified from an open descriptor, not by resolving the path again: what
    // was checked is what is classified.
    auto fd = open_nearest(p);
    if (!fd)
        return std::unexpected(fd.error());
    auto id = mount_id_of(fd->get(), path);
    if (!id)
        return std::unexpected(id.error());
    std::ifstream in("/proc/self/mountinfo");
    if (!in)
        return fail_errno(errno, "/proc/self/mountinfo", "cannot read mount table");
    std::stringstream ss;
    ss << in.rdbuf();
    for (const MountEntry& m : parse_mountinfo(ss.str()))
        if (m.id == *id)
            return info_of(m);
    return fail(Errc::not_found, path, "cannot find the filesystem",
                "mount " + *id + " is not in mountinfo");
}

} // namespace vmupdate
