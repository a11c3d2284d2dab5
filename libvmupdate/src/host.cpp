#include "vmupdate/host.hpp"

#include "mountinfo.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace vmupdate {
namespace {

bool is_under(std::string_view path, std::string_view mount_point) {
    if (mount_point == "/")
        return true;
    return path.starts_with(mount_point) &&
           (path.size() == mount_point.size() || path[mount_point.size()] == '/');
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
        best.mount_point = m.mount_point;
        best.fstype = m.fstype;
        best.source = m.source;
        if (m.fstype == "tmpfs" || m.fstype == "ramfs")
            best.kind = FsKind::memory;
        else if (has_dax_option(m.options) || has_dax_option(m.super_options))
            best.kind = FsKind::dax;
        else
            best.kind = FsKind::disk;
        found = true;
    }
    if (!found)
        return fail(Errc::not_found, std::string(path), "cannot find the filesystem",
                    "no mount in mountinfo holds it");
    return best;
}

Result<FsInfo> filesystem_of(const std::string& path) {
    std::error_code ec;
    std::filesystem::path p = std::filesystem::absolute(path, ec);
    if (ec)
        return fail(Errc::system, path, "cannot resolve path", ec.message());
    // The directory may not exist yet (libvirt creates it at the first start).
    while (!std::filesystem::exists(p, ec) && p.has_parent_path() && p != p.parent_path())
        p = p.parent_path();
    p = std::filesystem::canonical(p, ec);
    if (ec)
        return fail(Errc::system, path, "cannot resolve path", ec.message());
    std::ifstream in("/proc/self/mountinfo");
    if (!in)
        return fail_errno(errno, "/proc/self/mountinfo", "cannot read mount table");
    std::stringstream ss;
    ss << in.rdbuf();
    return filesystem_from_mountinfo(ss.str(), p.string());
}

} // namespace vmupdate
