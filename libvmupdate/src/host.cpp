#include "vmupdate/host.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace vmupdate {
namespace {

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t pos = s.find(sep, start);
        out.emplace_back(s.substr(start, pos - start));
        if (pos == std::string_view::npos)
            return out;
        start = pos + 1;
    }
}

// mountinfo escapes blanks and backslashes in paths as \ooo octal.
std::string unescape_mount_path(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            bool ok = true;
            for (size_t k = 1; k <= 3; ++k) {
                if (s[i + k] < '0' || s[i + k] > '7') {
                    ok = false;
                    break;
                }
                v = v * 8 + (s[i + k] - '0');
            }
            if (ok) {
                out += static_cast<char>(v);
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

bool has_dax_option(std::string_view options) {
    for (const auto& opt : split(options, ','))
        if (opt == "dax" || opt == "dax=always")
            return true;
    return false;
}

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
    std::istringstream in{std::string(mountinfo)};
    std::string line;
    // Later lines are mounts stacked on top of earlier ones: the last, longest match wins.
    while (std::getline(in, line)) {
        auto fields = split(line, ' ');
        size_t dash = 0;
        for (size_t i = 6; i < fields.size(); ++i)
            if (fields[i] == "-") {
                dash = i;
                break;
            }
        if (dash == 0 || fields.size() < dash + 3)
            continue;
        std::string mount_point = unescape_mount_path(fields[4]);
        if (!is_under(path, mount_point))
            continue;
        if (found && mount_point.size() < best.mount_point.size())
            continue;
        best.mount_point = mount_point;
        best.fstype = fields[dash + 1];
        best.source = unescape_mount_path(fields[dash + 2]);
        std::string super_options = dash + 3 < fields.size() ? fields[dash + 3] : "";
        if (best.fstype == "tmpfs" || best.fstype == "ramfs")
            best.kind = FsKind::memory;
        else if (has_dax_option(fields[5]) || has_dax_option(super_options))
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
