#include "vmupdate/config.hpp"

#include "text.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>

namespace vmupdate {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

} // namespace

std::string_view to_string(ManagePolicy policy) {
    return policy == ManagePolicy::file_backed ? "file-backed" : "marked";
}

Result<Config> parse_config(std::string_view text, std::string_view source) {
    Config out;
    int number = 0;
    while (!text.empty()) {
        std::string_view line = pop_line(text);
        ++number;
        if (auto hash = line.find('#'); hash != std::string_view::npos)
            line = line.substr(0, hash);
        line = trim(line);
        if (line.empty())
            continue;
        auto where = std::string(source) + ":" + std::to_string(number);
        auto eq = line.find('=');
        if (eq == std::string_view::npos)
            return fail(Errc::invalid_input, where, "cannot read the setting",
                        "expected 'key = value'");
        auto key = trim(line.substr(0, eq));
        auto value = trim(line.substr(eq + 1));
        if (key == "manage") {
            if (value == "marked")
                out.manage = ManagePolicy::marked;
            else if (value == "file-backed")
                out.manage = ManagePolicy::file_backed;
            else
                return fail(Errc::invalid_input, where, "invalid value for manage",
                            "'" + std::string(value) + "' (expected marked or file-backed)");
            continue;
        }
        return fail(Errc::invalid_input, where, "unknown setting", "'" + std::string(key) + "'");
    }
    return out;
}

Result<Config> load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT)
            return Config{};
        return fail_errno(errno, path, "cannot read the settings");
    }
    // A settings file is a few lines; anything far larger is not one.
    std::string text(64 * 1024 + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > 64 * 1024)
        return fail(Errc::invalid_input, path, "cannot read the settings", "larger than 64 KiB");
    return parse_config(text, path);
}

} // namespace vmupdate
