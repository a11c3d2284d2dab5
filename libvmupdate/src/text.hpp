// Small helpers for parsing text that tools and config files produce.
#pragma once

#include <string_view>

namespace vmupdate {

/// Removes the first line (without its '\n') from text and returns it.
inline std::string_view pop_line(std::string_view& text) {
    const auto end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    return line;
}

} // namespace vmupdate
