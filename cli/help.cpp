#include "help.hpp"

#include <algorithm>

namespace vmupdate::cli {
namespace {

std::vector<std::string_view> lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        out.push_back(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    }
    return out;
}

// "  NAME ARG" and its text, the text in column 25 (on the next line if NAME
// ARG is too wide), continuation lines aligned with it.
void append_entry(std::string& out, std::string_view head, std::string_view text) {
    constexpr size_t column = 25;
    out += "  ";
    out += head;
    bool first = true;
    for (auto line : lines(text)) {
        size_t at = first && 2 + head.size() < column - 1 ? 2 + head.size() : 0;
        if (at == 0)
            out += '\n';
        out.append(column - at, ' ');
        out += line;
        first = false;
    }
    out += '\n';
}

void append_synopsis(std::string& out, const Command& c, bool& first) {
    for (auto line : lines(c.synopsis)) {
        if (line.starts_with(' '))
            out += std::string(16, ' ');
        else
            out += first ? "usage: vmupdate " : "       vmupdate ";
        out += line;
        out += '\n';
        first = false;
    }
}

bool takes_value(const Command& c, std::string_view arg) {
    const Option* o = find_option(c.options, arg);
    return o && o->kind != Kind::flag;
}

} // namespace

std::string overview() {
    std::string out = "usage: vmupdate [-c URI] COMMAND [ARGS...]\n"
                      "       vmupdate COMMAND --help\n\n"
                      "Keeps libvirt/QEMU virtual machines running across a host update by "
                      "keeping\ntheir RAM in a file and saving only their device state.\n\n"
                      "Commands:\n";
    for (const auto& c : commands()) {
        if (is_group(c) || c.hidden)
            continue;
        auto synopsis = lines(c.synopsis);
        for (size_t i = 0; i + 1 < synopsis.size(); ++i)
            out += "  " + std::string(synopsis[i]) + '\n';
        append_entry(out, synopsis.back(), c.summary);
    }
    out += "\nSeveral domains are handled --parallel N at a time (default 4). Domain names\n"
           "that start with '-' go after \"--\" (vmupdate save -- -web1).\n\n"
           "Options:\n";
    append_entry(out, "-c, --connect URI",
                 "libvirt connection URI (default: libvirt's default,\n"
                 "qemu:///system for root)");
    append_entry(out, "-h, --help", "show this help; COMMAND --help shows COMMAND's");
    append_entry(out, "-V, --version", "show the version");
    out += "\nExit status: 0 done, 1 failed, 2 refused or invalid input (nothing changed).\n"
           "See also: man vmupdate.\n";
    return out;
}

std::string command_help(const Command& c) {
    std::string out;
    bool first = true;
    auto forms = is_group(c) ? subcommands(c) : std::vector<const Command*>{&c};
    for (const auto* s : forms)
        append_synopsis(out, *s, first);
    out += "       vmupdate " + std::string(c.name) + " --help\n\n";
    out += c.description;
    out += '\n';
    if (is_group(c)) {
        out += "\nCommands:\n";
        for (const auto* s : forms)
            append_entry(out, s->name.substr(c.name.size() + 1), s->summary);
        out += "\n'vmupdate " + std::string(c.name) + " COMMAND --help' shows COMMAND's options.\n";
        return out;
    }
    out += "\nOptions:\n";
    for (const auto& o : c.options)
        append_entry(out, std::string(o.names) + (o.arg.empty() ? "" : " " + std::string(o.arg)),
                     o.text);
    out += '\n';
    if (c.synopsis.find("DOMAIN") != std::string_view::npos) {
        out += "Domain names that start with '-' go after \"--\": vmupdate " + std::string(c.name) +
               " -- -web1\n";
    }
    if (c.connects)
        out += "Global option, before the command: -c, --connect URI (libvirt connection).\n";
    out += "Exit status: 0 done, 1 failed, 2 refused or invalid input (nothing changed).\n";
    return out;
}

const Command* help_request(std::string_view command, const std::vector<std::string>& args) {
    const Command* c = find_command(command);
    if (!c)
        return nullptr;
    size_t i = 0;
    if (is_group(*c) && !args.empty())
        if (const auto* sub = find_command(std::string(command) + " " + args[0])) {
            c = sub;
            i = 1;
        }
    for (; i < args.size() && args[i] != "--"; ++i) {
        if (args[i] == "-h" || args[i] == "--help")
            return c;
        if (takes_value(*c, args[i]))
            ++i;
    }
    return nullptr;
}

} // namespace vmupdate::cli
