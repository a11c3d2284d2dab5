// The libvirt qemu hook: keeps the RAM of managed domains alive across stops,
// wires up the restore of images vmupdate saved, and stays out of everything else.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/paths.hpp"

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

/// The QEMU process's user and group from qemu.conf (Debian's libvirt-qemu by default).
struct QemuUser {
    unsigned uid, gid;
};
/// Resolves the user and group libvirt runs QEMU as.
[[nodiscard]] Result<QemuUser> qemu_user(const std::string& qemu_conf);

} // namespace vmupdate
