// The help texts of every vmupdate command, in one table: `vmupdate --help`,
// `vmupdate COMMAND --help` and `vmupdate help COMMAND` all print from it, so the
// overview and the per-command help cannot disagree.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::cli {

/// One option of a command, e.g. {"--parallel", "N", "save N domains at a time"}.
struct OptionHelp {
    std::string_view names; ///< "-v, --verbose": every spelling, ", "-separated
    std::string_view arg;   ///< the value it takes ("N"), empty for a switch
    std::string_view text;  ///< one line
};

/// One command (or a group: `pool`, `hook`) and its help.
struct CommandHelp {
    std::string_view name; ///< "save", "pool create", "pool"
    /// The synopsis after "vmupdate ", one form a line; a line that starts with
    /// a space continues the previous one. Empty for a group: its subcommands'.
    std::string_view synopsis;
    std::string_view summary;     ///< for the overview, lines of at most 54 characters
    std::string_view description; ///< for the command's own help, wrapped at 78
    std::span<const OptionHelp> options;
    bool connects = false; ///< talks to libvirt, so the global -c URI applies
};

/// Every command and group, in the order the overview lists them.
[[nodiscard]] std::span<const CommandHelp> commands();

/// The command or group called `name` ("pool create"), or nullptr.
[[nodiscard]] const CommandHelp* find_command(std::string_view name);

/// `vmupdate --help`: the usage, every command with its summary, the global options.
[[nodiscard]] std::string overview();

/// `vmupdate COMMAND --help`: the usage, description and options of one command.
[[nodiscard]] std::string command_help(const CommandHelp& command);

/// Whether the arguments of `command` ask for its help: -h or --help among its
/// options, i.e. before "--" and not as the value of an option that takes one.
/// For a group, a known subcommand as the first argument selects its help.
/// Returns the command whose help to print, or nullptr.
[[nodiscard]] const CommandHelp* help_request(std::string_view command,
                                              const std::vector<std::string>& args);

} // namespace vmupdate::cli
