// vmupdate: the command-line tool. Parses arguments, calls libvmupdate, prints
// results and errors, sets the exit code (0 ok, 1 failed, 2 refused/invalid).
#include "help.hpp"
#include "hook_path.hpp"
#include "package_cmd.hpp"
#include "pool_cmd.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/host_update.hpp"
#include "vmupdate/interrupt.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/pool.hpp"
#include "vmupdate/prepare.hpp"
#include "vmupdate/version.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace vmupdate;

struct Args {
    std::string uri;
    std::string command;
    std::vector<std::string> rest;
};

int report(const Error& e) {
    std::cerr << "vmupdate: " << e.message() << '\n';
    return exit_code(e);
}

// Invalid arguments: says what, and where the help is (exit 2).
int usage_error(const std::string& what, const std::string& command = {}) {
    std::cerr << "vmupdate: " << what << "\nTry 'vmupdate " << command
              << (command.empty() ? "" : " ") << "--help'.\n";
    return 2;
}

int cmd_translate(Args args) {
    // A FILE that starts with '-' comes after "--" ("-" alone is standard input).
    if (auto dashes = std::find(args.rest.begin(), args.rest.end(), "--");
        dashes != args.rest.end())
        args.rest.erase(dashes);
    else if (auto opt =
                 std::find_if(args.rest.begin(), args.rest.end(),
                              [](const std::string& a) { return a.starts_with("-") && a != "-"; });
             opt != args.rest.end())
        return usage_error("translate: unknown option " + *opt, "translate");
    if (args.rest.size() > 1)
        return usage_error("translate takes at most one FILE", "translate");
    std::string source = args.rest.empty() ? "-" : args.rest[0];
    std::string text;
    if (source == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
        std::ifstream in(source, std::ios::binary);
        if (!in) {
            // An unreadable input is invalid input (exit 2), like a malformed one.
            Error e = fail_errno(errno, source, "cannot open").error();
            e.code = Errc::invalid_input;
            return report(e);
        }
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto t = translate_domain(text, source == "-" ? "<stdin>" : source);
    if (!t)
        return report(t.error());
    std::cout << t->xml;
    std::cout.flush();
    return std::cout ? 0 : 1;
}

int cmd_prepare(Args args) {
    // Domain names that start with '-' come after "--"; prepare has no options.
    if (auto dashes = std::find(args.rest.begin(), args.rest.end(), "--");
        dashes != args.rest.end())
        args.rest.erase(dashes);
    else if (auto opt = std::find_if(args.rest.begin(), args.rest.end(),
                                     [](const std::string& a) { return a.starts_with("-"); });
             opt != args.rest.end())
        return usage_error("prepare: unknown option " + *opt, "prepare");
    if (args.rest.empty())
        return usage_error("prepare needs at least one DOMAIN", "prepare");
    auto conn = Connection::open(args.uri);
    if (!conn)
        return report(conn.error());
    int rc = 0;
    for (const auto& name : args.rest) {
        auto p = prepare_domain(*conn, name);
        if (!p) {
            rc = std::max(rc, report(p.error()));
            continue;
        }
        if (p->changes.empty()) {
            std::cout << p->name << ": already prepared\n";
        } else {
            std::cout << p->name << ": prepared (";
            for (size_t i = 0; i < p->changes.size(); ++i)
                std::cout << (i ? "; " : "") << p->changes[i];
            std::cout << ")\n";
        }
        if (p->needs_cold_start)
            std::cout << p->name
                      << ": the domain is running: the change takes effect at its next cold start "
                         "(shut it down and start it; a reboot inside the guest is not enough)\n";
    }
    auto dir = backing_dir_for(*conn, std::string(system_qemu_conf));
    if (!dir)
        std::cerr << "vmupdate: warning: " << dir.error().message() << '\n';
    else if (*dir) {
        if (auto w = backing_dir_warning(**dir))
            std::cerr << "vmupdate: warning: " << *w << '\n';
        if (auto w = pool_capacity_warning(*conn, **dir))
            std::cerr << "vmupdate: warning: " << *w << '\n';
    }
    return rc;
}

std::string human_us(std::int64_t us) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << static_cast<double>(us) / 1e6 << " s";
    return os.str();
}

void warn(const std::string& name, const std::vector<std::string>& warnings) {
    for (const auto& w : warnings)
        std::cerr << "vmupdate: warning: " << name << ": " << w << '\n';
}

// DOMAIN... or --all; `all` lists the domains --all means.
template <typename AllFn> Result<std::vector<std::string>> targets(const Args& args, AllFn all) {
    bool want_all = false;
    std::vector<std::string> names;
    bool options = true;
    for (const auto& a : args.rest) {
        // After "--" everything is a domain name, also one that starts with '-'.
        if (options && a == "--")
            options = false;
        else if (options && a == "--all")
            want_all = true;
        else if (options && a.starts_with("-"))
            return fail(Errc::invalid_input, args.command, "unknown option " + a);
        else
            names.push_back(a);
    }
    if (want_all == !names.empty())
        return fail(Errc::invalid_input, args.command, "needs DOMAIN... or --all (not both)");
    if (want_all)
        return all();
    return names;
}

// Takes `--parallel N` out of the arguments: how many domains are handled at
// once (default 4, 1 to 64).
Result<unsigned> take_parallel(Args& args) {
    unsigned n = 4;
    for (size_t i = 0; i < args.rest.size() && args.rest[i] != "--"; ++i) {
        if (args.rest[i] != "--parallel")
            continue;
        int v = i + 1 < args.rest.size() ? std::atoi(args.rest[i + 1].c_str()) : 0;
        if (v < 1 || v > 64)
            return fail(Errc::invalid_input, args.command,
                        "--parallel needs a number from 1 to 64");
        n = static_cast<unsigned>(v);
        args.rest.erase(args.rest.begin() + static_cast<std::ptrdiff_t>(i),
                        args.rest.begin() + static_cast<std::ptrdiff_t>(i) + 2);
        break;
    }
    return n;
}

struct Session {
    Connection conn;
    EventWatch events;
};

Result<Session> open_session(const Args& args) {
    auto conn = Connection::open(args.uri);
    if (!conn)
        return std::unexpected(conn.error());
    auto events = EventWatch::start(*conn);
    if (!events)
        return std::unexpected(events.error());
    return Session{std::move(*conn), std::move(*events)};
}

int cmd_save(Args args, const Paths& paths) {
    auto parallel = take_parallel(args);
    if (!parallel)
        return report(parallel.error());
    auto session = open_session(args);
    if (!session)
        return report(session.error());
    auto names = targets(args, [&] { return running_managed_domains(session->conn, paths); });
    if (!names)
        return report(names.error());
    int rc = 0;
    for (auto& r : save_domains(session->conn, paths, *names, session->events, *parallel)) {
        if (!r) {
            rc = std::max(rc, report(r.error()));
            continue;
        }
        warn(r->name, r->warnings);
        std::cout << r->name << ": saved: device state " << format_size(r->image_bytes) << ", RAM "
                  << format_size(r->ram_bytes) << " kept in its file (" << std::fixed
                  << std::setprecision(2) << r->seconds << " s)\n";
    }
    if (names->empty())
        std::cout << "no running domain is managed by vmupdate\n";
    return rc;
}

int cmd_restore(Args args, const Paths& paths) {
    bool verbose = false;
    for (size_t i = 0; i < args.rest.size() && args.rest[i] != "--";) {
        if (args.rest[i] == "-v" || args.rest[i] == "--verbose") {
            verbose = true;
            args.rest.erase(args.rest.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
    auto parallel = take_parallel(args);
    if (!parallel)
        return report(parallel.error());
    auto session = open_session(args);
    if (!session)
        return report(session.error());
    auto dashes = std::find(args.rest.begin(), args.rest.end(), "--");
    bool all = std::find(args.rest.begin(), dashes, "--all") != dashes;
    int rc = 0;
    // First the RAM a LUO handover brought across the kexec, if any, back into
    // the preserved files the restores below look for.
    if (auto reclaimed = reclaim_handed_over_ram(paths); !reclaimed) {
        rc = report(reclaimed.error());
    } else if (*reclaimed) {
        const auto& r = **reclaimed;
        std::cout << "RAM handed over by the previous kernel (LUO): " << r.files << " file(s), "
                  << format_size(r.bytes) << " of " << r.uuids.size()
                  << " domain(s) written back in " << std::fixed << std::setprecision(2)
                  << r.seconds << " s\n";
    }
    auto names = targets(args, [&] { return saved_domains(paths); });
    if (!names)
        return report(names.error());
    for (auto& r : restore_domains(session->conn, paths, *names, session->events, *parallel)) {
        // --all goes by the manifests: one whose domain was undefined since is
        // not a failed restore, but worth a word.
        if (!r && all && r.error().code == Errc::not_found) {
            std::cerr << "vmupdate: warning: " << r.error().object
                      << ": a save is recorded, but libvirt no longer knows the domain; its "
                         "manifest and preserved RAM are left in place\n";
            continue;
        }
        if (!r) {
            rc = std::max(rc, report(r.error()));
            continue;
        }
        warn(r->name, r->warnings);
        if (r->was_running) {
            std::cout << r->name << ": running (an interrupted save was undone)\n";
            continue;
        }
        std::cout << r->name << ": restored (" << std::fixed << std::setprecision(2) << r->seconds
                  << " s)";
        if (r->pause_us)
            std::cout << "; guest paused " << human_us(*r->pause_us)
                      << " (libvirt Suspended -> Resumed)";
        std::cout << '\n';
        if (verbose)
            for (const auto& p : r->phases)
                std::cout << "  " << std::left << std::setw(52) << p.what << std::right
                          << std::setw(10) << std::fixed << std::setprecision(1)
                          << static_cast<double>(p.us) / 1000 << " ms\n";
    }
    if (names->empty())
        std::cout << "no domain has a vmupdate save\n";
    return rc;
}

int cmd_discard(const Args& args, const Paths& paths) {
    auto names = targets(args, [] { return Result<std::vector<std::string>>{}; });
    if (!names)
        return report(names.error());
    if (names->empty())
        return usage_error("discard needs at least one DOMAIN (there is no --all)", "discard");
    auto conn = Connection::open(args.uri);
    if (!conn)
        return report(conn.error());
    int rc = 0;
    for (const auto& name : *names) {
        auto r = discard_save(*conn, paths, name);
        if (!r) {
            rc = std::max(rc, report(r.error()));
            continue;
        }
        std::cout << name << ": " << *r << '\n';
    }
    return rc;
}

int cmd_status(const Args& args, const Paths& paths) {
    bool json = false;
    for (const auto& a : args.rest) {
        if (a == "--json")
            json = true;
        else
            return usage_error("status takes only --json", "status");
    }
    auto conn = Connection::open(args.uri);
    if (!conn)
        return report(conn.error());
    auto all = domain_status(*conn, paths);
    if (!all)
        return report(all.error());
    if (json) {
        auto out = nlohmann::json::array();
        for (const auto& s : *all) {
            nlohmann::json j{{"name", s.name},
                             {"uuid", s.uuid},
                             {"running", s.running},
                             {"managed", s.managed},
                             {"shared_file_ram", s.shared_file_ram},
                             {"backing_dir", s.backing_dir},
                             {"filesystem", s.fs_type},
                             {"filesystem_kind", s.fs_kind},
                             {"ram_bytes", s.ram_bytes},
                             {"saved", s.save_state == "saved" || s.save_state == "restoring"},
                             {"save_state", s.save_state},
                             {"last_error", s.last_error},
                             {"unmanaged_why", s.unmanaged_why}};
            j["image_bytes"] =
                s.image_bytes ? nlohmann::json(*s.image_bytes) : nlohmann::json(nullptr);
            j["last_pause_us"] =
                s.last_pause_us ? nlohmann::json(*s.last_pause_us) : nlohmann::json(nullptr);
            out.push_back(std::move(j));
        }
        std::cout << out.dump(2) << '\n';
        return 0;
    }
    std::cout << std::left << std::setw(24) << "NAME" << std::setw(9) << "STATE" << std::setw(8)
              << "MANAGED" << std::setw(34) << "RAM BACKING" << std::setw(11) << "RAM"
              << std::setw(10) << "SAVED" << std::setw(11) << "IMAGE"
              << "LAST PAUSE\n";
    for (const auto& s : *all) {
        std::string backing =
            s.shared_file_ram ? s.backing_dir + " (" + s.fs_type + ")" : "anonymous";
        std::cout << std::left << std::setw(24) << s.name << std::setw(9)
                  << (s.running ? "running" : "shut off") << std::setw(8)
                  << (s.managed ? "yes" : "no") << std::setw(34) << backing << std::setw(11)
                  << format_size(s.ram_bytes) << std::setw(10)
                  << (s.save_state.empty() ? "-" : s.save_state) << std::setw(11)
                  << (s.image_bytes ? format_size(*s.image_bytes) : "-")
                  << (s.last_pause_us ? human_us(*s.last_pause_us) : "-") << '\n';
        if (s.save_state == "saving")
            std::cout << "  save interrupted: 'vmupdate restore -- " << s.name << "' "
                      << (s.running ? "undoes it (the domain still runs)"
                                    : "verifies the image and restores it")
                      << '\n';
        if (!s.last_error.empty())
            std::cout << "  last restore failed: " << s.last_error << '\n';
        if (!s.unmanaged_why.empty() && s.save_state.empty())
            std::cout << "  not preservable: " << s.unmanaged_why << '\n';
    }
    return 0;
}

int cmd_host_update(Args args, const Paths& paths) {
    if (std::find(args.rest.begin(), args.rest.end(), "--packages") != args.rest.end())
        return cli::cmd_package_update(args.uri, args.rest, paths);
    auto parallel = take_parallel(args);
    if (!parallel)
        return report(parallel.error());
    KexecPlan kexec;
    bool dry_run = false, yes = false, reuse = false, append = false;
    for (size_t i = 0; i < args.rest.size(); ++i) {
        const std::string& a = args.rest[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= args.rest.size())
                return false;
            out = args.rest[++i];
            return true;
        };
        if (a == "--kernel" && value(kexec.kernel))
            continue;
        if (a == "--initrd" && value(kexec.initrd))
            continue;
        if (a == "--append" && value(kexec.cmdline)) {
            append = true;
            continue;
        }
        if (a == "--reuse-cmdline")
            reuse = true;
        else if (a == "--dry-run")
            dry_run = true;
        else if (a == "--yes")
            yes = true;
        else
            return usage_error("host-update: unknown or incomplete argument " + a, "host-update");
    }
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
    auto session = open_session(args);
    if (!session)
        return report(session.error());
    auto plan = plan_host_update(session->conn, paths, kexec);
    if (!plan)
        return report(plan.error());
    // Unloaded again on every way out below but the update itself.
    auto kernel = load_planned_kernel(*plan);
    for (const auto& w : plan->warnings)
        std::cerr << "vmupdate: warning: " << w << '\n';
    if (!plan->offenders.empty()) {
        std::cerr << "vmupdate: host-update refused, nothing was paused:\n";
        for (const auto& o : plan->offenders)
            std::cerr << "  " << o << '\n';
        return 2;
    }
    std::cout << "plan: kexec into " << kexec.kernel
              << (kexec.initrd.empty() ? "" : " with " + kexec.initrd)
              << "\n  command line: " << kexec.cmdline << "\n  save " << plan->domains.size()
              << " domain(s), at most " << *parallel << " at once:\n";
    for (const auto& d : plan->domains)
        std::cout << "    " << d.name << ": RAM " << format_size(d.ram_bytes) << " on "
                  << d.filesystem << '\n';
    std::cout
        << "  then: vmupdate-restore.service (vmupdate restore --all) restores them at boot\n";
    if (dry_run) {
        kernel.reset();
        std::cout << "dry run: pre-flight passed, the kernel loaded and unloaded again; nothing "
                     "was paused\n";
        return 0;
    }
    if (!yes) {
        if (!isatty(STDIN_FILENO))
            return usage_error("host-update: confirm with --yes (standard input is not a terminal)",
                               "host-update");
        std::cout << "Continue? [y/N] " << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "yes") {
            std::cout << "nothing done\n";
            return 0;
        }
    }
    kernel->keep();
    auto saved = save_for_host_update(session->conn, paths, *plan, session->events, *parallel);
    if (!saved)
        return report(saved.error());
    for (const auto& r : saved->saved)
        std::cout << r.name << ": saved: device state " << format_size(r.image_bytes) << '\n';
    std::cout << "saved " << saved->saved.size() << " domain(s) in " << std::fixed
              << std::setprecision(2) << saved->seconds << " s; state synced; kexec now ("
              << (kexec_method() == KexecVia::systemd ? "systemctl kexec" : "kexec -e") << ")"
              << std::endl;
    auto ok = kexec_into_new_kernel(session->conn, paths, *saved, session->events, *parallel);
    if (!ok)
        return report(ok.error());
    std::cout << "systemd is shutting down into the new kernel; vmupdate-restore.service "
                 "restores the domains at boot"
              << std::endl;
    return 0;
}

// The hook next to this binary (relocatable installs, build trees), else the
// configured one; see hook_path.hpp.
std::string default_hook_path() {
    return cli::find_hook(
        cli::hook_candidates(cli::self_exe(), VMUPDATE_BIN_TO_HOOKDIR, VMUPDATE_HOOKDIR));
}

int cmd_hook_install(const Args& args, const Paths& paths) {
    std::string hook;
    bool dry_run = false;
    for (size_t i = 1; i < args.rest.size(); ++i) {
        const std::string& a = args.rest[i];
        if (a == "--hook" && i + 1 < args.rest.size())
            hook = args.rest[++i];
        else if (a.starts_with("--hook="))
            hook = a.substr(7);
        else if (a == "--dry-run")
            dry_run = true;
        else
            return usage_error("hook install: unknown or incomplete argument " + a, "hook install");
    }
    if (hook.empty())
        hook = default_hook_path();
    if (dry_run) {
        // What install_hook would check and link; nothing is touched.
        if (auto ok = check_hook_installable(paths, hook); !ok)
            return report(ok.error());
        std::cout << "would link " << cli::hook_link_path(paths) << " -> "
                  << std::filesystem::absolute(hook).lexically_normal().string() << '\n';
        return 0;
    }
    auto r = install_hook(paths, hook);
    if (!r)
        return report(r.error());
    std::cout << "installed " << *r << " -> " << hook
              << "\nrestart libvirtd (systemctl restart libvirtd): it only runs hooks that "
                 "existed when it started\n";
    return 0;
}

int cmd_hook(const Args& args, const Paths& paths) {
    if (args.rest.empty())
        return usage_error("hook needs install or uninstall", "hook");
    if (args.rest[0] == "install")
        return cmd_hook_install(args, paths);
    if (args.rest[0] == "uninstall") {
        if (args.rest.size() != 1)
            return usage_error("hook uninstall takes no arguments", "hook uninstall");
        auto r = uninstall_hook(paths);
        if (!r)
            return report(r.error());
        std::cout << "removed " << *r << "\nrestart libvirtd for it to stop running the hook\n";
        return 0;
    }
    return usage_error("hook needs install or uninstall", "hook");
}

// `vmupdate help [COMMAND]`.
int cmd_help(const Args& args) {
    if (args.rest.empty()) {
        std::cout << cli::overview();
        return 0;
    }
    std::string name;
    for (const auto& a : args.rest)
        name += (name.empty() ? "" : " ") + a;
    const cli::CommandHelp* command = cli::find_command(name);
    if (!command)
        return usage_error("help: unknown command '" + name + "'");
    std::cout << cli::command_help(*command);
    return 0;
}

// SIGINT (Ctrl-C), SIGTERM and SIGHUP (a dropped SSH session) would kill vmupdate
// between "guest stopped" and "save recorded". Instead, the save or restore under
// way finishes and no new one starts (vmupdate/interrupt.hpp); SIGKILL and crashes
// leave states that `vmupdate restore` completes.
extern "C" void on_interrupt(int) {
    vmupdate::request_interrupt();
    static constexpr char msg[] =
        "vmupdate: interrupted: finishing what is under way; each VM is left running or saved\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

void handle_interrupts() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        sigaction(sig, &sa, nullptr);
    // With the terminal gone, writes fail with EPIPE/EIO instead of killing us.
    signal(SIGPIPE, SIG_IGN);
}

// The global options before COMMAND, into `args`; returns the exit code when
// there is nothing more to do (--help, --version, an error).
std::optional<int> parse_global(int argc, char** argv, Args& args) {
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::cout << cli::overview();
            return 0;
        }
        if (a == "-V" || a == "--version") {
            std::cout << "vmupdate " << vmupdate::version << '\n';
            return 0;
        }
        if (a == "-c" || a == "--connect") {
            if (i + 1 >= argc)
                return usage_error(a + " needs a URI");
            args.uri = argv[++i];
            continue;
        }
        if (a.starts_with("--connect=")) {
            args.uri = a.substr(10);
            continue;
        }
        if (a.starts_with("-") && a != "-")
            return usage_error("unknown option " + a);
        break;
    }
    if (i >= argc)
        return usage_error("no command given");
    args.command = argv[i++];
    for (; i < argc; ++i)
        args.rest.emplace_back(argv[i]);
    return std::nullopt;
}

int run_command(const Args& args) {
    // `COMMAND --help` anywhere among the command's options, never after "--".
    if (const auto* help = cli::help_request(args.command, args.rest)) {
        std::cout << cli::command_help(*help);
        return 0;
    }
    if (args.command == "help")
        return cmd_help(args);
    if (args.command == "translate")
        return cmd_translate(args);
    if (args.command == "prepare")
        return cmd_prepare(args);
    if (args.command == "pool")
        return vmupdate::cli::cmd_pool(args.rest);
    Paths paths;
    handle_interrupts();
    if (args.command == "save")
        return cmd_save(args, paths);
    if (args.command == "restore")
        return cmd_restore(args, paths);
    if (args.command == "status")
        return cmd_status(args, paths);
    if (args.command == "discard")
        return cmd_discard(args, paths);
    if (args.command == "hook")
        return cmd_hook(args, paths);
    if (args.command == "host-update")
        return cmd_host_update(args, paths);
    // Internal: started by host-update on systemd hosts (DESIGN.md, "Kernel
    // update without pmem"); takes canonical UUIDs after "--".
    if (args.command == "handover-hold") {
        std::vector<std::string> uuids;
        for (const auto& a : args.rest)
            if (a != "--")
                uuids.push_back(a);
        if (uuids.empty())
            return usage_error("handover-hold needs domain UUIDs");
        if (auto ok = hold_handover(paths, uuids); !ok)
            return report(ok.error());
        return 0;
    }
    return usage_error("unknown command '" + args.command + "'");
}

} // namespace

int main(int argc, char** argv) {
    Args args;
    if (auto done = parse_global(argc, argv, args))
        return *done;
    // systemd-shutdown spares root processes whose argv[0] starts with '@' (its
    // root storage daemon rule): the holder must live into the kexec.
    if (args.command == "handover-hold" && argc > 0 && argv[0][0] != '\0')
        argv[0][0] = '@';
    return run_command(args);
}
