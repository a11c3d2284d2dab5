// What every command prints the same way: errors, invalid arguments, the
// confirmation question and the refusal of a host update. Only the CLI prints
// (the library returns values); this is where its conventions live.
#pragma once

#include "vmupdate/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmupdate::cli {

/// Prints "vmupdate: MESSAGE" on stderr; returns the exit code of `e`.
int report(const Error& e);

/// Invalid arguments: says what, and where the help is ("Try 'vmupdate
/// COMMAND --help'."); returns 2.
int usage_error(const std::string& what, const std::string& command = {});

/// Prints "vmupdate: warning: WHAT" on stderr.
void warn(const std::string& what);

/// Prints "vmupdate: warning: NAME: W" for every warning of domain `name`.
void warn(const std::string& name, const std::vector<std::string>& warnings);

/// What the user answered to "Continue? [y/N]".
enum class Answer { yes, no, not_a_terminal };

/// Asks "Continue? [y/N]" on a terminal; a standard input that is not one cannot answer.
[[nodiscard]] Answer confirm();

/// The last word before a host update pauses anything: with `dry_run`, prints
/// `dry_run_done` and stops (0); with `yes`, goes on (nullopt); otherwise asks
/// on the terminal: "nothing done" (0) or, without a terminal, invalid input (2).
[[nodiscard]] std::optional<int> go_ahead(bool dry_run, bool yes, const std::string& dry_run_done);

/// Prints the warnings, then, if there are offenders, "COMMAND refused, nothing
/// was paused:" and each; returns whether it refused.
bool refuse(const std::string& command, const std::vector<std::string>& warnings,
            const std::vector<std::string>& offenders);

/// "1.234 s": a duration in microseconds, to the millisecond.
[[nodiscard]] std::string human_us(std::int64_t us);

/// "1.23 s": a duration in seconds, to the hundredth.
[[nodiscard]] std::string seconds(double s);

} // namespace vmupdate::cli
