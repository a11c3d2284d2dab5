// A libvirt session: connection and domains behind RAII, errors as values.
// No libvirt type leaks out of this header.
#pragma once

#include "vmupdate/error.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

class Connection;

/// A handle to one libvirt domain; keeps its connection alive.
class Domain {
public:
    Domain(Domain&&) noexcept;
    Domain& operator=(Domain&&) noexcept;
    ~Domain();

    /// The domain's name.
    [[nodiscard]] const std::string& name() const;
    /// The domain's UUID in canonical text form.
    [[nodiscard]] const std::string& uuid() const;

    /// Whether the domain is running (or paused).
    [[nodiscard]] Result<bool> is_active() const;
    /// Whether the domain has a persistent definition.
    [[nodiscard]] Result<bool> is_persistent() const;
    /// The persistent definition (inactive XML), including secrets such as
    /// graphics passwords so that redefining it loses nothing.
    [[nodiscard]] Result<std::string> inactive_xml() const;
    /// The live definition (for running domains), with secrets.
    [[nodiscard]] Result<std::string> live_xml() const;
    /// The domain's id while it runs, -1 otherwise.
    [[nodiscard]] int id() const;
    /// Whether libvirt holds a managed-save image for the domain.
    [[nodiscard]] Result<bool> has_managed_save() const;
    /// Saves the domain's state into libvirt's managed-save image and stops it.
    [[nodiscard]] Result<void> managed_save() const;
    /// Starts the domain (restoring its managed-save image when there is one).
    [[nodiscard]] Result<void> start() const;
    /// Whether the running domain's vCPUs are paused.
    [[nodiscard]] Result<bool> is_paused() const;
    /// Resumes a paused domain.
    [[nodiscard]] Result<void> resume() const;
    /// Deletes the domain's managed-save image (virsh managedsave-remove).
    [[nodiscard]] Result<void> remove_managed_save() const;
    /// Sends a QMP command through libvirt's QEMU monitor passthrough; returns
    /// QEMU's whole reply as JSON text.
    [[nodiscard]] Result<std::string> qemu_monitor_command(std::string_view command_json) const;

    struct Impl;
    /// Wraps the library's internal handle (Impl is opaque outside libvmupdate).
    explicit Domain(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

/// An open connection to libvirtd.
class Connection {
public:
    /// Opens `uri`; an empty URI lets libvirt choose its default (LIBVIRT_DEFAULT_URI).
    [[nodiscard]] static Result<Connection> open(const std::string& uri);

    Connection(Connection&&) noexcept;
    Connection& operator=(Connection&&) noexcept;
    ~Connection();

    /// The URI libvirt actually connected to.
    [[nodiscard]] Result<std::string> uri() const;
    /// Finds a domain by name or UUID.
    [[nodiscard]] Result<Domain> lookup(std::string_view name_or_uuid) const;
    /// All persistent and running domains.
    [[nodiscard]] Result<std::vector<Domain>> domains() const;
    /// Defines (or redefines) a persistent domain, validating the XML against
    /// libvirt's schema.
    [[nodiscard]] Result<Domain> define(std::string_view xml) const;
    /// The hypervisor's version as "major.minor.micro" (QEMU's, for qemu:// URIs).
    [[nodiscard]] Result<std::string> hypervisor_version() const;

    struct Impl;
    /// Wraps the library's internal handle (Impl is opaque outside libvmupdate).
    explicit Connection(std::shared_ptr<Impl> impl);

private:
    friend class EventWatch;
    std::shared_ptr<Impl> impl_;
};

/// One domain lifecycle event, as libvirt reported it.
struct LifecycleEvent {
    std::string uuid;
    std::string event;    ///< started, suspended, resumed, stopped, ...
    std::string detail;   ///< e.g. restored, saved, migrated
    std::int64_t at_us{}; ///< CLOCK_REALTIME when vmupdate received it
};

/// Collects libvirt lifecycle events of a connection, delivered through
/// libvirt-glib's event loop running on a thread of its own.
class EventWatch {
public:
    /// Subscribes to lifecycle events of every domain on `conn`.
    [[nodiscard]] static Result<EventWatch> start(const Connection& conn);
    EventWatch(EventWatch&&) noexcept;
    EventWatch& operator=(EventWatch&&) noexcept;
    ~EventWatch();

    /// Waits until an event `event` for `uuid` received at or after `since_us`
    /// (CLOCK_REALTIME microseconds) has arrived; returns it, or Errc::timeout.
    [[nodiscard]] Result<LifecycleEvent> wait_for(std::string_view uuid, std::string_view event,
                                                  std::chrono::milliseconds timeout,
                                                  std::int64_t since_us) const;
    /// Every event received so far for `uuid`.
    [[nodiscard]] std::vector<LifecycleEvent> events(std::string_view uuid) const;

    struct Impl;
    /// Wraps the library's internal state (Impl is opaque outside libvmupdate).
    explicit EventWatch(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

/// True when the URI names a QEMU driver on this host (qemu:///system or
/// qemu:///session), where vmupdate can inspect the files libvirt uses.
[[nodiscard]] bool is_local_qemu_uri(std::string_view uri);

} // namespace vmupdate
