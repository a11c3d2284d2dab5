// kexec: loading and starting a new kernel, and reading kernel command lines.
#pragma once

#include "vmupdate/error.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// The kernel to kexec into.
struct KexecPlan {
    std::string kernel;  ///< path of the kernel image
    std::string initrd;  ///< path of the initramfs; may be empty
    std::string cmdline; ///< its command line
};

/// The running kernel's command line (/proc/cmdline), trimmed.
[[nodiscard]] Result<std::string> current_cmdline();

/// The `memmap=SIZE!OFFSET` arguments of a command line: legacy pmem regions,
/// which only exist in the next kernel if its command line has them too.
[[nodiscard]] std::vector<std::string> pmem_memmap_args(std::string_view cmdline);

/// Loads the plan's kernel (`kexec -l`), replacing one loaded before.
[[nodiscard]] Result<void> kexec_load(const KexecPlan& plan);

/// Unloads a loaded kernel (`kexec -u`).
[[nodiscard]] Result<void> kexec_unload();

/// Starts the loaded kernel (`kexec -e`). Returns only if that failed.
[[nodiscard]] Result<void> kexec_exec();

} // namespace vmupdate
