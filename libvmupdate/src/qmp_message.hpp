// QMP messages as JSON: dumping and parsing them without exceptions, reading
// their members, and the bounds checked before a peer's text is parsed. Shared
// by the client (qmp.cpp) and the reply parsers (qmp_message.cpp). Private
// header: the public qmp.hpp passes JSON as text only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace vmupdate::qmp {

using json = nlohmann::json;

/// `j` as compact text; invalid UTF-8 (which a caller's command name could
/// contain) is replaced rather than thrown on, keeping exceptions for bugs only.
[[nodiscard]] std::string dump(const json& j);

/// `text` parsed; a discarded value (is_discarded()) when it is not JSON.
[[nodiscard]] json parse(std::string_view text);

/// A string member, or nullptr when absent or not a string.
[[nodiscard]] const std::string* string_member(const json& j, const char* key);

/// What a broken peer sent, shortened and made printable for an error message.
[[nodiscard]] std::string excerpt(std::string_view text);

/// An event's {"timestamp": {"seconds": S, "microseconds": U}} in microseconds;
/// 0 when it is missing or out of range.
[[nodiscard]] std::int64_t event_time_us(const json& j);

/// Whether the JSON text nests arrays and objects deeper than `max_depth`,
/// counted outside strings.
[[nodiscard]] bool nested_deeper_than(std::string_view text, std::size_t max_depth);

} // namespace vmupdate::qmp
