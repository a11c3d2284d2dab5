// `vmupdate host-update --kernel K ...`: save every VM, kexec into kernel K;
// vmupdate-restore.service restores them at boot. (--packages: cmd_package_update.cpp.)
#include "handlers.hpp"
#include "output.hpp"
#include "session.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/host_update.hpp"
#include "vmupdate/pool.hpp"

#include <iomanip>
#include <iostream>
#include <optional>

namespace vmupdate::cli {
namespace {

// The kernel options: K, its initramfs and its command line; an exit code when
// they do not add up.
std::optional<int> read_kexec(const Invocation& in, KexecPlan& kexec) {
    kexec.kernel = in.args.value("--kernel").value_or("");
    kexec.initrd = in.args.value("--initrd").value_or("");
    kexec.cmdline = in.args.value("--append").value_or("");
    bool append = in.args.has("--append"), reuse = in.args.has("--reuse-cmdline");
    if (in.args.has("--allow-removals"))
        return usage_error("host-update: --allow-removals goes with --packages", "host-update");
    if (kexec.kernel.empty())
        return usage_error("host-update needs --kernel", "host-update");
    if (append == reuse)
        return usage_error("host-update needs either --append ARGS or --reuse-cmdline",
                           "host-update");
    if (reuse) {
        auto c = current_cmdline();
        if (!c)
            return report(c.error());
        kexec.cmdline = *c;
    }
    return std::nullopt;
}

void print_plan(const KexecPlan& kexec, const HostUpdatePlan& plan, unsigned parallel) {
    std::cout << "plan: kexec into " << kexec.kernel
              << (kexec.initrd.empty() ? "" : " with " + kexec.initrd)
              << "\n  command line: " << kexec.cmdline << "\n  save " << plan.domains.size()
              << " domain(s), at most " << parallel << " at once:\n";
    for (const auto& d : plan.domains)
        std::cout << "    " << d.name << ": RAM " << format_size(d.ram_bytes) << " on "
                  << d.filesystem << '\n';
    std::cout
        << "  then: vmupdate-restore.service (vmupdate restore --all) restores them at boot\n";
}

int save_and_kexec(Session& session, const Paths& paths, const HostUpdatePlan& plan,
                   unsigned parallel) {
    auto saved = save_for_host_update(session.conn, paths, plan, session.events, parallel);
    if (!saved)
        return report(saved.error());
    for (const auto& r : saved->saved)
        std::cout << r.name << ": saved: device state " << format_size(r.image_bytes) << '\n';
    std::cout << "saved " << saved->saved.size() << " domain(s) in " << std::fixed
              << std::setprecision(2) << saved->seconds << " s; state synced; kexec now ("
              << (kexec_method() == KexecVia::systemd ? "systemctl kexec" : "kexec -e") << ")"
              << std::endl;
    auto ok = kexec_into_new_kernel(session.conn, paths, *saved, session.events, parallel);
    if (!ok)
        return report(ok.error());
    std::cout << "systemd is shutting down into the new kernel; vmupdate-restore.service "
                 "restores the domains at boot"
              << std::endl;
    return 0;
}

} // namespace

int cmd_host_update(const Invocation& in) {
    handle_interrupts();
    if (in.args.has("--packages"))
        return cmd_package_update(in);
    Paths paths;
    KexecPlan kexec;
    if (auto done = read_kexec(in, kexec))
        return *done;
    auto session = open_session(in.uri);
    if (!session)
        return report(session.error());
    auto plan = plan_host_update(session->conn, paths, kexec);
    if (!plan)
        return report(plan.error());
    // Unloaded again on every way out below but the update itself.
    auto kernel = load_planned_kernel(*plan);
    if (refuse("host-update", plan->warnings, plan->offenders))
        return 2;
    auto parallel = static_cast<unsigned>(in.args.integer("--parallel", 4));
    print_plan(kexec, *plan, parallel);
    bool dry_run = in.args.has("--dry-run");
    if (dry_run)
        kernel.reset(); // unloaded before it says so; any other way out unloads it too
    if (auto done = go_ahead(dry_run, in.args.has("--yes"),
                             "dry run: pre-flight passed, the kernel loaded and unloaded again; "
                             "nothing was paused"))
        return *done;
    kernel->keep();
    return save_and_kexec(*session, paths, *plan, parallel);
}

int cmd_handover_hold(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    if (in.args.operands.empty())
        return usage_error("handover-hold needs domain UUIDs");
    if (auto ok = hold_handover(paths, in.args.operands); !ok)
        return report(ok.error());
    return 0;
}

int cmd_ram_hold(const Invocation& in) {
    Paths paths;
    const auto& ops = in.args.operands;
    // Raw operands: the "--" the starter puts first is one of them; then the
    // starter's run directory (where the record goes) and PID.
    std::size_t at = !ops.empty() && ops[0] == "--" ? 1 : 0;
    if (ops.size() < at + 3 || !ops[at].starts_with('/') || ops[at + 1].empty() ||
        ops[at + 1].size() > 9 || ops[at + 1].find_first_not_of("0123456789") != std::string::npos)
        return usage_error("ram-hold needs RUN_DIR PID TOKEN:FD...");
    paths.run_dir = ops[at];
    auto pid = static_cast<pid_t>(std::stol(ops[at + 1]));
    std::vector<std::string> specs(ops.begin() + static_cast<std::ptrdiff_t>(at) + 2, ops.end());
    if (auto ok = hold_ram_files(paths, pid, specs); !ok)
        return report(ok.error());
    return 0;
}

} // namespace vmupdate::cli
