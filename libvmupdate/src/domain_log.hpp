// Moments libvirt and QEMU stamp into a domain's log (/var/log/libvirt/qemu/<name>.log),
// for the phase breakdown of a pause. Private header.
#pragma once

#include "vmupdate/manifest.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace vmupdate {

/// Every stamped moment in a domain log's text, in file order: "qemu-starting" for
/// libvirt's "starting up" line (just before it runs QEMU) and "qemu-terminating"
/// for QEMU's "terminating on signal" line (when libvirt's SIGTERM arrived).
[[nodiscard]] std::vector<TimePoint> domain_log_moments(std::string_view text);

/// The earliest moment named `name` at or after `not_before_us`.
[[nodiscard]] std::optional<std::int64_t> first_moment(const std::vector<TimePoint>& moments,
                                                       std::string_view name,
                                                       std::int64_t not_before_us);

} // namespace vmupdate
