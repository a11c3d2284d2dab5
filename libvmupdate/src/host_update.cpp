#include "vmupdate/host_update.hpp"

#include "domain_info.hpp"
#include "fsutil.hpp"
#include "operation.hpp"
#include "preserved_file.hpp"
#include "process_mark.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/interrupt.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool.hpp"
#include "vmupdate/preservable.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <unistd.h>
#include <utility>

namespace vmupdate {
namespace {

std::string mib(std::uint64_t bytes) {
    return std::to_string(bytes / (1024 * 1024)) + " MiB";
}

std::uint64_t dirty_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    while (in >> key) {
        if (key == "Dirty:") {
            in >> kib;
            return kib * 1024;
        }
        in.ignore(256, '\n');
    }
    return 0;
}

// The pool's view of a DAX mount: which pmem namespace and region hold it.
// A DAX filesystem that is not on a pmem namespace (e.g. a brd ramdisk) does
// not survive a kexec.
Result<std::string> pmem_home(const std::optional<std::vector<PmemRegion>>& regions,
                              const std::string& source) {
    if (!regions)
        return fail(Errc::verify, source, "cannot find the persistent memory",
                    "pmem regions cannot be read");
    std::string dev = source.substr(source.rfind('/') + 1);
    for (const auto& r : *regions)
        for (const auto& n : r.namespaces)
            if (n.block_device == dev)
                return n.device + " in " + r.device + " (" + r.provider +
                       (r.labelled ? ", labelled)" : ", label-less)");
    return fail(Errc::verify, source, "not persistent memory",
                "no pmem namespace provides it, so it does not survive a kexec");
}

// What the host itself must offer: root, the new kernel's files, the pmem regions
// on its command line.
std::vector<std::string> host_offenders(const KexecPlan& kexec) {
    std::vector<std::string> out;
    if (geteuid() != 0)
        out.emplace_back("host-update must run as root (it loads a kernel and saves every VM)");
    for (const std::string& f : {kexec.kernel, kexec.initrd})
        if (!f.empty() && access(f.c_str(), R_OK) != 0)
            out.push_back("cannot read " + f);
    if (auto current = current_cmdline(); current) {
        auto more = cmdline_offenders(*current, kexec.cmdline);
        out.insert(out.end(), more.begin(), more.end());
    } else {
        out.push_back(current.error().message());
    }
    return out;
}

// What the planning of each domain needs to know about the host, read once.
struct HostFacts {
    const Paths& paths;
    const KexecPlan& kexec;
    std::string backing;
    std::optional<std::vector<PmemRegion>> regions;
    std::optional<std::vector<std::string>> no_handover; ///< asked once, when RAM is on tmpfs

    const std::vector<std::string>& handover_blocked() {
        if (!no_handover)
            no_handover = handover_offenders(paths, kexec.kernel, kexec.cmdline);
        return *no_handover;
    }
};

// One running domain's RAM: whether it outlives the kexec, and where it lives.
// The unexpected value is the offender (without the domain's name).
std::expected<PlannedDomain, std::string> plan_domain(HostFacts& host, const RunningDomain& r,
                                                      const FsInfo& fs) {
    const DomainInfo& info = *r.live;
    PlannedDomain out{
        r.dom.name(), info.memory_kib * 1024,
        fs.mount_point + " (" + fs.fstype + ", " + std::string(to_string(fs.kind)) + ")", false};
    switch (fs.kind) {
    case FsKind::memory: {
        std::string why =
            fs.fstype != "tmpfs" ? fs.fstype + " cannot be handed over to the new kernel" : "";
        for (const auto& w :
             fs.fstype == "tmpfs" ? host.handover_blocked() : std::vector<std::string>{})
            why += (why.empty() ? "" : "; ") + w;
        if (!why.empty())
            return std::unexpected("its RAM is on " + fs.fstype + " at " + fs.mount_point +
                                   ", which does not survive a kexec (put memory_backing_dir on "
                                   "a DAX mount of persistent memory, or hand tmpfs over with "
                                   "LUO: " +
                                   why + ")");
        out.filesystem += ", handed over by LUO";
        out.handover = true;
        break;
    }
    case FsKind::disk:
        break;
    case FsKind::dax: {
        auto home = pmem_home(host.regions, fs.source);
        if (!home)
            return std::unexpected("its RAM is on " + fs.mount_point + ": " +
                                   home.error().message());
        out.filesystem += " on " + *home;
        break;
    }
    }
    return out;
}

// A running domain the kexec would kill unless it is saved: its plan, or why not.
std::expected<PlannedDomain, std::string> check_domain(HostFacts& host, const RunningDomain& r,
                                                       bool& on_disk) {
    // A domain whose state cannot be read might be running: the kexec would kill it.
    if (!r.live)
        return std::unexpected(r.live.error().message());
    if (preservability(*r.live) != Unpreservable::none)
        return std::unexpected(reason_text(Unpreservable::not_managed, *r.live) +
                               ", it would be lost (vmupdate prepare it and cold-start it, or "
                               "shut it down)");
    auto ram_dir = find_domain_ram_dir(host.backing, r.dom.id(), r.dom.name());
    if (!ram_dir)
        return std::unexpected(ram_dir.error().message());
    auto fs = filesystem_of(*ram_dir);
    if (!fs)
        return std::unexpected(fs.error().message());
    on_disk = fs->kind == FsKind::disk;
    return plan_domain(host, r, *fs);
}

} // namespace

std::vector<std::string> cmdline_offenders(std::string_view current, std::string_view next) {
    std::vector<std::string> out;
    auto kept = pmem_memmap_args(next);
    for (const auto& region : pmem_memmap_args(current))
        if (std::find(kept.begin(), kept.end(), region) == kept.end())
            out.push_back(
                "the new kernel command line lacks " + region +
                ": the persistent memory region holding guest RAM would not exist after the kexec");
    return out;
}

Result<HostUpdatePlan> plan_host_update(const Connection& conn, const Paths& paths,
                                        const KexecPlan& kexec) {
    HostUpdatePlan plan{kexec, {}, host_offenders(kexec), {}};
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());
    auto running = running_domains(conn, paths);
    if (!running)
        return std::unexpected(running.error());
    HostFacts host{paths, kexec, *backing, {}, {}};
    if (auto r = list_pmem())
        host.regions = std::move(*r);
    if (auto ok = check_hook_runs(paths); !ok)
        plan.offenders.push_back(ok.error().message());
    std::uint64_t disk_ram = 0;
    for (const auto& r : *running) {
        bool on_disk = false;
        auto planned = check_domain(host, r, on_disk);
        if (!planned) {
            plan.offenders.push_back(r.dom.name() + ": " + planned.error());
            continue;
        }
        if (on_disk)
            disk_ram += planned->ram_bytes;
        if (planned->handover)
            plan.kexec.file_load = true;
        plan.domains.push_back(std::move(*planned));
    }
    if (disk_ram > 0)
        plan.warnings.push_back(
            "guest RAM of " + mib(disk_ram) +
            " is on a disk filesystem: all of it is written back before the kexec (" +
            mib(dirty_bytes()) + " dirty host-wide now); a DAX mount avoids that");
    return plan;
}

LoadedKernel::LoadedKernel(LoadedKernel&& other) noexcept
    : loaded_(std::exchange(other.loaded_, false)) {}

LoadedKernel::~LoadedKernel() {
    if (loaded_)
        (void)kexec_unload();
}

void LoadedKernel::keep() noexcept {
    loaded_ = false;
}

std::optional<LoadedKernel> load_planned_kernel(HostUpdatePlan& plan) {
    if (!plan.offenders.empty())
        return std::nullopt;
    if (auto ok = kexec_load(plan.kexec); !ok) {
        plan.offenders.push_back(ok.error().message());
        return std::nullopt;
    }
    return LoadedKernel{};
}

namespace {

// Brings the saved domains back after a failure before the kexec, and leaves no
// kernel loaded; says so in the error.
std::unexpected<Error> undo_saves(const Connection& conn, const Paths& paths,
                                  const std::vector<std::string>& saved_names,
                                  const EventWatch& events, unsigned parallel, Error e) {
    ::unlink(host_update_mark(paths).c_str());
    auto restored = restore_domains(conn, paths, saved_names, events, parallel, true);
    size_t ok = std::count_if(restored.begin(), restored.end(),
                              [](const auto& r) { return r.has_value(); });
    (void)kexec_unload();
    e.cause += "; no kexec: " + std::to_string(ok) + " of " + std::to_string(saved_names.size()) +
               " saved domains restored";
    for (const auto& r : restored)
        if (!r)
            e.cause += "; " + r.error().message();
    return std::unexpected(e);
}

// From now until the kexec the hook refuses cold starts of managed domains; the
// mark names this process, so it ends with it whatever way it ends.
Result<void> mark_host_update(const Paths& paths) {
    auto me = process_id(getpid());
    if (!me)
        return std::unexpected(me.error());
    if (auto ok = make_dir(paths.run_dir, 0711); !ok)
        return std::unexpected(ok.error());
    return write_process_mark(host_update_mark(paths), *me);
}

// Anything running now dies with the kexec: a domain started in the window (an
// unmanaged one, which the hook does not stop), or one whose save did not stop it.
Result<void> check_nothing_runs(const Connection& conn) {
    auto doms = conn.domains();
    if (!doms)
        return std::unexpected(doms.error());
    for (const auto& d : *doms) {
        auto active = d.is_active();
        if (!active)
            return std::unexpected(active.error());
        if (*active)
            return fail(Errc::refused, d.name(), "cannot kexec",
                        "the domain is running (started during the update?)");
    }
    return {};
}

// Durable before the kexec: preserved RAM (on a disk filesystem this writes it
// back), images (synced by save), manifests (synced), then everything. Notes
// the UUIDs whose RAM LUO hands over.
Result<void> make_durable(const Connection& conn, const Paths& paths, const HostUpdatePlan& plan,
                          HostUpdateSaved& out) {
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    for (const auto& r : out.saved) {
        auto dom = conn.lookup(r.name);
        auto m = dom ? state->load(dom->uuid())
                     : Result<std::optional<Manifest>>(std::unexpected(dom.error()));
        if (!m || !*m)
            return std::unexpected(m ? Error{Errc::verify, r.name, "no manifest after the save", ""}
                                     : m.error());
        for (const auto& f : (*m)->ram)
            if (auto ok = sync_preserved_file(r.name, f); !ok)
                return std::unexpected(ok.error());
        if (std::any_of(plan.domains.begin(), plan.domains.end(),
                        [&](const PlannedDomain& p) { return p.name == r.name && p.handover; }))
            out.handover.push_back((*m)->uuid);
    }
    sync();
    return {};
}

} // namespace

Result<HostUpdateSaved> save_for_host_update(const Connection& conn, const Paths& paths,
                                             const HostUpdatePlan& plan, const EventWatch& events,
                                             unsigned parallel) {
    test_point("host-update:planned");
    // The kernel is loaded and nothing is paused yet: an interrupt here only unloads it.
    if (interrupt_requested()) {
        (void)kexec_unload();
        return fail(Errc::refused, "host-update", "interrupted", "nothing was paused, no kexec");
    }
    auto t0 = SteadyClock::now();
    std::vector<std::string> names;
    for (const auto& d : plan.domains)
        names.push_back(d.name);
    HostUpdateSaved out;
    if (auto ok = mark_host_update(paths); !ok)
        return std::unexpected(ok.error());
    std::vector<std::string> saved_names;
    std::optional<Error> first_error;
    for (auto& r : save_domains(conn, paths, names, events, parallel)) {
        if (r) {
            saved_names.push_back(r->name);
            out.saved.push_back(std::move(*r));
        } else if (!first_error) {
            first_error = r.error();
        }
    }
    auto undo = [&](Error e) {
        return undo_saves(conn, paths, saved_names, events, parallel, e);
    };
    test_point("host-update:saved");
    if (first_error)
        return undo(*first_error);
    if (interrupt_requested())
        return undo(Error{Errc::refused, "host-update", "interrupted", "no kexec"});
    if (auto ok = check_nothing_runs(conn); !ok)
        return undo(ok.error());
    if (auto ok = make_durable(conn, paths, plan, out); !ok)
        return undo(ok.error());
    if (interrupt_requested())
        return undo(Error{Errc::refused, "host-update", "interrupted", "no kexec"});
    out.seconds = seconds_since(t0);
    return out;
}

Result<void> kexec_into_new_kernel(const Connection& conn, const Paths& paths,
                                   const HostUpdateSaved& saved, const EventWatch& events,
                                   unsigned parallel) {
    test_point("host-update:kexec");
    const KexecVia via = kexec_method();
    std::optional<RamHandover> handover;
    bool held_by_service = false;
    Result<void> ok;
    if (interrupt_requested()) {
        ok = fail(Errc::refused, "host-update", "interrupted", "no kexec");
    } else if (!saved.handover.empty() && via == KexecVia::kexec_e) {
        // Last before the kexec: from here until the new kernel has it, the RAM of
        // these domains lives only in this process's LUO session.
        auto h = hand_over_ram(paths, saved.handover);
        if (h)
            handover.emplace(std::move(*h));
        else
            ok = std::unexpected(h.error());
    } else if (!saved.handover.empty()) {
        // systemd's shutdown ends this process long before the kexec: a holder
        // that the shutdown leaves alone keeps the session (hold_handover).
        char exe[4096];
        ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) {
            ok = fail_errno(errno, "/proc/self/exe", "cannot find vmupdate's own binary");
        } else {
            ok = start_handover_holder(paths, std::string(exe, static_cast<size_t>(n)),
                                       saved.handover);
            held_by_service = ok.has_value();
        }
    }
    if (!saved.handover.empty()) {
        test_point("host-update:handed-over");
        if (ok && interrupt_requested())
            ok = fail(Errc::refused, "host-update", "interrupted", "no kexec");
    }
    if (ok)
        ok = kexec_exec(via);
    // systemd is shutting down into the new kernel: the VMs stay saved for
    // vmupdate-restore.service at boot.
    if (ok && via == KexecVia::systemd)
        return {};
    // Still here: the kexec failed or was called off. Bring the VMs back, and leave
    // no kernel loaded that a later reboot or `systemctl kexec` would run unasked.
    std::string lost;
    std::optional<Errc> ram; // the RAM is held or lost: that is the outcome, not the kexec's
    if (handover)
        if (auto back = handover->take_back(); !back) {
            lost = "; " + back.error().message();
            ram = back.error().code;
        }
    if (held_by_service)
        if (auto back = stop_handover_holder(paths); !back) {
            lost = "; " + back.error().message();
            ram = back.error().code;
        }
    (void)kexec_unload();
    ::unlink(host_update_mark(paths).c_str());
    std::vector<std::string> names;
    for (const auto& r : saved.saved)
        names.push_back(r.name);
    auto restored = restore_domains(conn, paths, names, events, parallel, true);
    Error e = ok ? Error{Errc::system, "kexec", "kexec -e returned", ""} : ok.error();
    if (ram)
        e.code = *ram;
    size_t n = std::count_if(restored.begin(), restored.end(),
                             [](const auto& r) { return r.has_value(); });
    e.cause += lost + "; " + std::to_string(n) + " of " + std::to_string(names.size()) +
               " domains restored";
    return std::unexpected(e);
}

} // namespace vmupdate
