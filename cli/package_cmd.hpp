// `vmupdate host-update --packages ...`: a QEMU/libvirt update in one command.
#pragma once

#include "vmupdate/paths.hpp"

#include <string>
#include <vector>

namespace vmupdate::cli {

/// Runs `vmupdate host-update --packages PKG... [--dry-run] [--yes] [--parallel N]`
/// (args without the command name); prints results and errors and returns the
/// exit code (0 done, 1 failed, 2 refused or invalid).
int cmd_package_update(const std::string& uri, const std::vector<std::string>& args,
                       const Paths& paths);

} // namespace vmupdate::cli
