#include "vmupdate/prepare.hpp"

#include "vmupdate/domain_xml.hpp"

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

    Prepared out{dom->name(), std::move(translated->changes), *running};
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

} // namespace vmupdate
