// The pmem pool that holds guest RAM: which pmem regions and namespaces the
// host has, creating a DAX file system on one, pointing libvirt at it, and
// whether guest RAM still fits.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/host.hpp"

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

/// Capacity of the file system under a memory_backing_dir.
struct PoolUsage {
    std::string mount_point;   ///< the file system's mount point
    std::string fstype;        ///< e.g. ext4
    FsKind kind{FsKind::disk}; ///< dax, memory or disk
    std::uint64_t total = 0;   ///< bytes
    std::uint64_t free = 0;    ///< bytes an unprivileged writer can still use
};

/// Total and free bytes of the file system holding `backing_dir` (or its
/// nearest existing parent).
[[nodiscard]] Result<PoolUsage> pool_usage(const std::string& backing_dir);

/// A message naming `pool` and both sizes when `need_bytes` do not fit in
/// `free_bytes`; nothing when they fit.
[[nodiscard]] std::optional<std::string>
would_not_fit(std::uint64_t free_bytes, std::uint64_t need_bytes, std::string_view pool);

/// Parses a size: a number with an optional binary suffix K, M, G or T (also
/// KiB, MiB, ..., case-insensitive), e.g. "256M", "1G", "1073741824".
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text);

/// Bytes for people: "256.0 MiB", "1.5 GiB", "512 B".
[[nodiscard]] std::string format_size(std::uint64_t bytes);

/// The first mount of block device `major:minor` in the text of a
/// /proc/self/mountinfo, with its DAX state.
[[nodiscard]] std::optional<PoolMount> mount_of_device(std::string_view mountinfo, unsigned major,
                                                       unsigned minor);

} // namespace vmupdate
