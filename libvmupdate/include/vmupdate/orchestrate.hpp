// The operations an operator runs: save, restore, status, hook installation.
// Each leaves every domain running or restorable and says which. One source
// file each: save.cpp, restore.cpp, discard.cpp, parallel.cpp (the --all
// runner), phases.cpp, status.cpp, hook_install.cpp.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/paths.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmupdate {

/// What `vmupdate save` did to one domain.
struct SaveReport {
    std::string name;
    std::uint64_t ram_bytes{};   ///< guest RAM kept in files, not written to the image
    std::uint64_t image_bytes{}; ///< the managed-save image (device state)
    double seconds{};            ///< wall time of the save
    std::vector<std::string> warnings;
    std::size_t discard_switched{}; ///< memory backends whose discard-data was switched off
    std::int64_t discard_us{};      ///< the discard check and switch, before the pause
};

/// Saves a running, prepared domain's device state only, keeping its RAM in its
/// file. On failure before QEMU stops, the domain keeps running unchanged.
[[nodiscard]] Result<SaveReport> save_domain(const Connection& conn, const Paths& paths,
                                             std::string_view name, const EventWatch& events);

/// One phase of the guest's pause.
struct Phase {
    std::string what;  ///< e.g. "QEMU launch"
    std::int64_t us{}; ///< its duration
};

/// What `vmupdate restore` did to one domain.
struct RestoreReport {
    std::string name;
    std::optional<std::int64_t> pause_us; ///< guest pause, libvirt Suspended -> Resumed
    double seconds{};                     ///< wall time of the restore
    std::vector<Phase> phases;            ///< where the pause went, in order
    std::vector<std::string> warnings;
    bool was_running{}; ///< it still ran: an interrupted save was undone, nothing restored
};

/// Splits a save-and-restore timeline into the phases of the guest's pause
/// (consecutive known moments; missing ones merge their neighbours).
[[nodiscard]] std::vector<Phase> pause_phases(const std::vector<TimePoint>& timeline);

/// Restores a domain vmupdate saved, from its preserved RAM. On failure the
/// managed-save image and the RAM are kept, so the restore can be retried.
[[nodiscard]] Result<RestoreReport> restore_domain(const Connection& conn, const Paths& paths,
                                                   std::string_view name, const EventWatch& events);

/// Drops a stopped domain's vmupdate save: its preserved RAM, its manifest and
/// its managed-save image when vmupdate wrote it; returns what was done.
[[nodiscard]] Result<std::string> discard_save(const Connection& conn, const Paths& paths,
                                               std::string_view name);

/// Saves several domains, at most `parallel` at a time; results in input order.
[[nodiscard]] std::vector<Result<SaveReport>>
save_domains(const Connection& conn, const Paths& paths, const std::vector<std::string>& names,
             const EventWatch& events, unsigned parallel);

/// Restores several domains, at most `parallel` at a time; results in input order.
/// After an interrupt none is started, unless `undoing` (bringing VMs back after a
/// failed host update, which an interrupt must not stop).
[[nodiscard]] std::vector<Result<RestoreReport>>
restore_domains(const Connection& conn, const Paths& paths, const std::vector<std::string>& names,
                const EventWatch& events, unsigned parallel, bool undoing = false);

/// Names of the running domains vmupdate manages (for `save --all`).
[[nodiscard]] Result<std::vector<std::string>> running_managed_domains(const Connection& conn,
                                                                       const Paths& paths);

/// Names of the domains with a recorded vmupdate save (for `restore --all`).
[[nodiscard]] Result<std::vector<std::string>> saved_domains(const Paths& paths);

/// One line of `vmupdate status`.
struct DomainStatus {
    std::string name, uuid;
    bool running{}, managed{}, shared_file_ram{};
    std::string backing_dir, fs_type, fs_kind; ///< where its RAM lives
    std::uint64_t ram_bytes{};
    std::string save_state;                    ///< "" (none), saving, saved, restoring, restored
    std::optional<std::uint64_t> image_bytes;  ///< managed-save image, when one exists
    std::optional<std::int64_t> last_pause_us; ///< last measured restore pause
    std::string last_error;                    ///< why the last restore failed
    std::string unmanaged_why; ///< why vmupdate cannot keep it, and the remedy; empty if it can
};

/// The state of every domain on the connection.
[[nodiscard]] Result<std::vector<DomainStatus>> domain_status(const Connection& conn,
                                                              const Paths& paths);

/// Why libvirt's AppArmor profile would stop libvirtd (or virtqemud) from running
/// the hook at hook_realpath, given the loaded profiles (the text of
/// /sys/kernel/security/apparmor/profiles); empty if it would not.
[[nodiscard]] std::string apparmor_blocks_hook(std::string_view loaded_profiles,
                                               std::string_view hook_realpath);

/// Whether install_hook would take this hook: executable, and runnable by the
/// libvirt daemon under its AppArmor profile.
[[nodiscard]] Result<void> check_hook_installable(const Paths& paths,
                                                  const std::string& hook_executable);

/// Links the hook executable into libvirt's qemu hook directory; refuses a hook
/// that the libvirt daemon's AppArmor profile would not let it run.
[[nodiscard]] Result<std::string> install_hook(const Paths& paths,
                                               const std::string& hook_executable);

/// Removes vmupdate's hook link; Ok when it was not installed.
[[nodiscard]] Result<std::string> uninstall_hook(const Paths& paths);

} // namespace vmupdate
