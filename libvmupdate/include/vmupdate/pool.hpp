// The pmem pool that holds guest RAM: which pmem regions and namespaces the
// host has (libndctl), creating a DAX file system on one and pointing libvirt
// at it. The full library's; what the core (the hook) needs of a pool, its
// capacity and sizes, is in vmupdate/pool_usage.hpp, which this builds on.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/pool_usage.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// Where a block device is mounted (the first mount of it in mountinfo).
struct PoolMount {
    std::string mount_point; ///< e.g. /mnt/pool
    std::string fstype;      ///< e.g. ext4
    std::string options;     ///< per-mount and superblock options, comma-separated
    bool dax = false;        ///< mounted with DAX (guest RAM maps pmem directly)
};

/// A pmem namespace: a slice of a region that the kernel exposes as a device.
struct PmemNamespace {
    std::string device;             ///< e.g. namespace0.0
    std::string mode;               ///< fsdax, devdax, sector, raw or unknown
    std::uint64_t size = 0;         ///< usable bytes, as `ndctl list` reports them
    std::string block_device;       ///< e.g. pmem0 (dax0.1 for devdax); empty when disabled
    bool enabled = false;           ///< bound to its driver
    std::optional<PoolMount> mount; ///< where the block device is mounted, if it is
};

/// A pmem region: a range of persistent memory (one or more NVDIMMs, or memmap=).
struct PmemRegion {
    std::string device;           ///< e.g. region0
    std::string provider;         ///< the bus provider: ACPI.NFIT, e820, ...
    std::uint64_t size = 0;       ///< bytes
    std::uint64_t available = 0;  ///< bytes not in any namespace
    std::uint64_t max_extent = 0; ///< largest contiguous free range (what one namespace can get)
    bool labelled = false;        ///< has namespace labels: can be divided into namespaces
    bool enabled = false;         ///< bound to its driver
    std::vector<PmemNamespace> namespaces;
};

/// Every pmem region with its namespaces and their mounts.
[[nodiscard]] Result<std::vector<PmemRegion>> list_pmem();

/// The file system created on the pool.
enum class FsType { ext4, xfs };

/// "ext4" or "xfs".
[[nodiscard]] std::string_view to_string(FsType fs);

/// What create_pool did.
struct PoolCreated {
    std::string region;        ///< region used
    std::string namespace_dev; ///< namespace used, e.g. namespace0.0
    std::string block_device;  ///< /dev/pmem0
    std::uint64_t size = 0;    ///< usable bytes of the namespace
    bool created_namespace =
        false;               ///< false: a label-less region's existing namespace was used whole
    std::string mount_point; ///< where the DAX file system is mounted
    std::string backing_dir; ///< <mount_point>/ram: libvirt's memory_backing_dir
    std::string conf_line;   ///< `memory_backing_dir = "<backing_dir>"`
    std::string fstab_line;  ///< a line for /etc/fstab that mounts it again at boot
    std::vector<std::string> notes; ///< things the operator should know (e.g. whole namespace used)
};

/// Makes a pmem pool: an fsdax namespace of `size` bytes in a labelled region
/// (or the whole namespace of a label-less one), a file system, a DAX mount on
/// `mount_point` and the RAM directory in it. Refuses (nothing changed) when the
/// region lacks room, the device is in use or holds a file system, or DAX does
/// not work; undoes its own steps when a later one fails.
[[nodiscard]] Result<PoolCreated> create_pool(std::uint64_t size, std::optional<std::string> region,
                                              std::string mount_point, FsType fs);

/// Sets memory_backing_dir in libvirt's qemu.conf to `dir` (replacing any
/// active setting, keeping every other line), crash-safe.
[[nodiscard]] Result<void> configure_libvirt(const std::string& qemu_conf_path,
                                             const std::string& dir);

/// `text` with its active memory_backing_dir setting replaced by `dir` (or the
/// setting appended); comments and other lines unchanged.
[[nodiscard]] std::string set_memory_backing_dir(std::string_view text, std::string_view dir);

/// The first mount of block device `major:minor` in the text of a
/// /proc/self/mountinfo, with its DAX state.
[[nodiscard]] std::optional<PoolMount> mount_of_device(std::string_view mountinfo, unsigned major,
                                                       unsigned minor);

} // namespace vmupdate
