// The QMP messages' JSON (qmp_message.hpp) and the parsers of the replies the
// save and the restore helper read: migration capabilities and status. Apart
// from the client (qmp.cpp), as the fuzz build also compiles them.
#include "qmp_message.hpp"

#include "vmupdate/qmp.hpp"

#include <climits>
#include <optional>

namespace vmupdate {
namespace qmp {
namespace {

// An integer member that fits in int64_t; nullopt for anything else.
std::optional<std::int64_t> int64_value(const json& v) {
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(INT64_MAX))
            return std::nullopt;
        return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer())
        return v.get<std::int64_t>();
    return std::nullopt;
}

} // namespace

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json parse(std::string_view text) {
    return json::parse(text.begin(), text.end(), nullptr, false);
}

const std::string* string_member(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string())
        return nullptr;
    return &it->get_ref<const std::string&>();
}

std::string excerpt(std::string_view text) {
    constexpr size_t limit = 80;
    std::string out(text.substr(0, limit));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            c = '?';
    if (text.size() > limit)
        out += "...";
    return out;
}

// The values come from the peer: no overflow on any of them.
std::int64_t event_time_us(const json& j) {
    auto ts = j.find("timestamp");
    if (ts == j.end() || !ts->is_object())
        return 0;
    auto s = ts->find("seconds");
    auto us = ts->find("microseconds");
    if (s == ts->end() || us == ts->end())
        return 0;
    auto seconds = int64_value(*s);
    auto micros = int64_value(*us);
    if (!seconds || !micros || *seconds < 0 || *micros < 0 || *micros >= 1000000)
        return 0;
    std::int64_t out = 0;
    if (__builtin_mul_overflow(*seconds, std::int64_t{1000000}, &out) ||
        __builtin_add_overflow(out, *micros, &out))
        return 0;
    return out;
}

// Checked before parsing: nlohmann's dump() and the destruction of a value
// recurse once per level, so a deep enough message overflows the stack.
bool nested_deeper_than(std::string_view text, size_t max_depth) {
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

} // namespace qmp

using qmp::dump;
using qmp::excerpt;
using qmp::json;
using qmp::parse;
using qmp::string_member;

namespace {

constexpr const char* reply_step = "cannot read the reply";

// The return text of `command` parsed; refused unless it is a JSON array
// (`array`) or object.
Result<json> parse_return(std::string_view return_json, const std::string& command, bool array) {
    json j = parse(return_json);
    if (j.is_discarded() || (array ? !j.is_array() : !j.is_object()))
        return fail(Errc::invalid_input, command, reply_step,
                    std::string(array ? "not a JSON array: " : "not a JSON object: ") +
                        excerpt(return_json));
    return j;
}

// A string member of query-migrate's return object, or `absent`.
Result<std::string> query_migrate_member(std::string_view query_return_json, const char* key,
                                         const char* absent) {
    auto parsed = parse_return(query_return_json, "query-migrate", false);
    if (!parsed)
        return std::unexpected(parsed.error());
    const json& j = *parsed;
    auto it = j.find(key);
    if (it == j.end())
        return absent;
    if (!it->is_string())
        return fail(Errc::invalid_input, "query-migrate", reply_step,
                    std::string(key) + " is not a string");
    return it->get<std::string>();
}

} // namespace

std::string capability_arguments(std::string_view capability, bool on) {
    json args = {
        {"capabilities", json::array({{{"capability", std::string(capability)}, {"state", on}}})}};
    return dump(args);
}

Result<bool> capability_state(std::string_view query_return_json, std::string_view capability) {
    const std::string object = "query-migrate-capabilities";
    auto parsed = parse_return(query_return_json, object, true);
    if (!parsed)
        return std::unexpected(parsed.error());
    for (const json& entry : *parsed) {
        if (!entry.is_object())
            return fail(Errc::invalid_input, object, reply_step, "an entry is not a JSON object");
        const std::string* name = string_member(entry, "capability");
        if (name == nullptr || *name != capability)
            continue;
        auto state = entry.find("state");
        if (state == entry.end() || !state->is_boolean())
            return fail(Errc::invalid_input, object, reply_step,
                        "capability " + *name + " has no boolean state");
        return state->get<bool>();
    }
    return fail(Errc::not_found, std::string(capability),
                "QEMU does not know this migration capability");
}

Result<std::string> migration_status(std::string_view query_return_json) {
    return query_migrate_member(query_return_json, "status", "none");
}

Result<std::string> migration_error(std::string_view query_return_json) {
    return query_migrate_member(query_return_json, "error-desc", "");
}

} // namespace vmupdate
