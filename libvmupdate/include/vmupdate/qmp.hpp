// A client for the QEMU Machine Protocol on a unix socket, errors as values.
// JSON goes in and out as text: no JSON library type leaks out of this header.
#pragma once

#include "vmupdate/error.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace vmupdate {

/// One QMP event as QEMU sent it.
struct QmpEvent {
    std::string data;      ///< the "data" member as JSON text, "{}" for events without data
    std::int64_t at_us{0}; ///< QEMU's timestamp, microseconds since the epoch; 0 if absent
};

/// The process at the other end of a QMP socket, as the kernel reports it.
struct QmpPeer {
    std::int64_t pid = 0;  ///< the process that created the listening socket
    std::uint32_t uid = 0; ///< its user at that time
    std::uint32_t gid = 0; ///< its group at that time
};

/// What a QmpClient accepts from its peer: everything the peer sends is bounded,
/// so that a hostile QEMU can neither exhaust memory nor the stack.
struct QmpLimits {
    std::size_t max_message = 16 * 1024 * 1024;    ///< longest message in bytes
    std::size_t max_queued_events = 1024;          ///< events kept for wait_event()
    std::size_t max_queued_event_bytes = 16 << 20; ///< their data in bytes, in all
    std::size_t max_depth = 64;                    ///< deepest JSON nesting of a message
};

/// How a QmpClient connects: its limits and an optional check of the peer.
struct QmpOptions {
    QmpLimits limits; ///< bounds on what the peer sends
    /// Called with the peer's credentials right after connecting, before anything
    /// is read or sent; an error refuses the connection. Empty: every peer is accepted.
    std::function<Result<void>(const QmpPeer&)> check_peer;
};

/// One negotiated QMP connection to a QEMU process. Every read has a deadline, so a
/// QEMU that stops answering cannot hang the caller. Not safe for concurrent use.
class QmpClient {
public:
    /// Connects to a QMP server socket, reads the greeting and negotiates with
    /// qmp_capabilities, all within `timeout`. ENOENT and ECONNREFUSED are retried
    /// until then, because QEMU creates the socket a moment after it starts. The
    /// peer is checked (options.check_peer) before the greeting is read.
    [[nodiscard]] static Result<QmpClient> connect(const std::string& socket_path,
                                                   std::chrono::milliseconds timeout,
                                                   const QmpOptions& options = {});

    /// Takes ownership of an already connected stream socket `fd` (closed also on
    /// failure), checks the peer, then reads the greeting and negotiates within `timeout`.
    /// `object_name` names the connection in errors.
    [[nodiscard]] static Result<QmpClient> adopt(int fd, std::string object_name,
                                                 std::chrono::milliseconds timeout,
                                                 const QmpOptions& options = {});

    QmpClient(QmpClient&&) noexcept;
    QmpClient& operator=(QmpClient&&) noexcept;
    ~QmpClient();

    /// Runs one command with optional `arguments_json` (a JSON object) and returns
    /// the reply's "return" member as JSON text. A QMP error reply becomes Errc::qmp
    /// with QEMU's desc as the cause. Events that arrive meanwhile are queued for
    /// wait_event(). After a timeout the connection stays usable: the late reply is
    /// recognised by its id and dropped.
    [[nodiscard]] Result<std::string>
    execute(std::string_view command, std::string_view arguments_json = {},
            std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Waits for the next event named `name`, oldest queued one first, and returns it
    /// (Errc::timeout after `timeout`; the connection stays usable). Other events stay
    /// queued.
    [[nodiscard]] Result<QmpEvent> wait_event(std::string_view name,
                                              std::chrono::milliseconds timeout);

    /// The name used in errors (the socket path for connect()).
    [[nodiscard]] const std::string& object_name() const;

    struct Impl;

private:
    explicit QmpClient(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// The migrate-set-capabilities arguments turning one migration capability on or off.
[[nodiscard]] std::string capability_arguments(std::string_view capability, bool on);

/// From query-migrate-capabilities' return text: whether `capability` is on;
/// Errc::not_found when this QEMU does not know it.
[[nodiscard]] Result<bool> capability_state(std::string_view query_return_json,
                                            std::string_view capability);

/// From query-migrate's return text or a MIGRATION event's data: the "status" string,
/// e.g. "setup", "active", "completed", "failed"; "none" when absent, as QEMU's reply
/// is an empty object before any migration.
[[nodiscard]] Result<std::string> migration_status(std::string_view query_return_json);

/// From query-migrate's return text: QEMU's "error-desc" for a failed migration, or an
/// empty string when there is none.
[[nodiscard]] Result<std::string> migration_error(std::string_view query_return_json);

} // namespace vmupdate
