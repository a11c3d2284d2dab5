// What the commands that pause guests share: Ctrl-C handling and a libvirt
// connection with its event watch.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/libvirt.hpp"

#include <string>

namespace vmupdate::cli {

/// A libvirt connection and the lifecycle events save and restore wait for.
struct Session {
    Connection conn;
    EventWatch events;
};

/// Connects to `uri` (empty: libvirt's default) and starts watching events.
[[nodiscard]] Result<Session> open_session(const std::string& uri);

/// From now on, SIGINT, SIGTERM and SIGHUP let the save or restore under way
/// finish and start no new one, instead of killing vmupdate mid-way.
void handle_interrupts();

} // namespace vmupdate::cli
