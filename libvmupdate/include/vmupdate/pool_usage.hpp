// A pool's capacity, whether guest RAM still fits in it, and sizes in bytes
// read and written for people. Part of vmupdate_core (no libndctl, Boost or
// libvirt): the hook checks the fit on every start of a domain, in the middle
// of a guest's pause. The pmem side of the pool (regions, namespaces, creating
// one) is the full library's, in vmupdate/pool.hpp.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/host.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmupdate {

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

} // namespace vmupdate
