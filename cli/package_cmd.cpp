#include "package_cmd.hpp"

#include "vmupdate/error.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/package_update.hpp"

#include <charconv>
#include <iomanip>
#include <iostream>
#include <unistd.h>

namespace vmupdate::cli {
namespace {

int report(const Error& e) {
    std::cerr << "vmupdate: " << e.message() << '\n';
    return exit_code(e);
}

int usage_error(const std::string& what) {
    std::cerr << "vmupdate: " << what << "\nTry 'vmupdate host-update --help'.\n";
    return 2;
}

std::string seconds(double s) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(2) << s << " s";
    return os.str();
}

} // namespace

int cmd_package_update(const std::string& uri, const std::vector<std::string>& args,
                       const Paths& paths) {
    std::vector<std::string> packages;
    bool dry_run = false, yes = false, in_packages = false;
    unsigned parallel = 4;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--packages") {
            in_packages = true;
        } else if (a == "--dry-run") {
            dry_run = true;
        } else if (a == "--yes") {
            yes = true;
        } else if (a == "--parallel") {
            unsigned n = 0;
            const std::string v = i + 1 < args.size() ? args[++i] : "";
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc{} || p != v.data() + v.size() || n == 0 || n > 64)
                return usage_error("host-update: --parallel needs a number from 1 to 64");
            parallel = n;
        } else if (a.starts_with("-")) {
            return usage_error("host-update --packages: unknown option " + a);
        } else if (in_packages) {
            packages.push_back(a);
        } else {
            return usage_error("host-update: unexpected argument " + a);
        }
    }
    if (packages.empty())
        return usage_error("host-update --packages needs at least one package name or .deb file");

    auto plan = resolve_packages(packages);
    if (!plan)
        return report(plan.error());
    // Opened after apt-get: a connection idle through a long download can be dropped.
    if (plan->offenders.empty() && !plan->changes.empty()) {
        auto conn = Connection::open(uri);
        if (!conn)
            return report(conn.error());
        if (auto ok = check_domains_for_packages(*conn, paths, *plan); !ok)
            return report(ok.error());
    }
    for (const auto& w : plan->warnings)
        std::cerr << "vmupdate: warning: " << w << '\n';
    if (!plan->offenders.empty()) {
        std::cerr << "vmupdate: host-update refused, nothing was paused:\n";
        for (const auto& o : plan->offenders)
            std::cerr << "  " << o << '\n';
        return 2;
    }
    if (plan->changes.empty()) {
        std::cout << "nothing to install: the packages are up to date; nothing was paused\n";
        return 0;
    }
    std::cout << "plan: install (downloaded already)\n";
    for (const auto& c : plan->changes)
        std::cout << "    " << c.name << " " << (c.from.empty() ? "(new)" : c.from) << " -> "
                  << c.to << '\n';
    std::cout << "  save " << plan->domains.size() << " domain(s), at most " << parallel
              << " at once, install, "
              << (plan->libvirt_changes ? "restart " + plan->libvirt_unit + ", " : "")
              << "restore them\n";
    if (dry_run) {
        std::cout << "dry run: pre-flight passed; nothing was paused or installed\n";
        return 0;
    }
    if (!yes) {
        if (!isatty(STDIN_FILENO))
            return usage_error(
                "host-update: confirm with --yes (standard input is not a terminal)");
        std::cout << "Continue? [y/N] " << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "yes") {
            std::cout << "nothing done\n";
            return 0;
        }
    }
    auto done = run_package_update(uri, paths, *plan, parallel);
    if (!done)
        return report(done.error());
    int rc = done->install_error.empty() ? 0 : 1;
    for (const auto& r : done->restored) {
        if (!r) {
            rc = std::max(rc, report(r.error()));
            continue;
        }
        std::cout << r->name << ": restored";
        if (r->pause_us)
            std::cout << "; guest paused " << seconds(static_cast<double>(*r->pause_us) / 1e6);
        std::cout << '\n';
    }
    std::cout << "phases: save " << seconds(done->save_seconds) << ", install "
              << seconds(done->install_seconds);
    if (plan->libvirt_changes)
        std::cout << ", " << plan->libvirt_unit << " restart " << seconds(done->restart_seconds);
    std::cout << ", restore " << seconds(done->restore_seconds) << '\n';
    if (!done->install_error.empty())
        std::cerr << "vmupdate: host-update: install failed; the domains above are back on "
                     "the binaries installed now: "
                  << done->install_error << '\n';
    return rc;
}

} // namespace vmupdate::cli
