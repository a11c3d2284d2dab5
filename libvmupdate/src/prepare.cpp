#include "vmupdate/prepare.hpp"

#include "domain_info.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/pool_usage.hpp"
#include "vmupdate/preservable.hpp"

namespace vmupdate {

Result<Prepared> prepare_domain(const Connection& conn, std::string_view name) {
    auto dom = conn.lookup(name);
    if (!dom)
        return std::unexpected(dom.error());
    auto persistent = dom->is_persistent();
    if (!persistent)
        return std::unexpected(persistent.error());
    if (!*persistent)
        return fail(Errc::refused, dom->name(), "cannot prepare a transient domain",
                    "vmupdate needs a persistent definition (virsh define) to change");
    auto xml = dom->inactive_xml();
    if (!xml)
        return std::unexpected(xml.error());
    auto translated = translate_domain(*xml, dom->name());
    if (!translated)
        return std::unexpected(translated.error());
    auto running = dom->is_active();
    if (!running)
        return std::unexpected(running.error());

    // The running QEMU keeps the RAM it started with until a cold start.
    bool live_shared = false;
    if (*running)
        if (auto info = inspect(*dom, Definition::live))
            live_shared = ram_outlives_qemu(*info);
    Prepared out{dom->name(), std::move(translated->changes), *running && !live_shared};
    if (out.changes.empty())
        return out;
    auto defined = conn.define(translated->xml);
    if (!defined) {
        defined.error().object = dom->name();
        defined.error().step = "cannot redefine the domain";
        return std::unexpected(defined.error());
    }
    return out;
}

Result<std::optional<BackingDir>> backing_dir_for(const Connection& conn,
                                                  const std::string& qemu_conf) {
    auto uri = conn.uri();
    if (!uri)
        return std::unexpected(uri.error());
    // Only the system daemon reads the system qemu.conf; other URIs' files are
    // elsewhere or on another host.
    if (*uri != "qemu:///system")
        return std::optional<BackingDir>{};
    auto path = memory_backing_dir(qemu_conf);
    if (!path)
        return std::unexpected(path.error());
    auto fs = filesystem_of(*path);
    if (!fs)
        return std::unexpected(fs.error());
    return std::optional<BackingDir>{BackingDir{*path, *fs}};
}

std::optional<std::string> backing_dir_warning(const BackingDir& dir) {
    if (dir.fs.kind != FsKind::disk)
        return std::nullopt;
    return "memory_backing_dir " + dir.path + " is on " + dir.fs.fstype + " (" +
           dir.fs.mount_point +
           "), a disk filesystem: the kernel keeps writing guest RAM back to disk; put it on tmpfs "
           "(QEMU updates) or a DAX mount on pmem (kernel updates) in " +
           std::string(system_qemu_conf);
}

std::optional<std::string> pool_capacity_warning(const Connection& conn, const BackingDir& dir) {
    if (dir.fs.kind != FsKind::dax)
        return std::nullopt;
    auto usage = pool_usage(dir.path);
    auto doms = conn.domains();
    if (!usage || !doms)
        return std::nullopt;
    std::uint64_t need = 0;
    for (const auto& d : *doms) {
        auto info = inspect(d, Definition::persistent);
        if (info && info->managed)
            need += info->memory_kib * 1024;
    }
    if (need <= usage->total)
        return std::nullopt;
    return "the managed domains need " + format_size(need) + " of RAM together, the pmem pool " +
           usage->mount_point + " holds " + format_size(usage->total) +
           ": not all of them can run at once";
}

} // namespace vmupdate
