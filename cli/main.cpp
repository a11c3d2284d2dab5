// vmupdate: the command-line tool. Reads the global options, then runs the
// command by its row of the table (command.hpp): parsed by its options, helped
// from its texts. Exit codes: 0 ok, 1 failed, 2 refused/invalid.
#include "command.hpp"
#include "help.hpp"
#include "output.hpp"
#include "vmupdate/version.hpp"

#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace vmupdate::cli;

struct Args {
    std::string uri;
    std::string command;
    std::vector<std::string> rest;
};

// The global options before COMMAND, into `args`; returns the exit code when
// there is nothing more to do (--help, --version, an error).
std::optional<int> parse_global(int argc, char** argv, Args& args) {
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::cout << overview();
            return 0;
        }
        if (a == "-V" || a == "--version") {
            std::cout << "vmupdate " << vmupdate::version << '\n';
            return 0;
        }
        if (a == "-c" || a == "--connect") {
            if (i + 1 >= argc)
                return usage_error(a + " needs a URI");
            args.uri = argv[++i];
            continue;
        }
        if (a.starts_with("--connect=")) {
            args.uri = a.substr(10);
            continue;
        }
        if (is_option_word(a))
            return usage_error("unknown option " + a);
        break;
    }
    if (i >= argc)
        return usage_error("no command given");
    args.command = argv[i++];
    for (; i < argc; ++i)
        args.rest.emplace_back(argv[i]);
    return std::nullopt;
}

std::string fill(std::string_view format, const std::string& word) {
    std::string out(format);
    if (auto at = out.find("{}"); at != std::string::npos)
        out.replace(at, 2, word);
    return out;
}

// A group's subcommand ("pool create"), taken off the arguments; an exit code
// when there is none to run.
std::optional<int> select_subcommand(const Command*& command, std::vector<std::string>& rest) {
    std::string group(command->name);
    if (rest.empty())
        return usage_error(std::string(command->missing), group);
    if (rest[0] == "help") {
        std::cout << command_help(*command);
        return 0;
    }
    command = find_command(group + " " + rest[0]);
    if (!command)
        return usage_error(fill(find_command(group)->reject, rest[0]), group);
    rest.erase(rest.begin());
    return std::nullopt;
}

int run_command(Args& args) {
    // `COMMAND --help` anywhere among the command's options, never after "--".
    if (const auto* help = help_request(args.command, args.rest)) {
        std::cout << command_help(*help);
        return 0;
    }
    const Command* command = find_command(args.command, true);
    if (!command)
        return usage_error("unknown command '" + args.command + "'");
    if (is_group(*command))
        if (auto done = select_subcommand(command, args.rest))
            return *done;
    Parsed parsed;
    if (command->operands == Operands::raw) {
        parsed.operands = std::move(args.rest);
    } else {
        auto p = parse(command->options, parse_rules(*command), args.rest);
        if (!p)
            return usage_error(p.error().message, std::string(command->name));
        parsed = std::move(*p);
    }
    return command->run(Invocation{*command, args.uri, std::move(parsed)});
}

} // namespace

int main(int argc, char** argv) {
    Args args;
    if (auto done = parse_global(argc, argv, args))
        return *done;
    // systemd-shutdown spares root processes whose argv[0] starts with '@' (its
    // root storage daemon rule): the holder must live into the kexec.
    if (args.command == "handover-hold" && argc > 0 && argv[0][0] != '\0')
        argv[0][0] = '@';
    return run_command(args);
}
