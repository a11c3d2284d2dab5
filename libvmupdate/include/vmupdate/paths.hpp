// Where vmupdate and libvirt keep their files on a host.
#pragma once

#include "vmupdate/host.hpp"

#include <string>
#include <string_view>

namespace vmupdate {

/// The host paths vmupdate works with; defaults are those of a Debian system
/// libvirtd. Tests and packaging may point them elsewhere.
struct Paths {
    std::string state_dir = "/var/lib/vmupdate";             ///< manifests, locks, pause records
    std::string run_dir = "/run/vmupdate";                   ///< per-attempt QMP sockets
    std::string log_file = "/var/log/vmupdate/hook.log";     ///< what the hook did
    std::string qemu_conf = std::string(system_qemu_conf);   ///< libvirt's QEMU driver config
    std::string save_dir = "/var/lib/libvirt/qemu/save";     ///< libvirt's managed-save images
    std::string hooks_dir = "/etc/libvirt/hooks/qemu.d";     ///< libvirt's qemu hook directory
    std::string qemu_log_dir = "/var/log/libvirt/qemu";      ///< libvirt's per-domain QEMU logs
    std::string qemu_pid_dir = "/run/libvirt/qemu";          ///< libvirt's <name>.pid of each QEMU
    std::string config_file = "/etc/vmupdate/vmupdate.conf"; ///< vmupdate's settings (config.hpp)
    std::string apparmor_profiles = "/sys/kernel/security/apparmor/profiles"; ///< loaded profiles
    std::string liveupdate_dev = "/dev/liveupdate"; ///< the Live Update Orchestrator (handover.hpp)
    std::string self_exe; ///< vmupdate's binary, for the processes it starts ("": this process's)
};

/// libvirt's managed-save image of a domain: <save_dir>/<name>.save.
[[nodiscard]] inline std::string managed_save_image(const Paths& p, std::string_view name) {
    return p.save_dir + "/" + std::string(name) + ".save";
}

} // namespace vmupdate
