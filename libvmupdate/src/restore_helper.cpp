#include "vmupdate/restore_helper.hpp"

#include "clock.hpp"
#include "fd.hpp"
#include "fsutil.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view capability = "x-ignore-shared";

// libvirt 11.3 names the pidfile with the domain name XML-escaped
// (seen: "q'x" -> "q&apos;x.pid"), while the XML's other files use the raw name.
std::string xml_escaped(std::string_view name) {
    std::string out;
    for (char c : name) {
        const char* entity = c == '&'    ? "&amp;"
                             : c == '<'  ? "&lt;"
                             : c == '>'  ? "&gt;"
                             : c == '\'' ? "&apos;"
                             : c == '"'  ? "&quot;"
                                         : nullptr;
        if (entity != nullptr)
            out += entity;
        else
            out += c;
    }
    return out;
}

// The pid libvirt recorded for the domain's QEMU in <qemu_pid_dir>/<name>.pid.
// libvirt writes it (as root, in its root-only state directory) before it lets the
// process exec QEMU, so by the time QEMU listens on the monitor it names QEMU.
Result<std::int64_t> qemu_pid(const Paths& paths, const std::string& domain) {
    if (auto ok = check_domain_name(domain); !ok)
        return std::unexpected(ok.error());
    std::string path = paths.qemu_pid_dir + "/" + xml_escaped(domain) + ".pid";
    const std::string step = "cannot read the pidfile of the domain's QEMU";
    // O_NONBLOCK: a FIFO planted in its place must not block the open.
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd && errno == ENOENT && path != paths.qemu_pid_dir + "/" + domain + ".pid") {
        path = paths.qemu_pid_dir + "/" + domain + ".pid";
        fd.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    }
    if (!fd)
        return fail_errno(errno, path, step);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return fail_errno(errno, path, step);
    if (!S_ISREG(st.st_mode))
        return fail(Errc::refused, path, step, "not a regular file");
    // libvirt writes it with the helper's own identity (root); anything else was
    // not written by libvirt.
    if (st.st_uid != ::geteuid())
        return fail(Errc::refused, path, step, "owned by uid " + std::to_string(st.st_uid));
    char buf[32];
    auto got = read_full(fd.get(), buf, sizeof buf, path, step);
    if (!got)
        return std::unexpected(got.error());
    std::string_view text(buf, *got);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.remove_suffix(1);
    std::int64_t pid = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || pid <= 0)
        return fail(Errc::invalid_input, path, step, "not a process id");
    return pid;
}

bool finished(const std::string& s) {
    return s == "completed" || s == "failed" || s == "cancelled";
}

// What the wait for the incoming migration found.
struct MigrationOutcome {
    std::string status = "none";
    std::string error; // QEMU's error-desc of a failed migration
    std::int64_t setup_at = 0;
    std::int64_t loaded_at = 0;
};

// Waits for libvirt's incoming migration to finish loading the device state.
//
// Blocking on MIGRATION events (libvirt turns the "events" capability on before
// migrate-incoming) rather than polling keeps this monitor quiet while libvirt
// probes the new QEMU: every QMP command here would be one more the QEMU main loop
// serves in the middle of the guest's pause. A slow query-migrate covers a libvirt
// that runs without events. An event only says where to look: a terminal status
// counts once query-migrate confirms it, as events cost a hostile QEMU nothing.
Result<MigrationOutcome> wait_for_migration(QmpClient& qmp, const RestoreHelperOptions& options,
                                            std::int64_t connected_at,
                                            std::vector<std::string>& log) {
    MigrationOutcome out;
    // QEMU's timestamps come from the peer: one outside the helper's own lifetime
    // is replaced by the helper's clock.
    auto plausible = [&](std::int64_t at) {
        std::int64_t now = now_us();
        return at >= connected_at - 1000000 && at <= now ? at : now;
    };
    auto query = [&]() -> Result<std::string> {
        auto r = qmp.execute("query-migrate", {}, options.command_timeout);
        if (!r)
            return std::unexpected(r.error());
        auto s = migration_status(*r);
        if (!s)
            return std::unexpected(s.error());
        if (*s == "failed")
            if (auto desc = migration_error(*r); desc)
                out.error = *desc;
        return *s;
    };
    auto deadline = Clock::now() + options.migration_timeout;
    while (Clock::now() < deadline) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        auto event = qmp.wait_event("MIGRATION", std::min(options.poll_interval, left));
        if (event) {
            auto s = migration_status(event->data);
            if (!s)
                return std::unexpected(s.error());
            if (*s == "setup" && out.setup_at == 0)
                out.setup_at = plausible(event->at_us);
            if (!finished(*s))
                continue;
            auto confirmed = query();
            if (!confirmed)
                return std::unexpected(confirmed.error());
            if (*confirmed != *s) {
                log.push_back("MIGRATION event says " + *s + ", query-migrate says " + *confirmed +
                              ": event ignored");
                out.status = *confirmed;
                if (finished(out.status)) {
                    out.loaded_at = now_us();
                    return out;
                }
                continue;
            }
            out.status = *confirmed;
            out.loaded_at = plausible(event->at_us);
            return out;
        }
        if (event.error().code != Errc::timeout)
            return std::unexpected(event.error());
        auto s = query();
        if (!s)
            return std::unexpected(s.error());
        out.status = *s;
        if (finished(out.status)) {
            out.loaded_at = now_us();
            return out;
        }
    }
    return out; // not finished: the caller reports the status it got to
}

// Records a failure in the manifest while it still belongs to this attempt (a
// later restore has its own helper), and returns it.
std::unexpected<Error> record_failure(const StateDir& state, const RestoreHelperArgs& args,
                                      const Error& e, std::vector<std::string>& log) {
    auto ok = state.update(args.uuid, [&](Manifest& m) {
        if (m.attempt != args.attempt)
            return false;
        m.last_error = "restore helper: " + e.message();
        return true;
    });
    if (!ok)
        log.push_back("cannot record the failure: " + ok.error().message());
    return std::unexpected(e);
}

// Whether `fd` listens on `socket`: the hook passes it so, and only then does
// accepting on it mean talking to a QEMU of this attempt.
Result<void> check_listener(int fd, const std::string& socket) {
    const std::string step = "restore helper: no listening monitor socket";
    int listening = 0;
    socklen_t len = sizeof listening;
    sockaddr_un addr{};
    socklen_t alen = sizeof addr;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0)
        return fail(Errc::invalid_input, socket, step,
                    "descriptor " + std::to_string(fd) + ": " + std::strerror(errno));
    std::string bound(addr.sun_path, ::strnlen(addr.sun_path, sizeof addr.sun_path));
    if (addr.sun_family != AF_UNIX || listening == 0 || bound != socket)
        return fail(Errc::invalid_input, socket, step,
                    "descriptor " + std::to_string(fd) + " is not it, listening");
    return {};
}

// The attempt is one of this domain's and the socket is where the hook put it:
// a helper pointed at another domain's socket would drive that domain's QEMU,
// and the cleanup at the end would remove that domain's attempt.
Result<void> check_socket_and_domain(const Paths& paths, const RestoreHelperArgs& args) {
    if (!is_attempt_of(args.attempt, args.uuid))
        return fail(Errc::invalid_input, args.attempt, "restore helper",
                    "not a restore attempt of domain " + args.uuid + " (" +
                        apparmor_profile_name(args.uuid) + ".<16 hex digits>)");
    if (args.socket != paths.run_dir + "/qmp/" + args.attempt + "/qmp.sock")
        return std::unexpected(Error{Errc::invalid_input, args.socket, "restore helper",
                                     "not the socket of attempt " + args.attempt});
    if (auto ok = check_listener(args.listen_fd, args.socket); !ok)
        return ok;
    return check_domain_name(args.domain);
}

#ifdef VMUPDATE_TEST_POINTS
// Fault injection for the integration test of a helper that never connects
// (the directory is root's own, under the root-only run directory). Test
// builds only: nothing on a production host can switch the helper off.
Result<void> injected_fault(const Paths& paths, const RestoreHelperArgs& args,
                            std::vector<std::string>& log) {
    if (struct stat st{};
        ::lstat((paths.run_dir + "/faults/helper-never-connects").c_str(), &st) == 0) {
        log.push_back("fault injected: not accepting QEMU on " + args.socket);
        return fail(Errc::verify, args.uuid, "restore helper", "fault injected: never connected");
    }
    return {};
}
#endif

// Accepts the domain's QEMU on the attempt's socket. Anyone running as the QEMU
// user may connect too (another domain's QEMU that read this one's command
// line): a peer whose pid is not the one in libvirt's pidfile is hung up on
// before anything is read or sent, and the wait goes on until the deadline.
Result<QmpClient> accept_qemu(const Paths& paths, const RestoreHelperArgs& args,
                              const RestoreHelperOptions& options, std::vector<std::string>& log) {
    QmpOptions qmp_options;
    qmp_options.limits = options.limits;
    qmp_options.check_peer = [&](const QmpPeer& peer) -> Result<void> {
        log.push_back("peer pid " + std::to_string(peer.pid) + ", uid " + std::to_string(peer.uid));
        auto pid = qemu_pid(paths, args.domain);
        if (!pid)
            return std::unexpected(pid.error());
        if (peer.pid != *pid)
            return fail(Errc::refused, args.socket, "refused the QMP peer",
                        "pid " + std::to_string(peer.pid) + " is not the domain's QEMU (pid " +
                            std::to_string(*pid) + ")");
        return {};
    };
    auto deadline = Clock::now() + options.connect_timeout;
    std::optional<Error> refused;
    for (;;) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            break;
        pollfd p{args.listen_fd, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
        if (n < 0 && errno != EINTR)
            return fail_errno(errno, args.socket, "restore helper: cannot wait for QEMU");
        if (n <= 0)
            continue;
        int fd = ::accept4(args.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            return fail_errno(errno, args.socket, "restore helper: cannot accept QEMU");
        }
        auto qmp = QmpClient::adopt(fd, args.socket, left, qmp_options);
        if (qmp || qmp.error().code != Errc::refused)
            return qmp;
        log.push_back(qmp.error().message());
        refused = qmp.error();
    }
    if (refused)
        return std::unexpected(*refused);
    return fail(Errc::timeout, args.socket, "restore helper: QEMU did not connect",
                "nothing after " + std::to_string(options.connect_timeout.count()) + " ms");
}

// Checks that QEMU reports x-ignore-shared off after it was switched off.
Result<void> check_capability_off(QmpClient& qmp, const RestoreHelperOptions& options,
                                  const std::string& uuid) {
    auto caps = qmp.execute("query-migrate-capabilities", {}, options.command_timeout);
    if (!caps)
        return std::unexpected(caps.error());
    auto on = capability_state(*caps, capability);
    if (!on || *on)
        return std::unexpected(Error{Errc::verify, uuid, "cannot switch x-ignore-shared off",
                                     on ? "still on" : on.error().message()});
    return {};
}

// Whether the incoming migration loaded the state; the error says why not.
Result<void> check_completed(const MigrationOutcome& outcome, const RestoreHelperOptions& options,
                             const std::string& uuid) {
    if (outcome.status == "completed")
        return {};
    std::string cause =
        !finished(outcome.status)
            ? "not finished after " + std::to_string(options.migration_timeout.count()) + " ms"
        : outcome.error.empty() ? "QEMU did not load the state"
                                : outcome.error;
    return std::unexpected(
        Error{Errc::verify, uuid, "incoming migration " + outcome.status, cause});
}

// Records the restore and its timeline in the manifest (while it belongs to
// this attempt) and removes the attempt's directory.
Result<void> record_restored(const Paths& paths, const StateDir& state,
                             const RestoreHelperArgs& args, std::int64_t connected_at,
                             const MigrationOutcome& outcome, std::vector<std::string>& log) {
    bool recorded = false;
    auto ok = state.update(args.uuid, [&](Manifest& m) {
        if (m.attempt != args.attempt)
            return false;
        m.state = SaveState::restored;
        m.last_error.clear();
        m.timeline.push_back({"helper-connected", connected_at});
        if (outcome.setup_at > 0)
            m.timeline.push_back({"migration-setup", outcome.setup_at});
        m.timeline.push_back({"loaded", outcome.loaded_at});
        recorded = true;
        return true;
    });
    if (!ok)
        return std::unexpected(ok.error());
    if (!recorded)
        log.push_back("manifest no longer belongs to attempt " + args.attempt + ": not recorded");
    if (auto removed = remove_attempt_dir(paths, args.attempt); !removed)
        log.push_back(removed.error().message());
    return {};
}

} // namespace

Result<RestoreHelperArgs> parse_restore_helper_args(const std::vector<std::string>& argv) {
    const std::string step = "bad restore helper arguments";
    if (argv.size() != 4)
        return fail(Errc::invalid_input, restore_helper_name, step,
                    "usage: vmupdate-restore-helper UUID ATTEMPT SOCKET DOMAIN (run by the hook)");
    RestoreHelperArgs args{argv[0], argv[1], argv[2], argv[3]};
    if (!is_canonical_uuid(args.uuid))
        return fail(Errc::invalid_input, args.uuid, step, "not a canonical UUID");
    if (!is_attempt_of(args.attempt, args.uuid))
        return fail(Errc::invalid_input, args.attempt, step,
                    "not a restore attempt of domain " + args.uuid);
    if (auto ok = check_domain_name(args.domain); !ok)
        return std::unexpected(ok.error());
    return args;
}

Result<void> run_restore_helper(const Paths& paths, const RestoreHelperArgs& args,
                                std::vector<std::string>& log,
                                const RestoreHelperOptions& options) {
    if (!is_canonical_uuid(args.uuid))
        return fail(Errc::invalid_input, args.uuid, "restore helper", "not a canonical UUID");
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto failed = [&](const Error& e) {
        return record_failure(*state, args, e, log);
    };
    if (auto ok = check_socket_and_domain(paths, args); !ok)
        return failed(ok.error());
#ifdef VMUPDATE_TEST_POINTS
    if (auto ok = injected_fault(paths, args, log); !ok)
        return ok;
#endif
    auto qmp = accept_qemu(paths, args, options, log);
    if (!qmp)
        return failed(qmp.error());
    std::int64_t connected_at = now_us();
    log.push_back("QEMU connected on " + args.socket);
    test_point("restore-helper-connected");
    if (auto r = qmp->execute("migrate-set-capabilities", capability_arguments(capability, true),
                              options.command_timeout);
        !r)
        return failed(r.error());
    log.push_back("x-ignore-shared on");

    auto outcome = wait_for_migration(*qmp, options, connected_at, log);
    if (outcome)
        log.push_back("incoming migration " + outcome->status);
    // A running VM must never keep the capability: a later migration to another
    // host would skip its RAM. Switched off whatever the wait found, as long as
    // the connection can still be used.
    auto off = qmp->execute("migrate-set-capabilities", capability_arguments(capability, false),
                            options.command_timeout);
    if (!outcome)
        return failed(outcome.error());
    if (!off)
        return failed(off.error());
    if (auto ok = check_capability_off(*qmp, options, args.uuid); !ok)
        return failed(ok.error());
    log.push_back("x-ignore-shared off");
    if (auto ok = check_completed(*outcome, options, args.uuid); !ok)
        return failed(ok.error());
    return record_restored(paths, *state, args, connected_at, *outcome, log);
}

} // namespace vmupdate
