// Reading what vmupdate needs from a libvirt domain's definition. Private header.
#pragma once

#include "vmupdate/config.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/paths.hpp"

namespace vmupdate {

/// Which definition of a domain to read.
enum class Definition { live, persistent };

/// The domain's live or persistent definition, inspected under `policy`.
[[nodiscard]] inline Result<DomainInfo> inspect(const Domain& dom, Definition which,
                                                ManagePolicy policy = ManagePolicy::marked) {
    auto xml = which == Definition::live ? dom.live_xml() : dom.inactive_xml();
    if (!xml)
        return std::unexpected(xml.error());
    return inspect_domain(*xml, dom.name(), policy);
}

/// The manage policy of /etc/vmupdate/vmupdate.conf (Paths::config_file).
[[nodiscard]] inline Result<ManagePolicy> manage_policy(const Paths& paths) {
    auto config = load_config(paths.config_file);
    if (!config)
        return std::unexpected(config.error());
    return config->manage;
}

} // namespace vmupdate
