// Starting a process fully detached: in its own session, not a child of the
// starter, stdio on /dev/null, every other descriptor closed. The hook starts
// the restore helper so (libvirt reads the hook's stdout until EOF and waits
// for it to exit); the write-back starts a RAM holder so on hosts without
// systemd. Private header.
#pragma once

#include "vmupdate/error.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// Starts `exe` with `args` detached (double fork, setsid); an error when it
/// could not be started (fork or exec failed), naming `what`. `pass_fd`, when
/// not -1, is the one descriptor it inherits, as its fd 3.
[[nodiscard]] Result<void> spawn_detached(const std::string& exe,
                                          const std::vector<std::string>& args,
                                          std::string_view what, int pass_fd = -1);

} // namespace vmupdate
