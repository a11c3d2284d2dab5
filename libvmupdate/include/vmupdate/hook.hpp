// The libvirt qemu hook: keeps the RAM of managed domains alive across stops,
// wires up the restore of images vmupdate saved, and stays out of everything else.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/paths.hpp"
#include "vmupdate/state.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// One hook invocation: libvirt runs `HOOK <domain> <op> <subop> <extra>` with
/// the domain XML on stdin.
struct HookCall {
    std::string domain, op, subop, extra;
    std::string xml;
};

/// What the hook's main() must do.
struct HookOutcome {
    int exit_code = 0;            ///< non-zero aborts libvirt's start/restore/migrate
    std::string output;           ///< altered domain XML (restore/migrate only), else empty
    std::string error;            ///< for stderr when exit_code != 0; libvirt shows it
    std::vector<std::string> log; ///< what was done, for the hook log
};

/// Handles one hook call. `helper` is the restore helper executable, started on
/// restore as `helper UUID ATTEMPT SOCKET DOMAIN` (see restore_helper.hpp).
/// Never calls libvirt; never blocks for long.
[[nodiscard]] HookOutcome run_hook(const Paths& paths, const HookCall& call,
                                   const std::string& helper);

/// Appends timestamped lines to the hook log (paths.log_file), as `program[pid]`;
/// best effort: a log that cannot be written must not fail libvirt's call.
void append_hook_log(const Paths& paths, std::string_view program,
                     const std::vector<std::string>& lines) noexcept;

/// Drops a domain's vmupdate save: its preserved RAM, then its manifest (in that
/// order: a crash in between leaves a manifest whose RAM check fails, never RAM
/// that no manifest accounts for).
[[nodiscard]] Result<void> drop_save(const Paths& paths, const StateDir& state,
                                     std::string_view uuid);

/// The file in which the hook records which libvirt daemon runs it.
[[nodiscard]] std::string hook_daemon_mark(const Paths& paths);

/// Refuses (Errc::refused, saying how to fix it) unless the libvirt daemon that
/// runs now has run this hook: without the hook at restore, a vmupdate save can
/// be restored neither by vmupdate nor by `virsh start`.
[[nodiscard]] Result<void> check_hook_runs(const Paths& paths);

/// The file that names a running `vmupdate host-update`; while that process
/// lives, the hook refuses cold starts of managed domains.
[[nodiscard]] std::string host_update_mark(const Paths& paths);

/// The name libvirt gives the AppArmor profile that confines a domain's QEMU:
/// "libvirt-" and the domain's canonical UUID.
[[nodiscard]] std::string apparmor_profile_name(std::string_view uuid);

/// Whether `attempt` is a restore attempt id of the domain `uuid`, i.e.
/// `<apparmor_profile_name(uuid)>.<16 lowercase hex digits>`.
[[nodiscard]] bool is_attempt_of(std::string_view attempt, std::string_view uuid);

/// Removes the socket directory of one restore attempt (<run_dir>/qmp/<attempt>,
/// owned by the QEMU user) without following anything that user may have put there.
[[nodiscard]] Result<void> remove_attempt_dir(const Paths& paths, std::string_view attempt);

/// The QEMU process's user and group from qemu.conf (Debian's libvirt-qemu by default).
struct QemuUser {
    unsigned uid, gid;
};
/// Resolves the user and group libvirt runs QEMU as.
[[nodiscard]] Result<QemuUser> qemu_user(const std::string& qemu_conf);

} // namespace vmupdate
