// `vmupdate prepare DOMAIN...`: make domains' persistent definitions preservable.
#include "handlers.hpp"
#include "output.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/pool.hpp"
#include "vmupdate/prepare.hpp"

#include <algorithm>
#include <iostream>

namespace vmupdate::cli {
namespace {

void print_prepared(const Prepared& p) {
    if (p.changes.empty()) {
        std::cout << p.name << ": already prepared\n";
    } else {
        std::cout << p.name << ": prepared (";
        for (size_t i = 0; i < p.changes.size(); ++i)
            std::cout << (i ? "; " : "") << p.changes[i];
        std::cout << ")\n";
    }
    if (p.needs_cold_start)
        std::cout << p.name
                  << ": the domain is running: the change takes effect at its next cold start "
                     "(shut it down and start it; a reboot inside the guest is not enough)\n";
}

// Where the RAM of prepared domains will live: a disk, or a pool too small.
void warn_backing_dir(const Connection& conn) {
    auto dir = backing_dir_for(conn, std::string(system_qemu_conf));
    if (!dir) {
        warn(dir.error().message());
    } else if (*dir) {
        if (auto w = backing_dir_warning(**dir))
            warn(*w);
        if (auto w = pool_capacity_warning(conn, **dir))
            warn(*w);
    }
}

} // namespace

int cmd_prepare(const Invocation& in) {
    if (in.args.operands.empty())
        return usage_error("prepare needs at least one DOMAIN", "prepare");
    auto conn = Connection::open(in.uri);
    if (!conn)
        return report(conn.error());
    int rc = 0;
    for (const auto& name : in.args.operands) {
        auto p = prepare_domain(*conn, name);
        if (!p) {
            rc = std::max(rc, report(p.error()));
            continue;
        }
        print_prepared(*p);
    }
    warn_backing_dir(*conn);
    return rc;
}

} // namespace vmupdate::cli
