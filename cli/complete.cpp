// `vmupdate __complete WORD...`: what the bash completion offers for the last
// WORD of `vmupdate WORD...`, read from the command table, so that a new command
// or option completes without an edit to packaging/bash-completion/vmupdate.
// Prints the candidates that start with the word, one a line, or one directive
// the script carries out: "@files", "@dirs", or "@domains"/"@saved" and the -c URI.
#include "command.hpp"
#include "handlers.hpp"

#include <iostream>
#include <set>

namespace vmupdate::cli {
namespace {

constexpr std::string_view global_options[] = {"-c",     "--connect", "-h",
                                               "--help", "-V",        "--version"};

void offer(std::string_view candidate, std::string_view cur) {
    if (candidate.starts_with(cur))
        std::cout << candidate << '\n';
}

// The top-level command words, each once ("pool" for "pool list").
void offer_commands(std::string_view cur) {
    std::set<std::string_view> seen;
    for (const auto& c : commands()) {
        auto word = c.name.substr(0, c.name.find(' '));
        if (!c.hidden && seen.insert(word).second)
            offer(word, cur);
    }
}

void offer_subcommands(const Command& group, std::string_view cur) {
    for (const auto* s : subcommands(group))
        offer(s->name.substr(group.name.size() + 1), cur);
}

void offer_options(const Command& c, std::string_view cur) {
    for (const auto& o : c.options)
        for (auto name : spellings(o))
            offer(name, cur);
}

// The value of option `o`.
void offer_value(const Option& o, std::string_view cur) {
    switch (o.hint) {
    case ValueHint::file:
        std::cout << "@files\n";
        break;
    case ValueHint::dir:
        std::cout << "@dirs\n";
        break;
    case ValueHint::words:
        for (std::string_view rest = o.choices; !rest.empty();) {
            auto space = rest.find(' ');
            offer(rest.substr(0, space), cur);
            rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
        }
        break;
    case ValueHint::none:
        break;
    }
}

// The next operand; `operands` are those before it.
void offer_operand(const Command& c, const std::vector<std::string>& operands,
                   const std::string& uri, std::string_view cur) {
    switch (c.operands) {
    case Operands::file:
        std::cout << "@files\n";
        break;
    case Operands::domains:
        std::cout << "@domains\n" << uri << '\n';
        break;
    case Operands::saved_domains:
        std::cout << "@saved\n" << uri << '\n';
        break;
    case Operands::commands:
        if (operands.empty())
            offer_commands(cur);
        else if (const Command* g = find_command(operands[0]);
                 operands.size() == 1 && g && is_group(*g))
            offer_subcommands(*g, cur);
        break;
    default:
        break;
    }
}

// After the command word(s): an option's value, an option, or an operand.
void complete_command(const Command& c, const std::vector<std::string>& words, size_t first,
                      const std::string& uri) {
    const std::string& cur = words.back();
    std::vector<std::string> operands;
    bool dashdash = false;
    for (size_t j = first; j + 1 < words.size(); ++j) {
        if (words[j] == "--")
            dashdash = true;
        else if (dashdash || !is_option_word(words[j]))
            operands.push_back(words[j]);
    }
    if (words.size() >= 2 && first + 1 < words.size())
        if (const Option* o = find_option(c.options, words[words.size() - 2]);
            o && o->kind != Kind::flag && o->kind != Kind::list)
            return offer_value(*o, cur);
    if (cur.starts_with('-') && !dashdash)
        return offer_options(c, cur);
    offer_operand(c, operands, uri, cur);
}

} // namespace

int cmd_complete(const Invocation& in) {
    const auto& words = in.args.operands;
    if (words.empty())
        return 0;
    const std::string& cur = words.back();
    std::string uri;
    size_t i = 0;
    for (; i + 1 < words.size() && is_option_word(words[i]); ++i) {
        if (words[i] == "-c" || words[i] == "--connect") {
            if (i + 2 == words.size())
                return 0; // a URI: nothing sensible to offer
            uri = words[++i];
        } else if (words[i].starts_with("--connect=")) {
            uri = words[i].substr(10);
        }
    }
    if (i + 1 == words.size()) {
        if (cur.starts_with('-'))
            for (auto o : global_options)
                offer(o, cur);
        else
            offer_commands(cur);
        return 0;
    }
    const Command* c = find_command(words[i++]);
    if (c && is_group(*c)) {
        if (i + 1 == words.size()) {
            offer_subcommands(*c, cur);
            offer_options(*c, cur);
            return 0;
        }
        c = find_command(std::string(c->name) + " " + words[i++]);
    }
    if (c)
        complete_command(*c, words, i, uri);
    return 0;
}

} // namespace vmupdate::cli
