// The pre-flight of `host-update --packages` with the processes it runs passed
// in, so that tests can check what it runs (no download on --dry-run). Private header.
#pragma once

#include "process.hpp"
#include "vmupdate/package_update.hpp"

namespace vmupdate {

/// Simulates the install of plan.packages through `run`, reads and reviews the
/// changes (offenders, libvirt restart), and downloads them when options.download
/// and nothing was refused.
[[nodiscard]] Result<void> simulate_and_download(PackageUpdatePlan& plan,
                                                 const PackageOptions& options,
                                                 const ProcessRunner& run);

} // namespace vmupdate
