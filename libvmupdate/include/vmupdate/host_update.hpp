// `vmupdate host-update`: save every VM, kexec into a new kernel; the VMs are
// restored at boot (vmupdate-restore.service runs `vmupdate restore --all`).
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/kexec.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/paths.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmupdate {

/// One domain the update will save.
struct PlannedDomain {
    std::string name;
    std::uint64_t ram_bytes{};
    std::string filesystem; ///< where its RAM lives, e.g. "/mnt/pmem0 (ext4, dax)"
    bool handover{}; ///< its RAM is on tmpfs and goes to the new kernel by LUO (handover.hpp)
};

/// The outcome of the pre-flight: what will happen, or why it cannot.
struct HostUpdatePlan {
    KexecPlan kexec;
    std::vector<PlannedDomain> domains;
    std::vector<std::string> offenders; ///< reasons it must not go ahead, one per line
    std::vector<std::string> warnings;
};

/// Checks, without pausing anything, that every running domain can survive the
/// kexec (managed, RAM on a DAX mount, on tmpfs with LUO on both kernels, or,
/// with a warning, on a disk filesystem; the pmem regions stay on the new command
/// line). Changes nothing: load_planned_kernel loads the kernel.
[[nodiscard]] Result<HostUpdatePlan> plan_host_update(const Connection& conn, const Paths& paths,
                                                      const KexecPlan& kexec);

/// The planned kernel, loaded: unloaded again when dropped (a dry run, a refusal
/// at the prompt), unless kept for the update, whose own failures unload it.
class LoadedKernel {
public:
    LoadedKernel(LoadedKernel&& other) noexcept;
    LoadedKernel& operator=(LoadedKernel&&) = delete;
    LoadedKernel(const LoadedKernel&) = delete;
    LoadedKernel& operator=(const LoadedKernel&) = delete;
    ~LoadedKernel();

    /// Leaves the kernel loaded: save_for_host_update and kexec_into_new_kernel own it now.
    void keep() noexcept;

private:
    friend std::optional<LoadedKernel> load_planned_kernel(HostUpdatePlan& plan);
    LoadedKernel() = default;

    bool loaded_ = true;
};

/// Loads the kernel of a plan without offenders (`kexec -l`, `-s` for a LUO
/// handover); a kernel that does not load is one more offender (then nullopt).
[[nodiscard]] std::optional<LoadedKernel> load_planned_kernel(HostUpdatePlan& plan);

/// Finds offenders in a command line change alone: every `memmap=..!..` pmem
/// region of `current` must stay in `next`.
[[nodiscard]] std::vector<std::string> cmdline_offenders(std::string_view current,
                                                         std::string_view next);

/// What the saves before the kexec did.
struct HostUpdateSaved {
    std::vector<SaveReport> saved;
    std::vector<std::string> handover; ///< UUIDs of the saved domains whose RAM LUO hands over
    double seconds{};                  ///< first save started to state durable
};

/// Saves the planned domains (in parallel, at most `parallel` at once) and makes
/// their state durable. If one save fails, restores those already saved, unloads
/// the kernel and fails: nothing is lost and the host does not kexec.
[[nodiscard]] Result<HostUpdateSaved>
save_for_host_update(const Connection& conn, const Paths& paths, const HostUpdatePlan& plan,
                     const EventWatch& events, unsigned parallel);

/// Hands the RAM of saved.handover to the new kernel (LUO), then starts it:
/// returns success only when systemd has begun a clean shutdown into it; any
/// failure returns after taking the RAM back and restoring the saved domains.
[[nodiscard]] Result<void> kexec_into_new_kernel(const Connection& conn, const Paths& paths,
                                                 const HostUpdateSaved& saved,
                                                 const EventWatch& events, unsigned parallel);

} // namespace vmupdate
