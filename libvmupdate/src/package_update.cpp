#include "vmupdate/package_update.hpp"

#include "domain_info.hpp"
#include "operation.hpp"
#include "package_plan.hpp"
#include "process.hpp"
#include "text.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/interrupt.hpp"
#include "vmupdate/preservable.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <unistd.h>

namespace vmupdate {
namespace {

using Clock = SteadyClock;
using namespace std::chrono_literals;

// apt-get never asks; a changed configuration file keeps the operator's version.
std::vector<std::string> apt(std::vector<std::string> args) {
    std::vector<std::string> argv{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o",
                                  "Dpkg::Options::=--force-confold"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

bool has_systemd() {
    return ::access("/run/systemd/system", F_OK) == 0;
}

// The libvirt daemon unit that runs: monolithic libvirtd or modular virtqemud.
std::string active_libvirt_unit(const ProcessRunner& run) {
    for (const char* unit : {"libvirtd.service", "virtqemud.service"})
        if (auto r = run({"systemctl", "is-active", "--quiet", unit}, 10s); r && r->exit_code == 0)
            return unit;
    return {};
}

// libvirtd accepts connections again after a restart.
Result<Connection> reconnect(const std::string& uri) {
    auto deadline = Clock::now() + 60s;
    for (;;) {
        auto conn = Connection::open(uri);
        if (conn || Clock::now() > deadline)
            return conn;
        std::this_thread::sleep_for(200ms);
    }
}

// The word that starts `line`, and `line` past it and its space.
std::string_view pop_word(std::string_view& line) {
    auto sp = line.find(' ');
    std::string_view word = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    return word;
}

// One line of the simulation: "Inst NAME [OLD] (NEW REPO [ARCH])", "Remv NAME [OLD]",
// "Purg NAME [OLD]" or "Conf NAME (VERSION REPO [ARCH])"; anything else is nullopt.
std::optional<PackageChange> parse_apt_line(std::string_view line) {
    PackageChange c;
    auto verb = pop_word(line);
    if (verb == "Inst" || verb == "Conf")
        c.kind = ChangeKind::install;
    else if (verb == "Remv" || verb == "Purg")
        c.kind = verb == "Remv" ? ChangeKind::remove : ChangeKind::purge;
    else
        return std::nullopt;
    c.name = std::string(pop_word(line));
    if (line.starts_with("[")) {
        auto close = line.find(']');
        if (close == std::string_view::npos)
            return std::nullopt;
        c.from = std::string(line.substr(1, close - 1));
        line = line.substr(std::min(close + 2, line.size()));
    }
    if (line.starts_with("(")) {
        auto stop = line.find_first_of(" )", 1);
        c.to = std::string(line.substr(1, stop == std::string_view::npos ? 0 : stop - 1));
    }
    if (c.name.empty())
        return std::nullopt;
    if (c.kind != ChangeKind::install)
        return c.to.empty() ? std::optional(c) : std::nullopt;
    if (c.to.empty())
        return std::nullopt;
    if (verb == "Conf")
        c.kind = ChangeKind::configure;
    else if (!c.from.empty())
        c.kind = ChangeKind::upgrade;
    return c;
}

} // namespace

std::vector<PackageChange> parse_apt_simulation(std::string_view out) {
    std::vector<PackageChange> changes;
    while (!out.empty()) {
        auto c = parse_apt_line(pop_line(out));
        if (!c)
            continue;
        auto same = std::find_if(changes.begin(), changes.end(),
                                 [&](const auto& o) { return o.name == c->name; });
        if (same == changes.end())
            changes.push_back(std::move(*c));
        else if (c->kind == ChangeKind::purge) // after its Remv, if apt lists both
            same->kind = ChangeKind::purge;
        // else: the Conf of a package unpacked above adds nothing
    }
    return changes;
}

bool is_libvirt_package(std::string_view name) {
    if (auto colon = name.find(':'); colon != std::string_view::npos)
        name = name.substr(0, colon); // the architecture qualifier
    return name.starts_with("libvirt-daemon") || name == "libvirt0" || name == "libvirt-l10n" ||
           name == "libvirt-clients";
}

bool is_protected_package(std::string_view name) {
    if (auto colon = name.find(':'); colon != std::string_view::npos)
        name = name.substr(0, colon);
    return name.starts_with("libvirt") || name == "qemu" || name.starts_with("qemu-") ||
           name == "vmupdate" || name.starts_with("vmupdate-");
}

void review_removals(PackageUpdatePlan& plan, bool allow_removals) {
    std::string kept, others;
    for (const auto& c : plan.changes) {
        if (c.kind != ChangeKind::remove && c.kind != ChangeKind::purge)
            continue;
        std::string& list = is_protected_package(c.name) ? kept : others;
        list += (list.empty() ? "" : ", ") + c.name;
    }
    if (!kept.empty())
        plan.offenders.push_back("the install would remove " + kept +
                                 ": vmupdate never removes libvirt, QEMU or itself (the guests "
                                 "it keeps run on them)");
    if (!others.empty() && !allow_removals)
        plan.offenders.push_back("the install would remove " + others +
                                 ": pass --allow-removals to let it");
}

Result<void> simulate_and_download(PackageUpdatePlan& plan, const PackageOptions& options,
                                   const ProcessRunner& run) {
    std::vector<std::string> args{"install", "--simulate", "-y"};
    args.insert(args.end(), plan.packages.begin(), plan.packages.end());
    auto sim = run(apt(args), 5min);
    if (!sim)
        return std::unexpected(sim.error());
    if (sim->exit_code != 0) {
        plan.offenders.push_back("apt-get cannot install " + [&] {
            std::string all;
            for (const auto& p : plan.packages)
                all += (all.empty() ? "" : " ") + p;
            return all;
        }() + ": " + sim->err);
        return {};
    }
    plan.changes = parse_apt_simulation(sim->out);
    review_removals(plan, options.allow_removals);
    plan.libvirt_changes = std::any_of(plan.changes.begin(), plan.changes.end(),
                                       [](const auto& c) { return is_libvirt_package(c.name); });
    if (plan.libvirt_changes) {
        if (!has_systemd())
            plan.offenders.emplace_back(
                "a libvirt package changes, and libvirtd would have to restart, but this host "
                "does not run systemd: restart it yourself (vmupdate save --all; install; restart "
                "libvirtd; vmupdate restore --all)");
        else if (plan.libvirt_unit = active_libvirt_unit(run); plan.libvirt_unit.empty())
            plan.offenders.emplace_back(
                "a libvirt package changes, but neither libvirtd.service nor virtqemud.service "
                "is active");
    }

    if (!plan.offenders.empty() || plan.changes.empty() || !options.download)
        return {};
    // Downloaded now, so that the guests do not wait for the network.
    args[1] = "--download-only";
    auto dl = run(apt(args), 30min);
    if (!dl)
        return std::unexpected(dl.error());
    if (dl->exit_code != 0)
        plan.offenders.push_back("apt-get cannot download the packages: " + dl->err);
    else
        plan.downloaded = true;
    return {};
}

Result<PackageUpdatePlan> resolve_packages(std::vector<std::string> packages,
                                           const PackageOptions& options) {
    PackageUpdatePlan plan;
    if (packages.empty())
        return fail(Errc::invalid_input, "host-update", "no packages given", "");
    for (auto& p : packages) {
        // apt-get takes a .deb file only as a path; a relative one is made absolute.
        if (p.ends_with(".deb") && !p.starts_with("/")) {
            char cwd[4096];
            if (::getcwd(cwd, sizeof cwd) == nullptr)
                return fail_errno(errno, p, "cannot resolve the package file");
            p = std::string(cwd) + "/" + p;
        }
        if (p.ends_with(".deb") && ::access(p.c_str(), R_OK) != 0)
            plan.offenders.push_back("cannot read the package file " + p);
    }
    plan.packages = std::move(packages);
    if (::geteuid() != 0)
        plan.offenders.emplace_back("host-update must run as root (it installs packages)");
    if (!plan.offenders.empty())
        return plan;

    if (auto ok = simulate_and_download(plan, options, run_process); !ok)
        return std::unexpected(ok.error());
    return plan;
}

Result<void> check_domains_for_packages(const Connection& conn, const Paths& paths,
                                        PackageUpdatePlan& plan) {
    auto running = running_domains(conn, paths);
    if (!running)
        return std::unexpected(running.error());
    for (const auto& r : *running) {
        if (!r.live) {
            plan.offenders.push_back(r.dom.name() + ": " + r.live.error().message());
            continue;
        }
        // An update of QEMU's files does not stop a running QEMU: an unmanaged
        // domain just keeps the binary it started with.
        if (preservability(*r.live) != Unpreservable::none) {
            plan.warnings.push_back(r.dom.name() +
                                    ": not preservable, not saved: it keeps running on the QEMU "
                                    "it started with until its next cold start");
            continue;
        }
        plan.domains.push_back(r.dom.name());
    }
    if (!plan.domains.empty())
        if (auto ok = check_hook_runs(paths); !ok)
            plan.offenders.push_back(ok.error().message());
    return {};
}

namespace {

// Saves the planned domains; the names of those saved, and the first failure.
std::vector<std::string> save_planned(const Connection& conn, const Paths& paths,
                                      const PackageUpdatePlan& plan, const EventWatch& events,
                                      unsigned parallel, PackageUpdateReport& report,
                                      std::optional<Error>& first_error) {
    auto t0 = Clock::now();
    std::vector<std::string> saved;
    for (auto& r : save_domains(conn, paths, plan.domains, events, parallel)) {
        if (r) {
            saved.push_back(r->name);
            report.saved.push_back(std::move(*r));
        } else if (!first_error) {
            first_error = r.error();
        }
    }
    report.save_seconds = seconds_since(t0);
    return saved;
}

// The last lines of apt-get's output: its errors ("E: ...") come last.
std::string last_lines(std::string_view text, std::size_t lines) {
    while (text.ends_with('\n'))
        text.remove_suffix(1);
    std::size_t at = text.size();
    for (std::size_t n = 0; n < lines && at != std::string_view::npos && at > 0; ++n)
        at = text.rfind('\n', at - 1);
    return std::string(at == std::string_view::npos ? text : text.substr(at + 1));
}

// In a session of its own: a Ctrl-C meant for vmupdate must not cut dpkg off
// half way (vmupdate itself finishes the update, restores included). Its output
// goes to a file, not a pipe: if vmupdate dies, dpkg goes on without a SIGPIPE.
void install(const Paths& paths, const PackageUpdatePlan& plan, PackageUpdateReport& report) {
    auto t1 = Clock::now();
    // --no-download keeps the network out of the pause; apt-get 2.6 fails
    // it with "Pathname to install is not absolute" for a .deb file given by path,
    // which --download-only copied into its cache. Whatever else those need was
    // downloaded then too.
    const bool files = std::any_of(plan.packages.begin(), plan.packages.end(),
                                   [](const auto& p) { return p.ends_with(".deb"); });
    std::vector<std::string> args{"install", "-y"};
    if (!files)
        args.push_back("--no-download");
    args.insert(args.end(), plan.packages.begin(), plan.packages.end());
    auto argv = apt(args);
    argv.insert(argv.begin(), {"setsid", "--wait"});
    auto dir = std::filesystem::path(paths.log_file).parent_path();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    report.install_log = (dir / "packages.log").string();
    auto installed = run_process_logged(argv, 30min, report.install_log);
    report.install_seconds = seconds_since(t1);
    if (!installed)
        report.install_error = installed.error().message();
    else if (installed->exit_code != 0)
        report.install_error = "apt-get exited with " + std::to_string(installed->exit_code) +
                               " (its output is in " + report.install_log +
                               "): " + last_lines(installed->out, 5);
}

// A connection to the libvirt daemon after the install, and its events.
struct Reconnected {
    Connection conn;
    EventWatch events;
};

// Restarts libvirtd when libvirt changed and the install went through, and
// connects again: a restarted libvirtd drops the old connection, and a long
// install may outlast it anyway.
Result<Reconnected> restart_libvirt(const std::string& uri, const PackageUpdatePlan& plan,
                                    PackageUpdateReport& report) {
    auto t2 = Clock::now();
    std::optional<Result<ProcessResult>> restarted;
    if (plan.libvirt_changes && report.install_error.empty())
        restarted = run_process({"systemctl", "restart", plan.libvirt_unit}, 5min);
    auto fresh = reconnect(uri);
    std::optional<EventWatch> watch;
    if (fresh)
        if (auto w = EventWatch::start(*fresh))
            watch = std::move(*w);
    report.restart_seconds = restarted ? seconds_since(t2) : 0;
    bool restart_failed = restarted && (!*restarted || (*restarted)->exit_code != 0);
    if (restart_failed || !fresh || !watch) {
        Error e = !fresh   ? fresh.error()
                  : !watch ? Error{Errc::libvirt, uri, "cannot watch domain events", ""}
                           : Error{Errc::system, plan.libvirt_unit, "cannot restart",
                                   *restarted ? (*restarted)->err : restarted->error().message()};
        e.cause +=
            std::string("; ") +
            (report.install_error.empty() ? "the packages are installed" : "the install failed") +
            " and the domains stay saved: start libvirt and run 'vmupdate restore --all'";
        return std::unexpected(e);
    }
    return Reconnected{std::move(*fresh), std::move(*watch)};
}

} // namespace

Result<PackageUpdateReport> run_package_update(const std::string& uri, const Paths& paths,
                                               const PackageUpdatePlan& plan, unsigned parallel) {
    PackageUpdateReport report;
    auto conn = Connection::open(uri);
    if (!conn)
        return std::unexpected(conn.error());
    auto events = EventWatch::start(*conn);
    if (!events)
        return std::unexpected(events.error());

    std::optional<Error> first_error;
    auto saved = save_planned(*conn, paths, plan, *events, parallel, report, first_error);
    auto restore_all = [&](const Connection& c, const EventWatch& w) {
        auto t = Clock::now();
        report.restored = restore_domains(c, paths, saved, w, parallel, true);
        report.restore_seconds = seconds_since(t);
    };
    if (first_error || interrupt_requested()) {
        restore_all(*conn, *events);
        Error e =
            first_error ? *first_error : Error{Errc::refused, "host-update", "interrupted", ""};
        auto back =
            static_cast<std::size_t>(std::count_if(report.restored.begin(), report.restored.end(),
                                                   [](const auto& r) { return r.has_value(); }));
        e.cause += (e.cause.empty() ? "" : "; ") + std::string("nothing installed; ") +
                   std::to_string(back) + " of " + std::to_string(saved.size()) +
                   " saved domains restored";
        if (back != saved.size()) // the others stay saved, their RAM held: not exit 2
            e.code = Errc::ram_held;
        return std::unexpected(e);
    }
    install(paths, plan, report);
    auto fresh = restart_libvirt(uri, plan, report);
    if (!fresh)
        return std::unexpected(fresh.error());
    restore_all(fresh->conn, fresh->events);
    return report;
}

} // namespace vmupdate
