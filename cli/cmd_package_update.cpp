// `vmupdate host-update --packages PKG...`: a QEMU/libvirt update in one command.
#include "handlers.hpp"
#include "output.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/package_update.hpp"

#include <algorithm>
#include <iostream>

namespace vmupdate::cli {
namespace {

// The options of the other form, which --packages does not take.
constexpr std::string_view kernel_only[] = {"--kernel", "--initrd", "--append", "--reuse-cmdline"};

// apt-get simulates and downloads (not on --dry-run), then the running domains
// are checked; an exit code when the update stops here (refused, nothing to do,
// a failure).
std::optional<int> plan(const Invocation& in, const Paths& paths, PackageUpdatePlan& plan) {
    PackageOptions options{.allow_removals = in.args.has("--allow-removals"),
                           .download = !in.args.has("--dry-run")};
    auto resolved = resolve_packages(in.args.list("--packages"), options);
    if (!resolved)
        return report(resolved.error());
    plan = std::move(*resolved);
    // Opened after apt-get: a connection idle through a long download can be dropped.
    if (plan.offenders.empty() && !plan.changes.empty()) {
        auto conn = Connection::open(in.uri);
        if (!conn)
            return report(conn.error());
        if (auto ok = check_domains_for_packages(*conn, paths, plan); !ok)
            return report(ok.error());
    }
    if (refuse("host-update", plan.warnings, plan.offenders))
        return 2;
    if (plan.changes.empty()) {
        std::cout << "nothing to install: the packages are up to date; nothing was paused\n";
        return 0;
    }
    return std::nullopt;
}

// "NAME OLD -> NEW", with (new), (removed), (purged) or (configured) where a version is not.
void print_change(const PackageChange& c) {
    std::cout << "    " << c.name << " ";
    switch (c.kind) {
    case ChangeKind::install:
        std::cout << "(new) -> " << c.to;
        break;
    case ChangeKind::upgrade:
        std::cout << c.from << " -> " << c.to;
        break;
    case ChangeKind::remove:
    case ChangeKind::purge:
        std::cout << (c.from.empty() ? "(installed)" : c.from) << " -> "
                  << (c.kind == ChangeKind::remove ? "(removed)" : "(purged)");
        break;
    case ChangeKind::configure:
        std::cout << c.to << " (configured)";
        break;
    }
    std::cout << '\n';
}

void print_plan(const PackageUpdatePlan& plan, unsigned parallel) {
    auto count = [&](auto... kinds) {
        return std::count_if(plan.changes.begin(), plan.changes.end(),
                             [&](const auto& c) { return ((c.kind == kinds) || ...); });
    };
    std::cout << "plan: install "
              << (plan.downloaded ? "(downloaded already)" : "(not downloaded: dry run)") << ": "
              << count(ChangeKind::install) << " new, " << count(ChangeKind::upgrade)
              << " upgraded, " << count(ChangeKind::remove, ChangeKind::purge) << " removed\n";
    for (const auto& c : plan.changes)
        print_change(c);
    std::cout << "  save " << plan.domains.size() << " domain(s), at most " << parallel
              << " at once, install, "
              << (plan.libvirt_changes ? "restart " + plan.libvirt_unit + ", " : "")
              << "restore them\n";
}

int print_done(const PackageUpdatePlan& plan, const PackageUpdateReport& done) {
    int rc = done.install_error.empty() ? 0 : 1;
    for (const auto& r : done.restored) {
        if (!r) {
            report(r.error());
            rc = 1; // the packages are installed: never 2 (nothing changed)
            continue;
        }
        std::cout << r->name << ": restored";
        if (r->pause_us)
            std::cout << "; guest paused " << seconds(static_cast<double>(*r->pause_us) / 1e6);
        std::cout << '\n';
    }
    std::cout << "phases: save " << seconds(done.save_seconds) << ", install "
              << seconds(done.install_seconds);
    if (plan.libvirt_changes)
        std::cout << ", " << plan.libvirt_unit << " restart " << seconds(done.restart_seconds);
    std::cout << ", restore " << seconds(done.restore_seconds) << '\n';
    if (!done.install_error.empty())
        std::cerr << "vmupdate: host-update: install failed; the domains above are back on "
                     "the binaries installed now: "
                  << done.install_error << '\n';
    return rc;
}

} // namespace

int cmd_package_update(const Invocation& in) {
    for (auto option : kernel_only)
        if (in.args.has(option))
            return usage_error("host-update --packages: unknown option " + std::string(option),
                               "host-update");
    if (in.args.list("--packages").empty())
        return usage_error("host-update --packages needs at least one package name or .deb file",
                           "host-update");
    Paths paths;
    PackageUpdatePlan packages;
    if (auto done = plan(in, paths, packages))
        return *done;
    auto parallel = static_cast<unsigned>(in.args.integer("--parallel", 4));
    print_plan(packages, parallel);
    if (auto done =
            go_ahead(in.args.has("--dry-run"), in.args.has("--yes"),
                     "dry run: pre-flight passed; nothing was downloaded, paused or installed"))
        return *done;
    auto done = run_package_update(in.uri, paths, packages, parallel);
    if (!done)
        return report(done.error());
    return print_done(packages, *done);
}

} // namespace vmupdate::cli
