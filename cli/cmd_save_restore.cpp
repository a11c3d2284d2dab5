// `vmupdate save`, `restore` and `discard`: a domain's device state saved while
// its RAM stays in its file, the restore from both, and dropping such a save.
#include "handlers.hpp"
#include "output.hpp"
#include "session.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/pool.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>

namespace vmupdate::cli {
namespace {

// DOMAIN... or --all; `all` lists the domains --all means.
template <typename AllFn>
Result<std::vector<std::string>> targets(const Invocation& in, AllFn all) {
    bool want_all = in.args.has("--all");
    const auto& names = in.args.operands;
    if (want_all == !names.empty())
        return fail(Errc::invalid_input, std::string(in.command.name),
                    "needs DOMAIN... or --all (not both)");
    if (want_all)
        return all();
    return names;
}

unsigned parallel(const Invocation& in) {
    return static_cast<unsigned>(in.args.integer("--parallel", 4));
}

// The exit code of two outcomes together: a failure (1: something is held or
// lost) outweighs a refusal (2: nothing changed).
int worse(int a, int b) {
    return a == 1 || b == 1 ? 1 : std::max(a, b);
}

// First the RAM a LUO handover brought across the kexec, if any, back into
// the preserved files the restores look for.
int reclaim(const Paths& paths) {
    auto reclaimed = reclaim_handed_over_ram(paths);
    if (!reclaimed)
        return report(reclaimed.error());
    if (*reclaimed) {
        const auto& r = **reclaimed;
        std::cout << "RAM handed over by the previous kernel (LUO): " << r.files << " file(s), "
                  << format_size(r.bytes) << " of " << r.uuids.size()
                  << " domain(s) written back in " << std::fixed << std::setprecision(2)
                  << r.seconds << " s\n";
    }
    return 0;
}

void print_restored(const RestoreReport& r, bool verbose) {
    warn(r.name, r.warnings);
    if (r.was_running) {
        std::cout << r.name << ": running (an interrupted save was undone)\n";
        return;
    }
    std::cout << r.name << ": restored (" << std::fixed << std::setprecision(2) << r.seconds
              << " s)";
    if (r.pause_us)
        std::cout << "; guest paused " << human_us(*r.pause_us)
                  << " (libvirt Suspended -> Resumed)";
    std::cout << '\n';
    if (verbose)
        for (const auto& p : r.phases)
            std::cout << "  " << std::left << std::setw(52) << p.what << std::right << std::setw(10)
                      << std::fixed << std::setprecision(1) << static_cast<double>(p.us) / 1000
                      << " ms\n";
}

} // namespace

int cmd_save(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    auto session = open_session(in.uri);
    if (!session)
        return report(session.error());
    auto names = targets(in, [&] { return running_managed_domains(session->conn, paths); });
    if (!names)
        return report(names.error());
    int rc = 0;
    for (auto& r : save_domains(session->conn, paths, *names, session->events, parallel(in))) {
        if (!r) {
            rc = worse(rc, report(r.error()));
            continue;
        }
        warn(r->name, r->warnings);
        std::cout << r->name << ": saved: device state " << format_size(r->image_bytes) << ", RAM "
                  << format_size(r->ram_bytes) << " kept in its file (" << std::fixed
                  << std::setprecision(2) << r->seconds << " s)\n";
        // Nova's <discard/>: said, as it is the one change made to the running QEMU.
        if (r->discard_switched > 0)
            std::cout << "  discard switched off in " << r->discard_switched
                      << " memory backend(s) before the pause (" << std::setprecision(1)
                      << static_cast<double>(r->discard_us) / 1000 << " ms)\n";
    }
    if (names->empty())
        std::cout << "no running domain is managed by vmupdate\n";
    return rc;
}

int cmd_restore(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    auto session = open_session(in.uri);
    if (!session)
        return report(session.error());
    int rc = reclaim(paths);
    auto names = targets(in, [&] { return saved_domains(paths); });
    if (!names)
        return report(names.error());
    // Domains whose RAM a failed write-back left with its holder: said above;
    // their restore would only fail again on the missing file.
    if (rc != 0)
        for (const auto& held : domains_awaiting_write_back(paths))
            std::erase(*names, held);
    bool all = in.args.has("--all");
    for (auto& r : restore_domains(session->conn, paths, *names, session->events, parallel(in))) {
        // --all goes by the manifests: one whose domain was undefined since is
        // not a failed restore, but worth a word.
        if (!r && all && r.error().code == Errc::not_found) {
            warn(r.error().object + ": a save is recorded, but libvirt no longer knows the "
                                    "domain; its manifest and preserved RAM are left in place");
            continue;
        }
        if (!r) {
            rc = worse(rc, report(r.error()));
            continue;
        }
        print_restored(*r, in.args.has("--verbose"));
    }
    if (names->empty())
        std::cout << "no domain has a vmupdate save\n";
    return rc;
}

int cmd_discard(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    if (in.args.operands.empty())
        return usage_error("discard needs at least one DOMAIN (there is no --all)", "discard");
    auto conn = Connection::open(in.uri);
    if (!conn)
        return report(conn.error());
    int rc = 0;
    for (const auto& name : in.args.operands) {
        auto r = discard_save(*conn, paths, name);
        if (!r) {
            rc = worse(rc, report(r.error()));
            continue;
        }
        std::cout << name << ": " << *r << '\n';
    }
    return rc;
}

} // namespace vmupdate::cli
