#include "domain_info.hpp"

namespace vmupdate {

Result<std::vector<RunningDomain>> running_domains(const Connection& conn, const Paths& paths) {
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    auto doms = conn.domains();
    if (!doms)
        return std::unexpected(doms.error());
    std::vector<RunningDomain> out;
    for (auto& d : *doms) {
        auto active = d.is_active();
        if (active && !*active)
            continue;
        auto live = active ? inspect(d, Definition::live, *policy)
                           : Result<DomainInfo>(std::unexpected(active.error()));
        out.push_back(RunningDomain{std::move(d), std::move(live)});
    }
    return out;
}

} // namespace vmupdate
