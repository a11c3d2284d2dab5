// The restore helper: a short-lived root process the hook starts on restore. It
// accepts the restoring QEMU's connection to the private QMP monitor (on root's
// socket, which the hook passes it listening), turns migration
// capability x-ignore-shared on before libvirt's migrate-incoming, waits for the
// incoming migration to finish and turns the capability off again. QEMU and its
// user are untrusted: the peer must be the domain's QEMU process, and everything
// it sends and every wait is bounded.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/paths.hpp"
#include "vmupdate/qmp.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace vmupdate {

/// The executable's file name; the hook starts it from its own directory.
inline constexpr const char* restore_helper_name = "vmupdate-restore-helper";

/// What the hook passes: `vmupdate-restore-helper UUID ATTEMPT SOCKET DOMAIN`.
struct RestoreHelperArgs {
    std::string uuid;    ///< the domain's canonical UUID
    std::string attempt; ///< the restore attempt (libvirt-<uuid>.<hex>), as in the manifest
    std::string socket;  ///< the private monitor: <run_dir>/qmp/<attempt>/qmp.sock
    std::string domain;  ///< the domain's name, for libvirt's pidfile of its QEMU
    int listen_fd = 3;   ///< `socket`, bound and listening (the hook passes it as fd 3)
};

/// Bounds of the helper's waits and of what it accepts from QEMU. The defaults are
/// production's; tests shorten them.
struct RestoreHelperOptions {
    /// Until the domain's QEMU has connected (a moment after libvirt starts it),
    /// been checked and completed the QMP handshake; others are hung up on meanwhile.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(60);
    /// The incoming migration, from the capability turned on to its end.
    std::chrono::milliseconds migration_timeout = std::chrono::minutes(10);
    /// Each QMP command.
    std::chrono::milliseconds command_timeout = std::chrono::seconds(10);
    /// How long to wait for a MIGRATION event before asking query-migrate.
    std::chrono::milliseconds poll_interval = std::chrono::milliseconds(250);
    /// What QEMU may send: QEMU's replies to the helper's few commands are small.
    QmpLimits limits{1 << 20, 64, 256 << 10, 64};
};

/// Parses the helper's command line (without the program name); Errc::invalid_input
/// for a wrong count, a non-canonical UUID, an attempt that is not the domain's
/// (is_attempt_of) or an unsafe name.
[[nodiscard]] Result<RestoreHelperArgs>
parse_restore_helper_args(const std::vector<std::string>& argv);

/// Runs the helper for one restore attempt: records success (state restored) or the
/// failure (last_error) in the domain's manifest when it still belongs to
/// `args.attempt`. Log lines go to `log`.
[[nodiscard]] Result<void> run_restore_helper(const Paths& paths, const RestoreHelperArgs& args,
                                              std::vector<std::string>& log,
                                              const RestoreHelperOptions& options = {});

} // namespace vmupdate
