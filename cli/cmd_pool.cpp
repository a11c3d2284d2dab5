// `vmupdate pool list` and `pool create`: the pmem pool that holds guest RAM.
#include "handlers.hpp"
#include "output.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/pool.hpp"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

namespace vmupdate::cli {
namespace {

nlohmann::json to_json(const PmemNamespace& n) {
    nlohmann::json jn{{"namespace", n.device},      {"mode", n.mode},       {"size", n.size},
                      {"blockdev", n.block_device}, {"enabled", n.enabled}, {"mount", nullptr}};
    if (n.mount)
        jn["mount"] = {{"mount_point", n.mount->mount_point},
                       {"fstype", n.mount->fstype},
                       {"options", n.mount->options},
                       {"dax", n.mount->dax}};
    return jn;
}

nlohmann::json to_json(const std::vector<PmemRegion>& regions) {
    auto out = nlohmann::json::array();
    for (const auto& r : regions) {
        nlohmann::json jr{{"region", r.device},
                          {"provider", r.provider},
                          {"size", r.size},
                          {"available", r.available},
                          {"max_extent", r.max_extent},
                          {"labelled", r.labelled},
                          {"enabled", r.enabled},
                          {"namespaces", nlohmann::json::array()}};
        for (const auto& n : r.namespaces)
            jr["namespaces"].push_back(to_json(n));
        out.push_back(std::move(jr));
    }
    return out;
}

void print_region(const PmemRegion& r) {
    std::string kind = r.labelled ? "labelled" : "label-less (legacy)";
    if (!r.provider.empty())
        kind += ", " + r.provider;
    if (!r.enabled)
        kind += ", disabled";
    std::cout << std::setw(10) << r.device << std::setw(12) << format_size(r.size) << std::setw(12)
              << format_size(r.available) << kind << '\n';
    if (r.namespaces.empty())
        std::cout << "  (no namespaces)\n";
    for (const auto& n : r.namespaces) {
        std::cout << "  " << std::setw(15) << n.device << std::setw(8) << n.mode << std::setw(12)
                  << format_size(n.size) << std::setw(14)
                  << (n.block_device.empty() ? "-" : "/dev/" + n.block_device);
        if (n.mount)
            std::cout << n.mount->mount_point << " (" << n.mount->fstype
                      << ", dax: " << (n.mount->dax ? "yes" : "no") << ")";
        else
            std::cout << "not mounted";
        std::cout << '\n';
    }
}

void print_created(const PoolCreated& p, FsType fs) {
    std::cout << "pool: " << p.block_device << " (" << p.namespace_dev << " in " << p.region << ", "
              << format_size(p.size) << (p.created_namespace ? ", new" : ", existing")
              << " namespace) mounted with dax on " << p.mount_point << " (" << to_string(fs)
              << ")\n";
    for (const auto& note : p.notes)
        std::cout << "note: " << note << '\n';
    std::cout << "to mount it at boot, add to /etc/fstab (before libvirtd starts):\n  "
              << p.fstab_line << '\n';
}

} // namespace

int cmd_pool_list(const Invocation& in) {
    auto regions = list_pmem();
    if (!regions)
        return report(regions.error());
    if (in.args.has("--json")) {
        std::cout << to_json(*regions).dump(2) << '\n';
        return std::cout ? 0 : 1;
    }
    if (regions->empty()) {
        std::cout << "no pmem regions (no NVDIMM, no memmap= region)\n";
        return 0;
    }
    std::cout << std::left << std::setw(10) << "REGION" << std::setw(12) << "SIZE" << std::setw(12)
              << "FREE"
              << "KIND\n";
    for (const auto& r : *regions)
        print_region(r);
    return 0;
}

int cmd_pool_create(const Invocation& in) {
    std::optional<std::uint64_t> size;
    if (auto v = in.args.value("--size")) {
        auto s = parse_size(*v);
        if (!s)
            return report(s.error());
        if (*s == 0)
            return usage_error("pool: --size must be more than 0", "pool create");
        size = *s;
    }
    auto region = in.args.value("--region");
    if (region && region->empty())
        return usage_error("pool: --region needs a REGION", "pool create");
    auto mount_point = in.args.value("--mount").value_or("/var/lib/vmupdate-pool");
    if (mount_point.empty())
        return usage_error("pool: --mount needs a DIR", "pool create");
    FsType fs = in.args.value("--fs") == "xfs" ? FsType::xfs : FsType::ext4;
    // A label-less region is used whole, so only a labelled one needs --size;
    // create_pool says so when it picks one.
    auto created = create_pool(size.value_or(0), region, mount_point, fs);
    if (!created)
        return report(created.error());
    print_created(*created, fs);
    if (in.args.has("--configure-libvirt")) {
        if (auto ok = configure_libvirt(std::string(system_qemu_conf), created->backing_dir); !ok)
            return report(ok.error());
        std::cout << system_qemu_conf << ": " << created->conf_line << "\n"
                  << "restart libvirtd for it to take effect; running domains keep their RAM "
                     "where it is until their next cold start\n";
    } else {
        std::cout << "set in " << system_qemu_conf << " (then restart libvirtd):\n  "
                  << created->conf_line << '\n';
    }
    return 0;
}

} // namespace vmupdate::cli
