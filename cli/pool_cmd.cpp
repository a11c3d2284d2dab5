#include "pool_cmd.hpp"

#include "help.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/pool.hpp"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

namespace vmupdate::cli {
namespace {

int report(const Error& e) {
    std::cerr << "vmupdate: " << e.message() << '\n';
    return exit_code(e);
}

// Invalid arguments (exit 2); `sub` is the subcommand whose help to point at.
int usage_error(const std::string& what, const std::string& sub = {}) {
    std::cerr << "vmupdate: pool: " << what << "\nTry 'vmupdate pool " << sub
              << (sub.empty() ? "" : " ") << "--help'.\n";
    return 2;
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
        for (const auto& n : r.namespaces) {
            nlohmann::json jn{{"namespace", n.device}, {"mode", n.mode},
                              {"size", n.size},        {"blockdev", n.block_device},
                              {"enabled", n.enabled},  {"mount", nullptr}};
            if (n.mount)
                jn["mount"] = {{"mount_point", n.mount->mount_point},
                               {"fstype", n.mount->fstype},
                               {"options", n.mount->options},
                               {"dax", n.mount->dax}};
            jr["namespaces"].push_back(std::move(jn));
        }
        out.push_back(std::move(jr));
    }
    return out;
}

int pool_list(const std::vector<std::string>& args) {
    bool json = false;
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--json")
            json = true;
        else
            return usage_error("list: unknown argument " + args[i], "list");
    }
    auto regions = list_pmem();
    if (!regions)
        return report(regions.error());
    if (json) {
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
    for (const auto& r : *regions) {
        std::string kind = r.labelled ? "labelled" : "label-less (legacy)";
        if (!r.provider.empty())
            kind += ", " + r.provider;
        if (!r.enabled)
            kind += ", disabled";
        std::cout << std::setw(10) << r.device << std::setw(12) << format_size(r.size)
                  << std::setw(12) << format_size(r.available) << kind << '\n';
        if (r.namespaces.empty())
            std::cout << "  (no namespaces)\n";
        for (const auto& n : r.namespaces) {
            std::cout << "  " << std::setw(15) << n.device << std::setw(8) << n.mode
                      << std::setw(12) << format_size(n.size) << std::setw(14)
                      << (n.block_device.empty() ? "-" : "/dev/" + n.block_device);
            if (n.mount)
                std::cout << n.mount->mount_point << " (" << n.mount->fstype
                          << ", dax: " << (n.mount->dax ? "yes" : "no") << ")";
            else
                std::cout << "not mounted";
            std::cout << '\n';
        }
    }
    return 0;
}

int pool_create(const std::vector<std::string>& args) {
    std::optional<std::uint64_t> size;
    std::optional<std::string> region;
    std::string mount_point = "/var/lib/vmupdate-pool";
    FsType fs = FsType::ext4;
    bool configure = false;
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::optional<std::string> {
            if (auto eq = a.find('='); eq != std::string::npos)
                return a.substr(eq + 1);
            if (i + 1 < args.size())
                return args[++i];
            return std::nullopt;
        };
        auto name = a.substr(0, a.find('='));
        if (name == "--size") {
            auto v = value();
            if (!v)
                return usage_error("--size needs a SIZE", "create");
            auto s = parse_size(*v);
            if (!s)
                return report(s.error());
            if (*s == 0)
                return usage_error("--size must be more than 0", "create");
            size = *s;
        } else if (name == "--region") {
            region = value();
            if (!region || region->empty())
                return usage_error("--region needs a REGION", "create");
        } else if (name == "--mount") {
            auto v = value();
            if (!v || v->empty())
                return usage_error("--mount needs a DIR", "create");
            mount_point = *v;
        } else if (name == "--fs") {
            auto v = value();
            if (v == "ext4")
                fs = FsType::ext4;
            else if (v == "xfs")
                fs = FsType::xfs;
            else
                return usage_error("--fs needs ext4 or xfs", "create");
        } else if (a == "--configure-libvirt") {
            configure = true;
        } else {
            return usage_error("create: unknown argument " + a, "create");
        }
    }
    // A label-less region is used whole, so only a labelled one needs --size;
    // create_pool says so when it picks one.
    auto created = create_pool(size.value_or(0), region, mount_point, fs);
    if (!created)
        return report(created.error());
    const PoolCreated& p = *created;
    std::cout << "pool: " << p.block_device << " (" << p.namespace_dev << " in " << p.region << ", "
              << format_size(p.size) << (p.created_namespace ? ", new" : ", existing")
              << " namespace) mounted with dax on " << p.mount_point << " (" << to_string(fs)
              << ")\n";
    for (const auto& note : p.notes)
        std::cout << "note: " << note << '\n';
    std::cout << "to mount it at boot, add to /etc/fstab (before libvirtd starts):\n  "
              << p.fstab_line << '\n';
    if (configure) {
        if (auto ok = configure_libvirt(std::string(system_qemu_conf), p.backing_dir); !ok)
            return report(ok.error());
        std::cout << system_qemu_conf << ": " << p.conf_line << "\n"
                  << "restart libvirtd for it to take effect; running domains keep their RAM "
                     "where it is until their next cold start\n";
    } else {
        std::cout << "set in " << system_qemu_conf << " (then restart libvirtd):\n  " << p.conf_line
                  << '\n';
    }
    return 0;
}

} // namespace

int cmd_pool(const std::vector<std::string>& args) {
    if (args.empty())
        return usage_error("needs list or create");
    // `pool --help` is answered before (help_request); `pool help` as well here.
    if (args[0] == "help") {
        std::cout << command_help(*find_command("pool"));
        return 0;
    }
    if (args[0] == "list")
        return pool_list(args);
    if (args[0] == "create")
        return pool_create(args);
    return usage_error("unknown subcommand '" + args[0] + "'");
}

} // namespace vmupdate::cli
