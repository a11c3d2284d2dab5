// libndctl behind RAII: the pmem regions and namespaces the kernel's nvdimm
// subsystem exposes, read into plain structs. Private header: nothing outside
// libvmupdate sees libndctl types.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/pool.hpp"

#include <memory>
#include <ndctl/libndctl.h>
#include <vector>

namespace vmupdate::nd {

// Device types from the kernel's UAPI <ndctl/ndctl.h>, which C++ cannot include
// (it pulls in ndctl's private ccan headers).
inline constexpr unsigned device_region_pmem = 2;  ///< ND_DEVICE_REGION_PMEM
inline constexpr unsigned device_namespace_io = 4; ///< ND_DEVICE_NAMESPACE_IO: label-less

/// Releases a library context.
struct CtxDeleter {
    void operator()(ndctl_ctx* ctx) const noexcept { ndctl_unref(ctx); }
};

/// An owned libndctl context; buses, regions and namespaces live as long as it.
using Ctx = std::unique_ptr<ndctl_ctx, CtxDeleter>;

/// A new context (reads sysfs lazily).
[[nodiscard]] Result<Ctx> open();

/// Calls `fn(bus, region)` for every pmem region on every bus.
template <typename Fn> void for_each_pmem_region(ndctl_ctx* ctx, Fn&& fn) {
    ndctl_bus* bus = nullptr;
    ndctl_bus_foreach(ctx, bus) {
        ndctl_region* region = nullptr;
        ndctl_region_foreach(bus, region) {
            if (ndctl_region_get_type(region) == device_region_pmem)
                fn(bus, region);
        }
    }
}

/// Calls `fn(ns)` for every namespace of `region` that is in use or has a size
/// (the zero-sized seed namespaces the kernel keeps ready are left out, as
/// `ndctl list` does).
template <typename Fn> void for_each_namespace(ndctl_region* region, Fn&& fn) {
    ndctl_namespace* ns = nullptr;
    ndctl_namespace_foreach(region, ns) {
        if (ndctl_namespace_is_active(ns) || ndctl_namespace_get_size(ns) > 0)
            fn(ns);
    }
}

/// Whether the region has no label storage (legacy e820 pmem, or an NVDIMM
/// whose labels were never initialised): then it is one namespace that cannot
/// be subdivided.
[[nodiscard]] bool label_less(ndctl_region* region);

/// "fsdax", "devdax", "sector", "raw" or "unknown".
[[nodiscard]] std::string mode_name(ndctl_namespace* ns);

/// Usable size as `ndctl list` reports it: after the fsdax/devdax metadata.
[[nodiscard]] std::uint64_t usable_size(ndctl_namespace* ns);

/// The block device name ("pmem0", "pmem0s"), or the device-dax name
/// ("dax0.1") for devdax; empty when the namespace is disabled.
[[nodiscard]] std::string device_name(ndctl_namespace* ns);

/// The regions with their namespaces (mount fields left empty).
[[nodiscard]] Result<std::vector<PmemRegion>> read_regions();

} // namespace vmupdate::nd
