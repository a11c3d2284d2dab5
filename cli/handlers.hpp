// The handler of every command the table (commands.cpp) runs, one file each
// (cmd_*.cpp). Each prints its results and errors and returns the exit code.
#pragma once

#include "command.hpp"

namespace vmupdate::cli {

/// `vmupdate translate [FILE|-]` (cmd_translate.cpp).
int cmd_translate(const Invocation& in);
/// `vmupdate prepare DOMAIN...` (cmd_prepare.cpp).
int cmd_prepare(const Invocation& in);
/// `vmupdate save` (cmd_save_restore.cpp).
int cmd_save(const Invocation& in);
/// `vmupdate restore` (cmd_save_restore.cpp).
int cmd_restore(const Invocation& in);
/// `vmupdate discard` (cmd_save_restore.cpp).
int cmd_discard(const Invocation& in);
/// `vmupdate status` (cmd_status.cpp).
int cmd_status(const Invocation& in);
/// `vmupdate host-update`, both forms (cmd_host_update.cpp).
int cmd_host_update(const Invocation& in);
/// `vmupdate host-update --packages` (cmd_package_update.cpp).
int cmd_package_update(const Invocation& in);
/// `vmupdate pool list` (cmd_pool.cpp).
int cmd_pool_list(const Invocation& in);
/// `vmupdate pool create` (cmd_pool.cpp).
int cmd_pool_create(const Invocation& in);
/// `vmupdate hook install` (cmd_hook.cpp).
int cmd_hook_install(const Invocation& in);
/// `vmupdate hook uninstall` (cmd_hook.cpp).
int cmd_hook_uninstall(const Invocation& in);
/// `vmupdate help [COMMAND]` (cmd_help.cpp).
int cmd_help(const Invocation& in);
/// `vmupdate handover-hold -- UUID...`, internal (cmd_host_update.cpp).
int cmd_handover_hold(const Invocation& in);
/// `vmupdate ram-hold -- RUN_DIR PID TOKEN:FD...`, internal (cmd_host_update.cpp).
int cmd_ram_hold(const Invocation& in);
/// `vmupdate __complete WORD...`, internal: what bash completes (complete.cpp).
int cmd_complete(const Invocation& in);

} // namespace vmupdate::cli
