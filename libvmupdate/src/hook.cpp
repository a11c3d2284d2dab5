#include "vmupdate/hook.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "hook_ops.hpp"
#include "process_mark.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool_usage.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <cerrno>
#include <charconv>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <optional>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmupdate {
namespace {

// A user or group of qemu.conf as an id: "+N" names a numeric id, as in
// libvirt's qemu.conf; anything else is looked up by `lookup`.
template <typename Lookup>
Result<unsigned> resolve_id(const std::string& s, const std::string& kind, Lookup lookup) {
    if (!s.starts_with("+")) {
        if (auto id = lookup(s.c_str()))
            return *id;
        return fail(Errc::not_found, s, "cannot find the QEMU " + kind, "no such " + kind);
    }
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), v);
    if (s.size() < 2 || ec != std::errc{} || p != s.data() + s.size())
        return fail(Errc::invalid_input, s, "cannot read the QEMU " + kind, "not a number");
    return v;
}

} // namespace

bool file_exists(const std::string& p) {
    struct stat st {};
    return lstat(p.c_str(), &st) == 0;
}

// Its name depends on libvirtd's locale, which vmupdate cannot see (see
// find_domain_ram_dir).
Result<std::string> ram_dir_of(const Paths& paths, const DomainInfo& info) {
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());
    return find_domain_ram_dir(*backing, info.id, info.name);
}

void strip_monitor(HookContext& c) {
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

std::string apparmor_profile_name(std::string_view uuid) {
    // libvirt's security_apparmor.h: AA_PREFIX "libvirt-" + virUUIDFormat (lowercase).
    return "libvirt-" + std::string(uuid);
}

bool is_attempt_of(std::string_view attempt, std::string_view uuid) {
    // The AppArmor rule (packaging/apparmor/libvirt-qemu.d-vmupdate) grants a QEMU
    // only qmp/@{profile_name}.[0-9a-f]*/qmp.sock: the prefix is what scopes it.
    std::string prefix = apparmor_profile_name(uuid) + ".";
    if (!is_canonical_uuid(uuid) || !attempt.starts_with(prefix))
        return false;
    std::string_view hex = attempt.substr(prefix.size());
    return hex.size() == 16 && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
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
    auto uid = resolve_id(u, "user", [](const char* n) -> std::optional<unsigned> {
        passwd* pw = getpwnam(n);
        return pw == nullptr ? std::nullopt : std::optional<unsigned>(pw->pw_uid);
    });
    if (!uid)
        return std::unexpected(uid.error());
    auto gid = resolve_id(g, "group", [](const char* n) -> std::optional<unsigned> {
        struct group* gr = getgrnam(n);
        return gr == nullptr ? std::nullopt : std::optional<unsigned>(gr->gr_gid);
    });
    if (!gid)
        return std::unexpected(gid.error());
    return QemuUser{*uid, *gid};
}

HookOutcome run_hook(const Paths& paths, const HookCall& call, const std::string& helper) {
    HookContext c{paths, call, {}};
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
