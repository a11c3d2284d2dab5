// What the host offers for guest RAM: libvirt's memory_backing_dir and the
// filesystem it lives on.
#pragma once

#include "vmupdate/error.hpp"

#include <string>
#include <string_view>

namespace vmupdate {

/// libvirt's default memory_backing_dir for qemu:///system.
inline constexpr std::string_view default_memory_backing_dir = "/var/lib/libvirt/qemu/ram";

/// The system qemu.conf that libvirtd reads.
inline constexpr std::string_view system_qemu_conf = "/etc/libvirt/qemu.conf";

/// The directory under which libvirt puts file-backed guest RAM (in
/// <dir>/<id>-<name>/): qemu.conf's `memory_backing_dir` + "/libvirt/qemu" as
/// libvirt appends it, or libvirt's default when the file or setting is absent.
[[nodiscard]] Result<std::string> memory_backing_dir(const std::string& qemu_conf);

/// Returns the value of `key` in libvirt configuration text (`key = "value"`), or
/// an empty string when unset. Errc::invalid_input when the value is not a string.
[[nodiscard]] Result<std::string> conf_string(std::string_view text, std::string_view key);

/// How a filesystem treats a shared file mapping of guest RAM.
enum class FsKind {
    memory, ///< tmpfs/ramfs: survives QEMU restarts, not a kexec
    dax,    ///< a DAX mount (pmem): survives QEMU restarts and kexec
    disk,   ///< anything else: works, but the kernel writes guest RAM back to disk
};

/// The filesystem holding a path.
struct FsInfo {
    std::string mount_point; ///< where it is mounted
    std::string fstype;      ///< e.g. tmpfs, ext4, xfs
    std::string source;      ///< the mounted device or name
    FsKind kind{FsKind::disk};
};

/// Name of an FsKind for messages and JSON ("memory", "dax", "disk").
[[nodiscard]] std::string_view to_string(FsKind kind);

/// The filesystem of `path` (or of its nearest existing parent), from the mount
/// ID of that directory opened without following a link in a directory other
/// users can write to (Errc::refused for one).
[[nodiscard]] Result<FsInfo> filesystem_of(const std::string& path);

/// Same, from the text of a /proc/self/mountinfo and an absolute, resolved path.
[[nodiscard]] Result<FsInfo> filesystem_from_mountinfo(std::string_view mountinfo,
                                                       std::string_view path);

} // namespace vmupdate
