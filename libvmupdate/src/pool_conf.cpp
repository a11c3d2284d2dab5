// Pointing libvirt at a pool: memory_backing_dir in qemu.conf, edited as text
// so that every other line and comment stays as the operator wrote it.
#include "fsutil.hpp"
#include "vmupdate/pool.hpp"

#include <sys/stat.h>

namespace vmupdate {

std::string set_memory_backing_dir(std::string_view text, std::string_view dir) {
    constexpr std::string_view key = "memory_backing_dir";
    const std::string setting = std::string(key) + " = \"" + std::string(dir) + "\"";
    std::string out;
    bool replaced = false;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
        std::string_view line = text.substr(pos, end - pos);
        pos = end;
        auto b = line.find_first_not_of(" \t");
        std::string_view rest = b == std::string_view::npos ? "" : line.substr(b);
        if (rest.starts_with(key)) {
            auto after = rest.substr(key.size());
            auto c = after.find_first_not_of(" \t");
            if (c != std::string_view::npos && after[c] == '=') {
                // Every active assignment gets the new value: libvirt reads the last.
                out += setting;
                out += line.ends_with('\n') ? "\n" : "";
                replaced = true;
                continue;
            }
        }
        out += line;
    }
    if (!replaced) {
        if (!out.empty() && !out.ends_with('\n'))
            out += '\n';
        out += setting + "\n";
    }
    return out;
}

Result<void> configure_libvirt(const std::string& qemu_conf_path, const std::string& dir) {
    if (dir.empty() || dir[0] != '/' || dir.find_first_of("\"\n\\") != std::string::npos)
        return fail(Errc::invalid_input, dir, "cannot configure libvirt",
                    "memory_backing_dir must be an absolute path without quotes, "
                    "backslashes or newlines");
    std::string text;
    mode_t mode = 0644;
    auto current = read_file(qemu_conf_path, 4u << 20);
    if (current) {
        text = std::move(*current);
        struct stat st {};
        if (::stat(qemu_conf_path.c_str(), &st) == 0)
            mode = st.st_mode & 07777;
    } else if (current.error().code != Errc::not_found) {
        return std::unexpected(current.error());
    }
    return write_file_atomic(qemu_conf_path, set_memory_backing_dir(text, dir), mode);
}

} // namespace vmupdate
