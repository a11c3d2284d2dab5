#include "ndctl.hpp"

#include <cerrno>

namespace vmupdate::nd {

Result<Ctx> open() {
    ndctl_ctx* raw = nullptr;
    // ndctl_new returns a negative errno.
    if (int rc = ndctl_new(&raw); rc < 0 || raw == nullptr)
        return fail_errno(rc < 0 ? -rc : ENOMEM, "libndctl", "cannot open the nvdimm subsystem");
    return Ctx(raw);
}

bool label_less(ndctl_region* region) {
    // ND_DEVICE_NAMESPACE_IO: the kernel made the whole region one namespace
    // because there is no label area (e820) or no valid label index (NFIT).
    return ndctl_region_get_nstype(region) == device_namespace_io;
}

std::string mode_name(ndctl_namespace* ns) {
    switch (ndctl_namespace_get_mode(ns)) {
    case NDCTL_NS_MODE_FSDAX:
        return "fsdax";
    case NDCTL_NS_MODE_DEVDAX:
        return "devdax";
    case NDCTL_NS_MODE_SECTOR:
        return "sector";
    case NDCTL_NS_MODE_RAW:
        return "raw";
    default:
        return "unknown";
    }
}

std::uint64_t usable_size(ndctl_namespace* ns) {
    // The same choice as ndctl's util_namespace_to_json.
    if (ndctl_pfn* pfn = ndctl_namespace_get_pfn(ns))
        return ndctl_pfn_get_size(pfn);
    if (ndctl_dax* dax = ndctl_namespace_get_dax(ns))
        return ndctl_dax_get_size(dax);
    return ndctl_namespace_get_size(ns);
}

std::string device_name(ndctl_namespace* ns) {
    const char* name = nullptr;
    if (ndctl_pfn* pfn = ndctl_namespace_get_pfn(ns))
        name = ndctl_pfn_get_block_device(pfn);
    else if (ndctl_btt* btt = ndctl_namespace_get_btt(ns))
        name = ndctl_btt_get_block_device(btt);
    else if (ndctl_dax* dax = ndctl_namespace_get_dax(ns))
        name = ndctl_dax_get_devname(dax);
    else if (ndctl_namespace_is_active(ns))
        name = ndctl_namespace_get_block_device(ns);
    return name ? name : "";
}

Result<std::vector<PmemRegion>> read_regions() {
    auto ctx = open();
    if (!ctx)
        return std::unexpected(ctx.error());
    std::vector<PmemRegion> out;
    for_each_pmem_region(ctx->get(), [&](ndctl_bus* bus, ndctl_region* region) {
        PmemRegion r;
        r.device = ndctl_region_get_devname(region);
        const char* provider = ndctl_bus_get_provider(bus);
        r.provider = provider ? provider : "";
        r.size = ndctl_region_get_size(region);
        r.available = ndctl_region_get_available_size(region);
        r.max_extent = ndctl_region_get_max_available_extent(region);
        r.labelled = !label_less(region);
        r.enabled = ndctl_region_is_enabled(region) != 0;
        for_each_namespace(region, [&](ndctl_namespace* ns) {
            PmemNamespace n;
            n.device = ndctl_namespace_get_devname(ns);
            n.mode = mode_name(ns);
            n.size = usable_size(ns);
            n.block_device = device_name(ns);
            n.enabled = ndctl_namespace_is_enabled(ns) != 0;
            r.namespaces.push_back(std::move(n));
        });
        out.push_back(std::move(r));
    });
    return out;
}

} // namespace vmupdate::nd
