// Reading what vmupdate needs from a libvirt domain's definition. Private header.
#pragma once

#include "vmupdate/domain_xml.hpp"
#include "vmupdate/libvirt.hpp"

namespace vmupdate {

/// Which definition of a domain to read.
enum class Definition { live, persistent };

/// The domain's live or persistent definition, inspected.
[[nodiscard]] inline Result<DomainInfo> inspect(const Domain& dom, Definition which) {
    auto xml = which == Definition::live ? dom.live_xml() : dom.inactive_xml();
    if (!xml)
        return std::unexpected(xml.error());
    return inspect_domain(*xml, dom.name());
}

} // namespace vmupdate
