// `vmupdate pool ...`: the pmem pool that holds guest RAM.
#pragma once

#include <string>
#include <vector>

namespace vmupdate::cli {

/// Runs `vmupdate pool ARGS...` (list, create); prints results and errors and
/// returns the exit code (0 done, 1 failed, 2 refused or invalid).
int cmd_pool(const std::vector<std::string>& args);

} // namespace vmupdate::cli
