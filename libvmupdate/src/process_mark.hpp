// Small files in vmupdate's run directory that name a live process: which
// libvirt daemon last ran the hook, and which `vmupdate host-update` is under
// way. A pid alone can be reused; the pair (pid, start time) cannot. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace vmupdate {

/// A process, told apart from later ones with the same pid by its start time.
struct ProcessId {
    int pid{};
    std::uint64_t start_time{}; ///< field 22 of /proc/<pid>/stat (clock ticks since boot)

    friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

/// The identity of a running process; Errc::not_found when it does not exist.
[[nodiscard]] Result<ProcessId> process_id(int pid);

/// Records `who` in `path` ("<pid> <start time>\n"), atomically, mode 0600;
/// does not rewrite a file that already says the same.
[[nodiscard]] Result<void> write_process_mark(const std::string& path, const ProcessId& who);

/// The process a mark names, when the file exists, is well formed and that very
/// process still runs; nullopt otherwise.
[[nodiscard]] std::optional<ProcessId> live_process_mark(const std::string& path);

} // namespace vmupdate
