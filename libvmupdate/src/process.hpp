// Running external tools (kexec, mkfs, ...): argv vectors, never shell strings;
// stdout and stderr captured; a time-out; the child killed and reaped on the
// way out. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace vmupdate {

/// What a finished process left.
struct ProcessResult {
    int exit_code{};
    std::string out, err;
};

/// Runs argv[0] (searched in PATH) with the arguments; fails with Errc::timeout
/// after `timeout` (the process is killed) and Errc::system when it cannot start.
[[nodiscard]] Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                                std::chrono::milliseconds timeout);

/// Same, with stdout and stderr appended to the file `log` instead of pipes, so
/// that the child outlives vmupdate without a SIGPIPE (dpkg must not be cut off
/// half way); `out` is the tail of what this run wrote there, `err` is empty.
[[nodiscard]] Result<ProcessResult> run_process_logged(const std::vector<std::string>& argv,
                                                       std::chrono::milliseconds timeout,
                                                       const std::string& log);

/// run_process, or a stand-in for it in tests.
using ProcessRunner = std::function<Result<ProcessResult>(const std::vector<std::string>&,
                                                          std::chrono::milliseconds)>;

/// Same, and a non-zero exit is an error whose cause is the tool's stderr.
[[nodiscard]] Result<std::string> run_checked(const std::vector<std::string>& argv,
                                              std::chrono::milliseconds timeout);

} // namespace vmupdate
