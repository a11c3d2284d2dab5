// Running external tools (kexec, mkfs, ...): argv vectors, never shell strings;
// stdout and stderr captured; a time-out; the child killed and reaped on the
// way out. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <chrono>
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

/// Same, and a non-zero exit is an error whose cause is the tool's stderr.
[[nodiscard]] Result<std::string> run_checked(const std::vector<std::string>& argv,
                                              std::chrono::milliseconds timeout);

} // namespace vmupdate
