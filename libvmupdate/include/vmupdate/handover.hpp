// RAM handover: guest RAM on tmpfs kept across a kexec in memfds that the Live
// Update Orchestrator (Kexec HandOver + LUO, Linux >= 6.19, `kho=on
// liveupdate=on`) passes to the next kernel, so a kernel update needs no
// persistent memory. After the boot the RAM is written back into vmupdate's
// preserved files, and the domains are restored as from pmem.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/paths.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vmupdate {

/// The LUO session vmupdate hands guest RAM over in.
inline constexpr std::string_view handover_session = "vmupdate-ram";

/// The release an x86 bzImage names in its header, e.g. "7.2.11-vmu-luo".
[[nodiscard]] Result<std::string> kernel_image_release(const std::string& path);

/// "MAJOR.MINOR" of a kernel release: LUO's handover format holds only within one series.
[[nodiscard]] std::string kernel_series(std::string_view release);

/// Why this kernel cannot hand RAM over to `next_kernel` booted with
/// `next_cmdline`, one reason per line; empty when it can. Asks /dev/liveupdate
/// (it opens only with LUO on and no other holder), reads the image's release,
/// and refuses while an earlier handover's record is there.
[[nodiscard]] std::vector<std::string> handover_offenders(const Paths& paths,
                                                          const std::string& next_kernel,
                                                          std::string_view next_cmdline);

/// The command line words both kernels need (`kho=on liveupdate=on`); the
/// offenders a command line alone gives (missing or switched off).
[[nodiscard]] std::vector<std::string> handover_cmdline_offenders(std::string_view cmdline,
                                                                  std::string_view which);

/// RAM files handed to the next kernel. They live in a LUO session that lasts
/// as long as this object: the kexec must happen while it exists; destroying it
/// takes the RAM back (as take_back) rather than letting the session free it.
class RamHandover {
public:
    RamHandover(RamHandover&&) noexcept;
    RamHandover& operator=(RamHandover&&) noexcept;
    ~RamHandover();

    /// Files handed over.
    [[nodiscard]] std::size_t files() const noexcept;
    /// Their bytes.
    [[nodiscard]] std::uint64_t bytes() const noexcept;

    /// Calls the handover off before a kexec: ends the session and writes the
    /// RAM back into preserved files, so the domains are restorable as before.
    [[nodiscard]] Result<void> take_back();

    struct Impl;

private:
    explicit RamHandover(std::unique_ptr<Impl> impl) noexcept;
    friend Result<RamHandover> hand_over_ram(const Paths&, const std::vector<std::string>&);
    std::unique_ptr<Impl> impl_;
};

/// Hands the preserved RAM of the saved domains `uuids` (on tmpfs) to the next
/// kernel: records what goes under which token (state_dir/handover.json), then
/// unlinks each preserved file and preserves it in the session. Any failure
/// takes back what was handed over and leaves the domains restorable.
[[nodiscard]] Result<RamHandover> hand_over_ram(const Paths& paths,
                                                const std::vector<std::string>& uuids);

/// The holder of a handover on a systemd host, run by host-update as the
/// transient service vmupdate-handover.service (`vmupdate handover-hold UUID...`),
/// which the shutdown does not stop, under an argv[0] starting with '@', which
/// systemd-shutdown does not kill: hands the RAM over, reports in
/// run_dir/handover.status ("held ...", or "failed: ..."), and holds the session
/// into the kexec. SIGTERM, SIGINT or SIGHUP (host-update calling it off) take the
/// RAM back, reported as "taken back" before it returns.
[[nodiscard]] Result<void> hold_handover(const Paths& paths, const std::vector<std::string>& uuids);

/// Starts hold_handover as vmupdate-handover.service with `vmupdate` at `exe` and
/// waits until it holds the RAM; its failure is returned (the RAM then is back).
[[nodiscard]] Result<void> start_handover_holder(const Paths& paths, const std::string& exe,
                                                 const std::vector<std::string>& uuids);

/// Calls a started holder off: it takes the RAM back; waits for that.
[[nodiscard]] Result<void> stop_handover_holder(const Paths& paths);

/// The RAM holder, run as `vmupdate ram-hold -- RUN_DIR PID TOKEN:FD...` when a
/// write-back fails: reopens descriptor FD of process PID for each token, says
/// so in run_dir/ram-held.json and holds them until a restore has written them
/// back and removed that record (signals alone do not end it).
[[nodiscard]] Result<void> hold_ram_files(const Paths& paths, pid_t from,
                                          const std::vector<std::string>& specs);

/// What reclaim_handed_over_ram did.
struct ReclaimReport {
    std::size_t files{};            ///< RAM files written back
    std::uint64_t bytes{};          ///< their size
    double seconds{};               ///< retrieving and writing back
    std::vector<std::string> uuids; ///< the domains they belong to
};

/// After the kexec: writes the RAM the previous kernel handed over back into the
/// preserved files and updates the manifests; nullopt when nothing was handed
/// over. Also settles a handover that never reached a kexec, and retries one
/// whose write-back failed before: RAM that cannot be written back stays with
/// a holder (hold_ram_files) and the error is Errc::ram_held.
[[nodiscard]] Result<std::optional<ReclaimReport>> reclaim_handed_over_ram(const Paths& paths);

/// The domains whose handed-over RAM is not written back yet (after a failed
/// reclaim): their restore would only fail on the missing file.
[[nodiscard]] std::vector<std::string> domains_awaiting_write_back(const Paths& paths);

} // namespace vmupdate
