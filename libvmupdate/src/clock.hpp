// The one clock of vmupdate's timelines. Private header.
#pragma once

#include <cstdint>

namespace vmupdate {

/// CLOCK_REALTIME in microseconds since the epoch. Every timestamp that goes
/// into one pause timeline (hook, CLI, restore helper, libvirt events, QEMU's
/// QMP timestamps, manifests) comes from this clock, so that they compare
/// across processes; QEMU's own event timestamps are wall-clock too.
[[nodiscard]] std::int64_t now_us();

} // namespace vmupdate
