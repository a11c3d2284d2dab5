#include "vmupdate/hook.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool.hpp"
#include "vmupdate/qmp.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>
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

std::int64_t now_us() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

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
    if (!pres) {
        c.log(pres.error().message());
        return;
    }
    auto held = preserve_ram(domain_ram_dir(*backing, info.id, info.name), *pres);
    if (!held) {
        c.log("RAM not preserved: " + held.error().message());
        return;
    }
    for (const auto& f : *held)
        c.log("holding " + f.name + " (" + std::to_string(f.size) + " bytes, inode " +
              std::to_string(f.inode) + ") as " + f.preserved);
}

// restore begin: only for an image vmupdate saved (its checksum is in the manifest).
//
// This hook must never fail: when a restore hook exits non-zero, libvirt 11.3
// deletes the managed-save image and reports the start as successful, which
// loses the VM. A restore that must not go ahead is refused at `start begin`
// instead, where a failure keeps the image.
void on_restore(Context& c, const DomainInfo& info, const StateDir& state,
                const std::string& helper) {
    auto loaded = state.load(info.uuid);
    if (!loaded || !*loaded ||
        ((*loaded)->state != SaveState::saved && (*loaded)->state != SaveState::restoring)) {
        strip_monitor(c);
        c.log("no vmupdate save recorded: stock restore");
        return;
    }
    Manifest m = **loaded;
    auto sum = sha256_file(m.image);
    if (!sum || *sum != m.image_sha256) {
        strip_monitor(c);
        c.log("the managed-save image is not the one vmupdate saved: stock restore");
        return;
    }
    // Without the private monitor QEMU would refuse the stream anyway
    // (capability mismatch); the refusal at start begin says why.
    auto refuse_at_start = [&](const Error& e) {
        strip_monitor(c);
        m.state = SaveState::restoring;
        m.attempt.clear();
        m.last_error = "cannot restore: " + e.message();
        if (auto ok = state.store(m); !ok)
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
    auto random = random_hex(8);
    if (!random) {
        refuse_at_start(random.error());
        return;
    }
    std::string attempt = std::move(*random);
    std::string qmp_root = c.paths.run_dir + "/qmp";
    std::string dir = qmp_root + "/" + attempt;
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
    m.state = SaveState::restoring;
    m.attempt = attempt;
    m.timeline.push_back({"restore-begin", now_us()});
    m.last_error.clear();
    if (auto ok = state.store(m); !ok) {
        refuse_at_start(ok.error());
        return;
    }
    if (auto ok = spawn_helper(helper, {info.uuid, attempt, socket, info.name}); !ok) {
        refuse_at_start(ok.error());
        return;
    }
    c.out.output = std::move(*xml);
    c.log("restoring a vmupdate save: attempt " + attempt + ", helper on " + socket);
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
    if (!loaded || !*loaded || (*loaded)->state != SaveState::restoring) {
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
    auto backing = backing_dir(c.paths);
    if (!backing) {
        c.refuse(backing.error());
        return;
    }
    std::string ram_dir = domain_ram_dir(*backing, info.id, info.name);
    if (auto ok = reinstate_ram(info.name, m.ram, ram_dir); !ok) {
        m.last_error = "cannot restore: " + ok.error().message();
        (void)state.store(m);
        c.refuse(ok.error());
        return;
    }
    c.log("linked " + std::to_string(m.ram.size()) + " preserved RAM file(s) into " + ram_dir);
}

// release end: the last word on a stop. Drop the RAM only when nothing can need it.
void on_release(Context& c, const DomainInfo& info, const StateDir& state) {
    auto loaded = state.load(info.uuid);
    if (!loaded) {
        c.log("cannot read the manifest, RAM kept: " + loaded.error().message());
        return;
    }
    if (*loaded) {
        Manifest m = **loaded;
        switch (m.state) {
        case SaveState::saving:
        case SaveState::saved:
            c.log("save recorded: RAM kept");
            return;
        case SaveState::restoring: {
            // A refused restore has no attempt: "qmp/" alone would be every
            // domain's restore sockets.
            if (!m.attempt.empty() && m.attempt != "." && m.attempt != ".." &&
                m.attempt.find('/') == std::string::npos) {
                std::error_code ec;
                std::filesystem::remove_all(c.paths.run_dir + "/qmp/" + m.attempt, ec);
            }
            m.state = SaveState::saved;
            if (m.last_error.empty())
                m.last_error =
                    "restore attempt " + m.attempt + " failed (libvirt stopped the domain" +
                    (c.call.extra.empty() || c.call.extra == "-" ? "" : ": " + c.call.extra) + ")";
            m.attempt.clear();
            if (auto ok = state.store(m); !ok)
                c.log("cannot record the failed restore: " + ok.error().message());
            c.log("restore failed: RAM and image kept; " + m.last_error);
            return;
        }
        case SaveState::restored:
            break;
        }
    }
    if (file_exists(managed_save_image(c.paths, info.name))) {
        c.log("a managed-save image exists: RAM kept");
        return;
    }
    auto backing = backing_dir(c.paths);
    auto pres = backing ? preserved_dir(*backing, info.uuid)
                        : Result<std::string>(std::unexpected(backing.error()));
    if (!pres) {
        c.log(pres.error().message());
        return;
    }
    if (auto ok = drop_preserved(*pres); !ok) {
        c.log(ok.error().message());
        return;
    }
    if (*loaded)
        (void)state.remove(info.uuid);
    c.log("domain stopped for good: preserved RAM dropped");
}

} // namespace

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
    auto info = inspect_domain(call.xml, call.domain);
    // Whatever libvirt sends that vmupdate cannot read is not vmupdate's business.
    if (!info || !info->managed)
        return c.out;
    if (!is_canonical_uuid(info->uuid)) {
        c.log("domain has no canonical UUID: ignored");
        return c.out;
    }
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
    else if (call.op == "migrate" && call.subop == "begin")
        strip_monitor(c);
    return c.out;
}

} // namespace vmupdate
