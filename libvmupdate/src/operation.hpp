// What the operations on one domain (save, restore, discard) share: its lock,
// QEMU's x-ignore-shared capability, their wall time. Private header.
#pragma once

#include "ram_discard.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/paths.hpp"
#include "vmupdate/state.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmupdate {

/// The clock of an operation's wall time (not of pause timelines: see clock.hpp).
using SteadyClock = std::chrono::steady_clock;

/// Seconds elapsed since t0.
[[nodiscard]] double seconds_since(SteadyClock::time_point t0);

/// Takes the domain's lock, waiting a while for another vmupdate run; `step`
/// names the operation in the error. The UUID names the lock file, so it must be
/// canonical.
[[nodiscard]] Result<DomainLock> lock_domain(const StateDir& state, const Domain& dom,
                                             std::string_view step);

/// A domain looked up by name, the state directory, and the domain's lock.
struct LockedDomain {
    Domain dom;
    StateDir state;
    DomainLock lock;
};

/// Looks the domain up, opens the state directory and locks the domain, in that order.
[[nodiscard]] Result<LockedDomain> lookup_and_lock(const Connection& conn, const Paths& paths,
                                                   std::string_view name, std::string_view step);

/// QMP commands to the domain's QEMU through libvirt's monitor passthrough.
[[nodiscard]] QmpCall qmp_call(const Domain& dom);

/// Switches QEMU's x-ignore-shared migration capability and checks that QEMU
/// reports it switched.
[[nodiscard]] Result<void> set_ignore_shared(const Domain& dom, bool on);

/// Whether x-ignore-shared is on in the domain's QEMU.
[[nodiscard]] Result<bool> ignore_shared_on(const Domain& dom);

/// The first `name` event of the domain received at or after since_us.
[[nodiscard]] std::optional<std::int64_t> first_event(const EventWatch& events,
                                                      const std::string& uuid,
                                                      std::string_view name, std::int64_t since_us);

} // namespace vmupdate
