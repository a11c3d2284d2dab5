// Interruption by the operator (SIGINT, SIGTERM, SIGHUP in the CLI): operations
// stop at the next safe point instead of dying half-way.
#pragma once

namespace vmupdate {

/// Asks running operations to stop at their next safe point: a save or restore
/// under way finishes, none is started after it. Async-signal-safe.
void request_interrupt() noexcept;

/// Whether request_interrupt() was called.
[[nodiscard]] bool interrupt_requested() noexcept;

} // namespace vmupdate
