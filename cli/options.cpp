#include "options.hpp"

#include <algorithm>
#include <charconv>

namespace vmupdate::cli {
namespace {

std::string fill(std::string_view format, std::string_view word) {
    std::string out(format);
    if (auto at = out.find("{}"); at != std::string::npos)
        out.replace(at, 2, word);
    return out;
}

std::string long_name(const Option& option) {
    return std::string(spellings(option).back());
}

// "ext4 xfs" -> "ext4 or xfs".
std::string alternatives(std::string_view choices) {
    std::string out(choices);
    for (auto at = out.find(' '); at != std::string::npos; at = out.find(' ', at + 4))
        out.replace(at, 1, " or ");
    return out;
}

bool is_choice(std::string_view choices, std::string_view value) {
    while (!choices.empty()) {
        auto space = choices.find(' ');
        if (choices.substr(0, space) == value)
            return true;
        choices = space == std::string_view::npos ? std::string_view{} : choices.substr(space + 1);
    }
    return false;
}

// The value of an option that takes one is checked here, once for every command.
std::optional<ParseError> check_value(const Option& o, const ParseRules& rules,
                                      std::string_view name, const std::string& value) {
    if (o.kind == Kind::integer) {
        long n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc{} || end != value.data() + value.size() || n < o.min || n > o.max)
            return ParseError{std::string(rules.prefix) + std::string(name) +
                              " needs a number from " + std::to_string(o.min) + " to " +
                              std::to_string(o.max)};
    }
    if (!o.choices.empty() && !is_choice(o.choices, value))
        return ParseError{std::string(rules.prefix) + std::string(name) + " needs " +
                          alternatives(o.choices)};
    return std::nullopt;
}

ParseError missing_value(const Option& o, const ParseRules& rules, std::string_view word) {
    if (o.kind == Kind::integer || !o.choices.empty())
        return *check_value(o, rules, word, "");
    if (!rules.missing.empty())
        return ParseError{fill(rules.missing, word)};
    return ParseError{std::string(rules.prefix) + std::string(word) + " needs a " +
                      std::string(o.arg)};
}

} // namespace

std::vector<std::string_view> spellings(const Option& option) {
    std::vector<std::string_view> out;
    std::string_view names = option.names;
    for (;;) {
        auto comma = names.find(", ");
        out.push_back(names.substr(0, comma));
        if (comma == std::string_view::npos)
            return out;
        names.remove_prefix(comma + 2);
    }
}

const Option* find_option(std::span<const Option> options, std::string_view arg) {
    for (const auto& o : options) {
        auto names = spellings(o);
        if (std::ranges::find(names, arg) != names.end())
            return &o;
    }
    return nullptr;
}

bool is_option_word(std::string_view arg) {
    return arg.starts_with('-') && arg != "-";
}

std::optional<std::string> Parsed::value(std::string_view name) const {
    auto it = values_.find(name);
    if (it == values_.end() || it->second.empty())
        return std::nullopt;
    return it->second.back();
}

long Parsed::integer(std::string_view name, long fallback) const {
    auto v = value(name);
    return v ? std::stol(*v) : fallback; // checked by parse()
}

std::vector<std::string> Parsed::list(std::string_view name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

void Parsed::add(std::string_view name, std::optional<std::string> value) {
    auto& values = values_[std::string(name)];
    if (value)
        values.push_back(std::move(*value));
}

std::expected<Parsed, ParseError> parse(std::span<const Option> options, const ParseRules& rules,
                                        const std::vector<std::string>& args) {
    Parsed out;
    bool in_options = true;
    const Option* list = nullptr; // a list option takes the operands that follow it
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (in_options && a == "--" && rules.operands) {
            in_options = false;
            continue;
        }
        if (!in_options || !is_option_word(a)) {
            if (list)
                out.add(long_name(*list), a);
            else if (rules.operands)
                out.operands.push_back(a);
            else
                return std::unexpected(ParseError{fill(rules.reject, a)});
            continue;
        }
        auto eq = a.find('=');
        std::string_view word = std::string_view(a).substr(0, eq);
        const Option* o = find_option(options, word);
        if (!o || (o->kind == Kind::flag && eq != std::string::npos))
            return std::unexpected(ParseError{fill(rules.reject, a)});
        if (o->kind == Kind::flag || (o->kind == Kind::list && eq == std::string::npos)) {
            out.add(long_name(*o), std::nullopt);
            if (o->kind == Kind::list)
                list = o;
            continue;
        }
        if (eq == std::string::npos && i + 1 >= args.size())
            return std::unexpected(missing_value(*o, rules, word));
        std::string value = eq == std::string::npos ? args[++i] : a.substr(eq + 1);
        if (auto bad = check_value(*o, rules, word, value))
            return std::unexpected(*bad);
        out.add(long_name(*o), std::move(value));
        if (o->kind == Kind::list)
            list = o;
    }
    return out;
}

} // namespace vmupdate::cli
