// Reading what vmupdate needs from a libvirt domain's definition. Private header.
#pragma once

#include "vmupdate/config.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/paths.hpp"

#include <vector>

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

/// A domain that runs (or whose state cannot be read: it might run), with its
/// live definition inspected, or the error of either step.
struct RunningDomain {
    Domain dom;
    Result<DomainInfo> live;
};

/// The running domains on the connection, judged under the configured manage policy.
[[nodiscard]] Result<std::vector<RunningDomain>> running_domains(const Connection& conn,
                                                                 const Paths& paths);

} // namespace vmupdate
