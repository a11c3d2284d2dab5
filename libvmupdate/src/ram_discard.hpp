// QEMU's discard-data on the memory backends of a running domain (libvirt's
// <discard/>, a NUMA cell's or memory device's discard='yes'): with it on, QEMU
// punches the RAM out of its file when it exits gracefully, which it does after
// every managed save (libvirt's SIGTERM). `vmupdate save` switches it off first.
// Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// One QMP command to a running QEMU (command, arguments as JSON or empty) ->
/// the text of its "return" member; a QMP error is an Error.
using QmpCall = std::function<Result<std::string>(std::string_view, std::string_view)>;

/// The QOM paths of the memory backends in a `qom-list /objects` return text
/// (children of type child<memory-backend-...>), in QEMU's order.
[[nodiscard]] Result<std::vector<std::string>> memory_backends(std::string_view qom_list_return);

/// What switching discard off did.
struct DiscardSwitch {
    std::vector<std::string> switched; ///< the backends that had it on, now off
    std::int64_t us{};                 ///< the switch's own time, listing included
};

/// Switches discard-data off on every memory backend that has it on and reads
/// each back. Errc::refused when any backend cannot be switched (those already
/// switched are switched back on): the domain is untouched.
[[nodiscard]] Result<DiscardSwitch> keep_ram_on_exit(const QmpCall& qmp, const std::string& domain);

/// Switches discard-data back on where keep_ram_on_exit switched it off (a save
/// that did not happen); best effort, as the guest runs on either way.
void restore_discard(const QmpCall& qmp, const DiscardSwitch& done);

} // namespace vmupdate
