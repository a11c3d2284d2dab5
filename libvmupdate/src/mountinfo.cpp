#include "mountinfo.hpp"

namespace vmupdate {
namespace {

// mountinfo escapes blanks and backslashes in paths as \ooo octal.
std::string unescape_octal(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
            s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out +=
                static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
            continue;
        }
        out += s[i];
    }
    return out;
}

} // namespace

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

bool has_dax_option(std::string_view options) {
    for (const auto& opt : split(options, ','))
        if (opt == "dax" || opt == "dax=always")
            return true;
    return false;
}

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
    std::vector<MountEntry> out;
    for (const auto& line : split(text, '\n')) {
        auto f = split(line, ' ');
        size_t dash = 0;
        for (size_t i = 6; i < f.size(); ++i)
            if (f[i] == "-") {
                dash = i;
                break;
            }
        if (dash == 0 || f.size() < dash + 3)
            continue;
        out.push_back(MountEntry{f[2], unescape_octal(f[4]), f[5], f[dash + 1],
                                 unescape_octal(f[dash + 2]),
                                 dash + 3 < f.size() ? f[dash + 3] : std::string(), f[0]});
    }
    return out;
}

} // namespace vmupdate
