#include "vmupdate/hook.hpp"

#include "clock.hpp"
#include "fd.hpp"
#include "fsutil.hpp"
#include "process_mark.hpp"
#include "save_image.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool_usage.hpp"
#include "vmupdate/qmp.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <optional>
#include <pwd.h>
#include <sstream>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;

struct Context {
    const Paths& paths;
    const HookCall& call;
    HookOutcome out;

    void log(std::string line) {
        out.log.push_back(call.domain + ": " + call.op + " " + call.subop + ": " + std::move(line));
    }
    void refuse(const Error& e) {
        out.exit_code = 1;
        out.error = "vmupdate: " + e.message();
        log("refused: " + e.message());
    }
};

// getrandom(2) rather than std::random_device, which reports failure by throwing.
// The id only has to be unique per restore attempt.
Result<std::string> random_hex(size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    size_t got = 0;
    while (got < bytes) {
        ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(errno, "getrandom", "cannot make a restore attempt id");
        }
        got += static_cast<size_t>(n);
    }
    std::string out;
    static constexpr char digits[] = "0123456789abcdef";
    for (unsigned char b : raw) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

Result<std::string> backing_dir(const Paths& paths) {
    return memory_backing_dir(paths.qemu_conf);
}

bool file_exists(const std::string& p) {
    struct stat st {};
    return lstat(p.c_str(), &st) == 0;
}

// Writes an errno into the spawn pipe; only async-signal-safe calls, as it runs
// in a forked child.
void report_errno(int fd, int err) {
    while (write(fd, &err, sizeof err) < 0 && errno == EINTR) {
    }
}

// Starts the restore helper fully detached: libvirt reads the hook's stdout until
// EOF and waits for the hook to exit, so the helper must hold neither. A failed
// fork or exec comes back as an error: a close-on-exec pipe carries the errno of
// either child and reaches EOF without data only when execv succeeded.
Result<void> spawn_helper(const std::string& helper, const std::vector<std::string>& args) {
    const std::string step = "cannot start the restore helper";
    // Built before fork: the children may only make async-signal-safe calls.
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(helper.c_str()));
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return fail_errno(errno, helper, step);
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    pid_t child = fork();
    if (child < 0)
        return fail_errno(errno, helper, step);
    if (child == 0) {
        setsid();
        pid_t grandchild = fork();
        if (grandchild < 0) {
            report_errno(fds[1], errno);
            _exit(1);
        }
        if (grandchild != 0)
            _exit(0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0) {
            report_errno(fds[1], errno);
            _exit(127);
        }
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        // Everything else libvirt left open closes at exec, the pipe included.
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
            for (int fd = 3; fd < 1024; ++fd)
                if (fd != fds[1])
                    close(fd);
        execv(helper.c_str(), argv.data());
        report_errno(fds[1], errno);
        _exit(127);
    }
    write_end.reset();
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    int err = 0;
    ssize_t n;
    do
        n = read(read_end.get(), &err, sizeof err);
    while (n < 0 && errno == EINTR);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return n == static_cast<ssize_t>(sizeof err)
                   ? fail_errno(err, helper, step)
                   : fail(Errc::system, helper, step, "the intermediate process failed");
    if (n == static_cast<ssize_t>(sizeof err))
        return fail_errno(err, helper, step);
    if (n != 0)
        return fail(Errc::system, helper, step, "cannot read the helper's start report");
    return {};
}

void strip_monitor(Context& c) {
    auto stripped = strip_private_monitor(c.call.xml);
    if (!stripped) {
        c.log("cannot read the domain XML: " + stripped.error().message());
        return;
    }
    if (*stripped) {
        c.out.output = **stripped;
        c.log("removed the private QMP monitor of an earlier restore");
    }
}

// The RAM directory libvirt made for the running domain; its name depends on
// libvirtd's locale, which vmupdate cannot see (see find_domain_ram_dir).
Result<std::string> ram_dir_of(const Paths& paths, const DomainInfo& info) {
    auto backing = backing_dir(paths);
    if (!backing)
        return std::unexpected(backing.error());
    return find_domain_ram_dir(*backing, info.id, info.name);
}

// started: hold a link to every RAM file from now on, so that no stop can free it.
void on_started(Context& c, const DomainInfo& info, const StateDir& state) {
    auto manifest = state.load(info.uuid);
    if (manifest && *manifest &&
        ((*manifest)->state == SaveState::saving || (*manifest)->state == SaveState::saved)) {
        c.log("a save is recorded: preserved RAM left as it is");
        return;
    }
    auto backing = backing_dir(c.paths);
    if (!backing) {
        c.log(backing.error().message());
        return;
    }
    auto pres = preserved_dir(*backing, info.uuid);
    auto ram_dir = ram_dir_of(c.paths, info);
    if (!pres || !ram_dir) {
        c.log("RAM not preserved: " + (pres ? ram_dir.error() : pres.error()).message());
        return;
    }
    auto held = preserve_ram(*ram_dir, *pres, info.ram_files);
    if (!held) {
        c.log("RAM not preserved: " + held.error().message());
        return;
    }
    for (const auto& f : *held)
        c.log("holding " + f.name + " (" + std::to_string(f.size) + " bytes, inode " +
              std::to_string(f.inode) + ") as " + f.preserved);
}

// restore begin: only for an image vmupdate saved (its checksum is in the manifest,
// or, for a save interrupted before vmupdate recorded it, libvirt's magic says the
// image is complete and QEMU's stream says it was written with x-ignore-shared).
//
// This hook must never fail: when a restore hook exits non-zero, libvirt 11.3
// deletes the managed-save image and reports the start as successful, which
// loses the VM. A restore that must not go ahead is refused at `start begin`
// instead, where a failure keeps the image.
void on_restore(Context& c, const DomainInfo& info, const StateDir& state,
                const std::string& helper) {
    auto loaded = state.load(info.uuid);
    if (!loaded || !*loaded || (*loaded)->state == SaveState::restored) {
        strip_monitor(c);
        c.log("no vmupdate save recorded: stock restore");
        return;
    }
    Manifest m = **loaded;
    auto image = check_image_for_restore(m);
    if (!image) {
        strip_monitor(c);
        c.log("the managed-save image is not the one vmupdate saved (" + image.error().message() +
              "): stock restore");
        return;
    }
    if (!image->unverified.empty())
        c.log("interrupted save: " + image->unverified);
    // Without the private monitor QEMU would refuse the stream anyway
    // (capability mismatch); the refusal at start begin says why.
    auto refuse_at_start = [&](const Error& e) {
        strip_monitor(c);
        auto ok = state.update(info.uuid, [&](Manifest& cur) {
            cur.state = SaveState::restoring;
            cur.attempt.clear();
            cur.last_error = "cannot restore: " + e.message();
            return true;
        });
        if (!ok)
            c.log("cannot record the refusal: " + ok.error().message());
        c.log("restore will be refused at start: " + e.message());
    };
    if (auto ok = verify_preserved(info.name, m.ram); !ok) {
        refuse_at_start(ok.error());
        return;
    }
    auto user = qemu_user(c.paths.qemu_conf);
    if (!user) {
        refuse_at_start(user.error());
        return;
    }
    auto attempt = random_hex(8);
    if (!attempt) {
        refuse_at_start(attempt.error());
        return;
    }
    std::string qmp_root = c.paths.run_dir + "/qmp";
    std::string dir = qmp_root + "/" + *attempt;
    for (auto [path, mode, owner] :
         {std::tuple{c.paths.run_dir, 0711u, std::optional<Owner>{}},
          std::tuple{qmp_root, 0711u, std::optional<Owner>{}},
          std::tuple{dir, 0700u, std::optional<Owner>{Owner{user->uid, user->gid}}}}) {
        if (auto ok = make_dir(path, static_cast<mode_t>(mode), owner); !ok) {
            refuse_at_start(ok.error());
            return;
        }
    }
    std::string socket = dir + "/qmp.sock";
    auto xml = add_private_monitor(c.call.xml, socket);
    if (!xml) {
        refuse_at_start(xml.error());
        return;
    }
    auto stored = state.update(info.uuid, [&](Manifest& cur) {
        cur.state = SaveState::restoring;
        cur.attempt = *attempt;
        // An interrupted save gets what it lacked, so that retries compare against it.
        if (cur.image_sha256.empty()) {
            cur.image_size = image->size;
            cur.image_sha256 = image->sha256;
        }
        cur.timeline.push_back({"restore-begin", now_us()});
        cur.last_error.clear();
        return true;
    });
    if (!stored || !*stored) {
        refuse_at_start(
            stored ? Error{Errc::verify, info.name, "cannot restore", "its manifest disappeared"}
                   : stored.error());
        return;
    }
    if (auto ok = spawn_helper(helper, {info.uuid, *attempt, socket, info.name}); !ok) {
        refuse_at_start(ok.error());
        return;
    }
    c.out.output = std::move(*xml);
    c.log("restoring a vmupdate save: attempt " + *attempt + ", helper on " + socket);
}

// A cold start on a pmem pool: refuse a domain whose RAM does not fit, with the
// pool and the sizes, rather than let QEMU die of SIGBUS when the pool fills.
void check_fits(Context& c, const DomainInfo& info) {
    auto backing = backing_dir(c.paths);
    if (!backing)
        return;
    auto usage = pool_usage(*backing);
    if (!usage || usage->kind != FsKind::dax)
        return;
    if (auto msg = would_not_fit(usage->free, info.memory_kib * 1024, usage->mount_point))
        c.refuse(Error{Errc::refused, info.name, "cannot start on the pmem pool", *msg});
}

// start begin: put the preserved RAM where the restoring QEMU will open it.
void on_start(Context& c, const DomainInfo& info, const StateDir& state) {
    auto loaded = state.load(info.uuid);
    bool restoring = loaded && *loaded && (*loaded)->state == SaveState::restoring;
    if (!restoring) {
        // A VM started now would die with the kexec that follows the saves.
        if (auto who = live_process_mark(host_update_mark(c.paths))) {
            c.refuse(Error{Errc::refused, info.name, "cannot start now",
                           "vmupdate host-update (pid " + std::to_string(who->pid) +
                               ") is saving every VM for a kexec; start it after the update"});
            return;
        }
        // libvirt starts a domain that has a managed-save image through `restore
        // begin`; a plain start of a saved domain means its image is gone:
        // `virsh start --force-boot` deletes it, and so does libvirt 11.3 when it
        // cannot read it (a truncated image), reporting success. Booting afresh
        // would lose a guest whose image could still be put back: refuse until
        // the operator drops the save. An interrupted save never had a complete
        // image: nothing to restore, so it is dropped and the boot goes ahead.
        if (loaded && *loaded && !file_exists((*loaded)->image)) {
            if ((*loaded)->state == SaveState::saved) {
                c.refuse(Error{Errc::refused, info.name, "cannot boot afresh",
                               "a vmupdate save is recorded but its managed-save image " +
                                   (*loaded)->image +
                                   " is gone: put it back and run 'vmupdate restore', or drop "
                                   "the save with 'vmupdate discard " +
                                   info.name + "'; the preserved RAM is kept"});
                return;
            }
            if ((*loaded)->state == SaveState::saving) {
                if (auto ok = drop_save(c.paths, state, info.uuid); !ok)
                    c.log("cannot drop the interrupted save: " + ok.error().message());
                else
                    c.log("cold start after a save that never wrote its image: the save and its "
                          "preserved RAM are dropped");
            }
        }
        // A restore reuses preserved RAM, already counted; a cold start needs room.
        check_fits(c, info);
        return;
    }
    Manifest m = **loaded;
    if (m.attempt.empty()) {
        c.refuse(Error{Errc::verify, info.name, m.last_error,
                       "the managed-save image and the RAM are kept"});
        return;
    }
    auto ram_dir = ram_dir_of(c.paths, info);
    auto linked = ram_dir ? reinstate_ram(info.name, m.ram, *ram_dir)
                          : Result<void>(std::unexpected(ram_dir.error()));
    if (!linked) {
        (void)state.update(info.uuid, [&](Manifest& cur) {
            if (cur.attempt != m.attempt)
                return false;
            cur.last_error = "cannot restore: " + linked.error().message();
            return true;
        });
        c.refuse(linked.error());
        return;
    }
    c.log("linked " + std::to_string(m.ram.size()) + " preserved RAM file(s) into " + *ram_dir);
}

// release end: the last word on a stop. Drop the RAM only when nothing can need it.
void on_release(Context& c, const DomainInfo& info, const StateDir& state) {
    std::string attempt;
    std::string outcome;
    auto updated = state.update(info.uuid, [&](Manifest& m) {
        switch (m.state) {
        case SaveState::saving:
        case SaveState::saved:
            outcome = "save recorded: RAM kept";
            return false;
        case SaveState::restored:
            // libvirt deletes the image once a restore succeeds: one still there
            // means this restore failed after QEMU loaded the state.
            if (!file_exists(m.image))
                return false;
            [[fallthrough]];
        case SaveState::restoring:
            attempt = m.attempt;
            m.state = SaveState::saved;
            if (m.last_error.empty())
                m.last_error =
                    "restore attempt " + m.attempt + " failed (libvirt stopped the domain" +
                    (c.call.extra.empty() || c.call.extra == "-" ? "" : ": " + c.call.extra) + ")";
            m.attempt.clear();
            outcome = "restore failed: RAM and image kept; " + m.last_error;
            return true;
        }
        return false;
    });
    if (!updated) {
        c.log("cannot read the manifest, RAM kept: " + updated.error().message());
        return;
    }
    // A refused restore has no attempt: "qmp/" alone would be every domain's
    // restore sockets.
    if (!attempt.empty() && attempt != "." && attempt != ".." &&
        attempt.find('/') == std::string::npos) {
        if (auto ok = remove_attempt_dir(c.paths, attempt); !ok)
            c.log(ok.error().message());
    }
    if (!outcome.empty()) {
        c.log(outcome);
        return;
    }
    // No vmupdate save (none recorded, or the restore finished): a stock managed
    // save holds the whole RAM in its image, so the preserved RAM is not needed
    // either way, and holding it would keep two copies on the pool.
    if (auto ok = drop_save(c.paths, state, info.uuid); !ok) {
        c.log(ok.error().message());
        return;
    }
    c.log(file_exists(managed_save_image(c.paths, info.name))
              ? "stock managed save (the image holds the RAM): preserved RAM dropped"
              : "domain stopped for good: preserved RAM dropped");
}

} // namespace

void append_hook_log(const Paths& paths, std::string_view program,
                     const std::vector<std::string>& lines) noexcept {
    if (lines.empty())
        return;
    try {
        std::string dir = parent_dir(paths.log_file);
        ::mkdir(dir.c_str(), 0700);
        std::ofstream out(paths.log_file, std::ios::app);
        std::time_t now = std::time(nullptr);
        std::tm local{};
        char stamp[32] = "";
        if (localtime_r(&now, &local) != nullptr)
            std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &local);
        for (const auto& l : lines)
            out << stamp << ' ' << program << '[' << ::getpid() << "]: " << l << '\n';
    } catch (...) {
        // Out of memory while logging: the call itself matters more than its log.
    }
}

Result<void> drop_save(const Paths& paths, const StateDir& state, std::string_view uuid) {
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());
    auto pres = preserved_dir(*backing, uuid);
    if (!pres)
        return std::unexpected(pres.error());
    auto dropped = drop_preserved(*pres);
    // The save is over whether or not its links could go: a manifest kept because
    // the QEMU user blocked their removal (a directory of its own planted in
    // vmupdate's place) would stand for a save that no longer exists, and every
    // later restore of the running domain would compare its RAM with it. Links
    // left behind are replaced at the domain's next start.
    if (auto ok = state.remove(uuid); !ok)
        return ok;
    if (!dropped) {
        dropped.error().cause += "; the save's manifest is removed, the links stay until the "
                                 "domain's next start replaces them";
        return dropped;
    }
    return {};
}

std::string hook_daemon_mark(const Paths& paths) {
    return paths.run_dir + "/hook-daemon";
}

std::string host_update_mark(const Paths& paths) {
    return paths.run_dir + "/host-update";
}

Result<void> check_hook_runs(const Paths& paths) {
    const std::string how = "run 'vmupdate hook install', then restart libvirtd (or virtqemud); "
                            "running VMs keep running";
    bool installed = false;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(paths.hooks_dir, ec)) {
        std::string target = std::filesystem::read_symlink(e.path(), ec).filename().string();
        if (target == "vmupdate-hook" && access(e.path().c_str(), X_OK) == 0)
            installed = true;
    }
    if (!installed)
        return fail(Errc::refused, paths.hooks_dir, "vmupdate's hook is not installed",
                    "a save could not be restored; " + how);
    if (!live_process_mark(hook_daemon_mark(paths)))
        return fail(Errc::refused, "libvirtd",
                    "the running libvirt daemon does not run vmupdate's hook",
                    "it was installed after the daemon started, or the daemon has not run it "
                    "yet; a save could not be restored; " +
                        how);
    return {};
}

Result<void> remove_attempt_dir(const Paths& paths, std::string_view attempt) {
    std::string qmp_root = paths.run_dir + "/qmp";
    if (attempt.empty() || attempt == "." || attempt == ".." ||
        attempt.find('/') != std::string_view::npos)
        return fail(Errc::invalid_input, std::string(attempt), "not a restore attempt id");
    // qmp/ is root's (0711): only the attempt directory itself is the QEMU user's,
    // so everything in it is removed relative to a descriptor of it.
    Fd root(::open(qmp_root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root)
        return errno == ENOENT ? Result<void>{} : fail_errno(errno, qmp_root, "cannot open");
    std::string name(attempt);
    int raw = ::openat(root.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0)
        return errno == ENOENT ? Result<void>{}
                               : fail_errno(errno, qmp_root + "/" + name, "cannot open");
    Fd dir(raw);
    // Only files (the socket) belong there: a directory planted by the QEMU user
    // is left, and the removal of the attempt directory then fails on it.
    auto entries = list_dir(dir.get(), qmp_root + "/" + name);
    if (!entries)
        return std::unexpected(entries.error());
    for (const auto& e : *entries)
        if (::unlinkat(dir.get(), e.c_str(), 0) != 0 && errno != ENOENT && errno != EISDIR)
            return fail_errno(errno, qmp_root + "/" + name + "/" + e, "cannot remove");
    if (::unlinkat(root.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return fail_errno(errno, qmp_root + "/" + name, "cannot remove");
    return {};
}

Result<QemuUser> qemu_user(const std::string& qemu_conf) {
    std::string text;
    if (auto t = read_file(qemu_conf, 1 << 20))
        text = *t;
    auto conf_user = conf_string(text, "user");
    auto conf_group = conf_string(text, "group");
    std::string u = conf_user && !conf_user->empty() ? *conf_user : "libvirt-qemu";
    std::string g = conf_group && !conf_group->empty() ? *conf_group : "libvirt-qemu";
    // "+N" names a numeric id, as in libvirt's qemu.conf.
    auto numeric = [](const std::string& s) -> std::optional<unsigned> {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), v);
        if (s.size() < 2 || ec != std::errc{} || p != s.data() + s.size())
            return std::nullopt;
        return v;
    };
    QemuUser out{};
    if (u.starts_with("+")) {
        auto v = numeric(u);
        if (!v)
            return fail(Errc::invalid_input, u, "cannot read the QEMU user", "not a number");
        out.uid = *v;
    } else {
        passwd* pw = getpwnam(u.c_str());
        if (pw == nullptr)
            return fail(Errc::not_found, u, "cannot find the QEMU user", "no such user");
        out.uid = pw->pw_uid;
    }
    if (g.starts_with("+")) {
        auto v = numeric(g);
        if (!v)
            return fail(Errc::invalid_input, g, "cannot read the QEMU group", "not a number");
        out.gid = *v;
    } else {
        struct group* gr = getgrnam(g.c_str());
        if (gr == nullptr)
            return fail(Errc::not_found, g, "cannot find the QEMU group", "no such group");
        out.gid = gr->gr_gid;
    }
    return out;
}

HookOutcome run_hook(const Paths& paths, const HookCall& call, const std::string& helper) {
    Context c{paths, call, {}};
    // The private monitor of a vmupdate restore cannot work on the destination
    // host; it goes whether the domain is still vmupdate's or not (Nova rewrites
    // the definition of the domains it migrates). Only vmupdate's own arguments go.
    // XML it cannot read is not vmupdate's business: no log line.
    if (call.op == "migrate" && call.subop == "begin") {
        if (inspect_domain(call.xml, call.domain))
            strip_monitor(c);
        return c.out;
    }
    // A broken settings file must not widen what the hook touches: marked only.
    auto config = load_config(paths.config_file);
    auto info =
        inspect_domain(call.xml, call.domain, config ? config->manage : ManagePolicy::marked);
    // Whatever libvirt sends that vmupdate cannot read is not vmupdate's business.
    if (!info)
        return c.out;
    // A domain vmupdate saved stays vmupdate's until its save is done with, even if
    // the policy changed or a management layer rewrote its definition meanwhile:
    // the restore would otherwise run without the hook and libvirt delete the image.
    if (!info->managed &&
        !(info->shared_file_ram && StateDir::has_manifest(paths.state_dir, info->uuid)))
        return c.out;
    if (!config)
        c.log("settings ignored: " + config.error().message());
    if (!is_canonical_uuid(info->uuid)) {
        c.log("domain has no canonical UUID: ignored");
        return c.out;
    }
    // Tells `vmupdate save` that the libvirt daemon running now runs this hook.
    if (auto daemon = process_id(getppid()); daemon && make_dir(paths.run_dir, 0711))
        (void)write_process_mark(hook_daemon_mark(paths), *daemon);
    test_point_file(paths.run_dir, "hook-" + call.op + "-" + call.subop);
    auto state = StateDir::open(paths.state_dir);
    if (!state) {
        // Failing a start or restore here would only make things worse.
        c.log("state directory unusable: " + state.error().message());
        return c.out;
    }
    if (call.op == "started" && call.subop == "begin")
        on_started(c, *info, *state);
    else if (call.op == "restore" && call.subop == "begin")
        on_restore(c, *info, *state, helper);
    else if (call.op == "start" && call.subop == "begin")
        on_start(c, *info, *state);
    else if (call.op == "release" && call.subop == "end")
        on_release(c, *info, *state);
    return c.out;
}

} // namespace vmupdate
