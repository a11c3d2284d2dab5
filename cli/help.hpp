// The help texts of every vmupdate command, printed from the command table
// (command.hpp): `vmupdate --help`, `vmupdate COMMAND --help` and `vmupdate help
// COMMAND`, so the overview, the per-command help and the parser cannot disagree.
#pragma once

#include "command.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::cli {

/// `vmupdate --help`: the usage, every command with its summary, the global options.
[[nodiscard]] std::string overview();

/// `vmupdate COMMAND --help`: the usage, description and options of one command.
[[nodiscard]] std::string command_help(const Command& command);

/// Whether the arguments of `command` ask for its help: -h or --help among its
/// options, i.e. before "--" and not as the value of an option that takes one.
/// For a group, a known subcommand as the first argument selects its help.
/// Returns the command whose help to print, or nullptr.
[[nodiscard]] const Command* help_request(std::string_view command,
                                          const std::vector<std::string>& args);

} // namespace vmupdate::cli
