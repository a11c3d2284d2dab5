// A libvirt session: connection and domains behind RAII, errors as values.
// No libvirt type leaks out of this header.
#pragma once

#include "vmupdate/error.hpp"

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

    struct Impl;
    /// Wraps the library's internal handle (Impl is opaque outside libvmupdate).
    explicit Connection(std::shared_ptr<Impl> impl);

private:
    std::shared_ptr<Impl> impl_;
};

/// True when the URI names a QEMU driver on this host (qemu:///system or
/// qemu:///session), where vmupdate can inspect the files libvirt uses.
[[nodiscard]] bool is_local_qemu_uri(std::string_view uri);

} // namespace vmupdate
