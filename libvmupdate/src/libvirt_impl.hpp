// The libvirt types behind Connection and Domain, for the library's own modules.
#pragma once

#include "vmupdate/libvirt.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <memory>
#include <string>

namespace vmupdate {

struct ConnectDeleter {
    void operator()(virConnect* c) const { virConnectClose(c); }
};
struct DomainDeleter {
    void operator()(virDomain* d) const { virDomainFree(d); }
};

struct Connection::Impl {
    std::unique_ptr<virConnect, ConnectDeleter> conn;
};

struct Domain::Impl {
    std::shared_ptr<Connection::Impl> conn; // a domain handle needs its connection open
    std::unique_ptr<virDomain, DomainDeleter> dom;
    std::string name;
    std::string uuid;
};

/// libvirt's message for the last error on this thread.
std::string last_libvirt_error();

/// Wraps a domain handle that libvirt returned (takes ownership).
Domain make_domain(std::shared_ptr<Connection::Impl> conn, virDomain* dom);

} // namespace vmupdate
