// The command table: one row per command says how it is parsed (its typed
// options, options.hpp), what runs it, its help and what the completion offers,
// so that a new command is one row and one handler (CONTRIBUTING.md).
#pragma once

#include "options.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::cli {

struct Command;

/// One run of a command: the row, the global -c URI and the parsed arguments.
struct Invocation {
    const Command& command;
    std::string uri;
    Parsed args;
};

/// Runs a command; prints its results and errors, returns the exit code.
using Handler = int (*)(const Invocation&);

/// What a command takes besides its options (and the completion offers).
enum class Operands {
    none,          ///< nothing: "--" is an unknown argument like any other
    file,          ///< a FILE
    domains,       ///< names of domains libvirt knows
    saved_domains, ///< names of domains with a vmupdate save
    commands,      ///< command names (help)
    uuids,         ///< domain UUIDs (internal)
    raw,           ///< every word as it is, none parsed as an option (internal)
};

/// One command (or a group: `pool`, `hook`): how it is parsed, run and helped.
struct Command {
    std::string_view name{}; ///< "save", "pool create", "pool"
    /// The synopsis after "vmupdate ", one form a line; a line that starts with
    /// a space continues the previous one. Empty for a group: its subcommands'.
    std::string_view synopsis{};
    std::string_view summary{};     ///< for the overview, lines of at most 54 characters
    std::string_view description{}; ///< for the command's own help, wrapped at 78
    std::span<const Option> options{};
    bool connects = false; ///< talks to libvirt, so the global -c URI applies
    Operands operands = Operands::none;
    Handler run = nullptr; ///< nullptr for a group: its subcommands run
    /// An unknown option or operand ("{}" the word); empty for "NAME: unknown
    /// option {}". For a group: an unknown subcommand.
    std::string_view reject{};
    std::string_view prefix{};  ///< before "--opt needs ..." errors, e.g. "save: "
    std::string_view missing{}; ///< a value missing ("{}" the option); for a group: no subcommand
    bool hidden = false;        ///< internal: not in the help, man page or completion
};

/// Every command and group, in the order the overview lists them, hidden ones too.
[[nodiscard]] std::span<const Command> commands();

/// The command or group called `name` ("pool create"), or nullptr; hidden ones
/// only when asked for.
[[nodiscard]] const Command* find_command(std::string_view name, bool hidden = false);

/// Whether `command` is a group of subcommands (pool, hook).
[[nodiscard]] bool is_group(const Command& command);

/// The subcommands of a group, e.g. "pool list" and "pool create" of "pool".
[[nodiscard]] std::vector<const Command*> subcommands(const Command& group);

/// How `command` reports the arguments its options do not accept.
[[nodiscard]] ParseRules parse_rules(const Command& command);

} // namespace vmupdate::cli
