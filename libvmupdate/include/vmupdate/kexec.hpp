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
    bool file_load{};    ///< load with kexec_file_load (`kexec -s`), which Kexec HandOver needs
};

/// The running kernel's command line (/proc/cmdline), trimmed.
[[nodiscard]] Result<std::string> current_cmdline();

/// The `memmap=SIZE!OFFSET` arguments of a command line: legacy pmem regions,
/// which only exist in the next kernel if its command line has them too.
[[nodiscard]] std::vector<std::string> pmem_memmap_args(std::string_view cmdline);

/// Loads the plan's kernel (`kexec -l`, with `-s` for file_load), replacing one loaded before.
[[nodiscard]] Result<void> kexec_load(const KexecPlan& plan);

/// Unloads a loaded kernel (`kexec -u`).
[[nodiscard]] Result<void> kexec_unload();

/// How the loaded kernel is started.
enum class KexecVia {
    kexec_e, ///< `kexec -e`: at once, no service stops (hosts without systemd)
    systemd, ///< `systemctl kexec`: a clean shutdown, then the loaded kernel
};

/// systemd when it runs as PID 1 (the directory run_systemd exists, as
/// sd_booted() checks), else `kexec -e`.
[[nodiscard]] KexecVia kexec_method(const std::string& run_systemd = "/run/systemd/system");

/// Starts the loaded kernel. `kexec -e` returns only if it failed; `systemctl
/// kexec` returns once systemd has begun the shutdown into it.
[[nodiscard]] Result<void> kexec_exec(KexecVia via);

} // namespace vmupdate
