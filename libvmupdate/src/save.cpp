// `vmupdate save`: a running, prepared domain's device state only, its RAM kept
// in its file. The steps of save_domain, in the order they run; from
// pause_and_save on the guest is paused or stopped.
#include "clock.hpp"
#include "domain_info.hpp"
#include "fsutil.hpp"
#include "hold_ram.hpp"
#include "operation.hpp"
#include "ram_discard.hpp"
#include "save_image.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/pool_usage.hpp"
#include "vmupdate/preservable.hpp"
#include "vmupdate/ram.hpp"

#include <chrono>
#include <sys/utsname.h>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "";
}

struct Target {
    Domain dom;
    DomainInfo info;
};

// The refusal when a running domain's RAM would not outlive its QEMU.
Error refusal(const Domain& dom, const DomainInfo& live, ManagePolicy policy) {
    const std::string cold_start =
        "run 'vmupdate prepare " + dom.name() + "', then shut it down " + "and start it";
    std::string cause;
    // Prepared, but the running QEMU (its live definition unmarked too) still
    // has the RAM it started with.
    if (auto prepared = inspect(dom, Definition::persistent, policy);
        prepared && prepared->managed) {
        cause = reason_text(Unpreservable::not_shared, live) +
                ": the prepared definition takes effect at the next cold start (shut it down and "
                "start it)";
    } else {
        cause = "vmupdate does not manage this domain: " + cold_start;
    }
    return Error{Errc::refused, dom.name(), "cannot save", cause};
}

// The live definition of a domain, checked for what save needs.
Result<Target> running_managed(Domain dom, ManagePolicy policy) {
    auto active = dom.is_active();
    if (!active)
        return std::unexpected(active.error());
    if (!*active)
        return fail(Errc::refused, dom.name(), "cannot save", "the domain is not running");
    auto info = inspect(dom, Definition::live, policy);
    if (!info)
        return std::unexpected(info.error());
    if (preservability(*info) != Unpreservable::none)
        return std::unexpected(refusal(dom, *info, policy));
    if (auto ok = check_domain_name(dom.name()); !ok)
        return std::unexpected(ok.error());
    return Target{std::move(dom), std::move(*info)};
}

// Under the lock: the domain is preservable and the running libvirt daemon runs
// the hook that will restore it.
Result<Target> check_target(const Paths& paths, Domain found) {
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    auto target = running_managed(std::move(found), *policy);
    if (!target)
        return std::unexpected(target.error());
    if (auto ok = check_hook_runs(paths); !ok) {
        ok.error().object = target->dom.name();
        ok.error().step = "cannot save: " + ok.error().step;
        return std::unexpected(ok.error());
    }
    return target;
}

// Holds the RAM before anything can stop QEMU (the hook normally does this at start).
Result<HeldRam> hold_ram(const Paths& paths, const Target& target, SaveReport& report) {
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());
    if (auto fs = filesystem_of(*backing); fs && fs->kind == FsKind::disk)
        report.warnings.push_back("guest RAM is in " + *backing + " on " + fs->fstype +
                                  ", a disk filesystem: the kernel keeps writing it back to disk");
    const Domain& dom = target.dom;
    auto held = hold_domain_ram(*backing, dom.uuid(), dom.id(), dom.name(), target.info.ram_files);
    if (!held) {
        held.error().object = dom.name();
        held.error().cause += "; the domain is still running";
        return std::unexpected(held.error());
    }
    for (const auto& f : held->files)
        report.ram_bytes += f.size;
    return held;
}

// Recorded before QEMU stops: the hook must see the save when libvirt releases
// the domain, and `vmupdate restore` must find an interrupted one.
Result<Manifest> record_saving(const Connection& conn, const Paths& paths, const StateDir& state,
                               const Target& target, const HeldRam& held) {
    const Domain& dom = target.dom;
    Manifest m;
    m.uuid = dom.uuid();
    m.name = dom.name();
    m.state = SaveState::saving;
    m.ram = held.files;
    m.image = managed_save_image(paths, dom.name());
    m.qemu_version = conn.hypervisor_version().value_or("");
    m.kernel_version = kernel_release();
    m.machine_type = target.info.machine;
    if (auto ok = state.store(m); !ok)
        return std::unexpected(ok.error());
    return m;
}

// A failure before libvirt wrote vmupdate's image: leave the domain running, or
// say exactly what stopped it and what is left.
std::unexpected<Error> undo_save(const Paths& paths, const StateDir& state, const Domain& dom,
                                 const Manifest& m, const DiscardSwitch& discard, Error e) {
    auto still = dom.is_active();
    auto image = dom.has_managed_save();
    if (still && *still) {
        (void)set_ignore_shared(dom, false);
        restore_discard(qmp_call(dom), discard);
        (void)state.remove(m.uuid);
        e.cause += "; the domain is still running";
    } else if (still && image && !*image) {
        // Stopped by someone else (virsh destroy, a crash) before libvirt wrote
        // an image: there is nothing to restore, and a kept save would only
        // block its next start.
        (void)drop_save(paths, state, m.uuid);
        e.cause += "; the domain was stopped during the save, not by vmupdate, and libvirt "
                   "wrote no image: nothing is saved, 'virsh start' boots it afresh";
    } else if (auto facts = read_save_image(m.image);
               still && facts && facts->complete && facts->ignore_shared == false) {
        // A concurrent stock `virsh managedsave` won: its image holds the RAM.
        (void)drop_save(paths, state, m.uuid);
        e.cause += "; a stock managed save of the domain came first: 'virsh start " + dom.name() +
                   "' restores it";
    } else {
        e.cause += "; the domain is stopped: 'vmupdate restore " + dom.name() +
                   "' restores it, 'vmupdate status' shows its state";
    }
    e.object = dom.name();
    return std::unexpected(e);
}

// The guest pauses here: x-ignore-shared on, then libvirt's managed save writes
// the device state only and stops QEMU. Returns when the save started.
Result<std::int64_t> pause_and_save(const Paths& paths, const StateDir& state, const Domain& dom,
                                    const Manifest& m, const DiscardSwitch& discard) {
    if (auto ok = set_ignore_shared(dom, true); !ok)
        return undo_save(paths, state, dom, m, discard, ok.error());
    test_point("save:capability-on");
    std::int64_t save_started = now_us();
    if (auto ok = dom.managed_save(); !ok)
        return undo_save(paths, state, dom, m, discard, ok.error());
    test_point("save:managed-saved");
    return save_started;
}

// The image libvirt wrote, read back and checked.
struct SavedImage {
    std::uint64_t size{};
    std::string sha256;
};

// The domain is stopped: a failure here leaves the manifest `saving`, which
// `vmupdate restore` verifies and completes (`kept` says so).
Result<SavedImage> check_saved_image(const Domain& dom, const Manifest& m, const HeldRam& held,
                                     const std::string& kept, SaveReport& report) {
    auto facts = read_save_image(m.image);
    if (!facts)
        return fail(Errc::verify, dom.name(),
                    "managed save reported success but its image cannot be read",
                    facts.error().message() + "; the RAM is held in " + held.preserved);
    // Guest memory that is not in a shared file (a private NVDIMM or NUMA cell,
    // video RAM) travels in the stream even with x-ignore-shared. The image is still
    // vmupdate's and needs the capability to load: keep it restorable, and say so.
    if (facts->size > report.ram_bytes / 2)
        report.warnings.push_back("the managed-save image holds " + format_size(facts->size) +
                                  ": some guest memory is not in a shared file and was "
                                  "written to the image; 'vmupdate restore' restores it");
    auto sum = image_sha256(m.image, true);
    if (!sum)
        return fail(Errc::system, dom.name(), sum.error().step, sum.error().cause + kept);
    if (auto ok = verify_preserved(dom.name(), m.ram); !ok)
        return fail(Errc::verify, dom.name(), ok.error().step, ok.error().cause + kept);
    return SavedImage{facts->size, std::move(*sum)};
}

// The manifest becomes `saved`, with the image and the pause's first moments.
Result<void> record_saved(const StateDir& state, const EventWatch& events, Manifest m,
                          std::int64_t save_started, const SavedImage& image) {
    // The Stopped event may come a moment after the call returns (seen with three
    // parallel saves): the phase breakdown needs it.
    (void)events.wait_for(m.uuid, "stopped", 2s, save_started);
    m.image_size = image.size;
    m.image_sha256 = image.sha256;
    m.saved_at_us = now_us();
    m.paused_at_us =
        first_event(events, m.uuid, "suspended", save_started)
            .value_or(first_event(events, m.uuid, "stopped", save_started).value_or(save_started));
    m.timeline = {{"suspended", m.paused_at_us}};
    if (auto stopped = first_event(events, m.uuid, "stopped", save_started))
        m.timeline.push_back({"stopped", *stopped});
    m.timeline.push_back({"saved", m.saved_at_us});
    m.state = SaveState::saved;
    auto stored = state.update(m.uuid, [&](Manifest& cur) {
        if (cur.state != SaveState::saving)
            return false;
        cur = m;
        return true;
    });
    if (!stored)
        return std::unexpected(stored.error());
    return {};
}

} // namespace

Result<SaveReport> save_domain(const Connection& conn, const Paths& paths, std::string_view name,
                               const EventWatch& events) {
    auto t0 = SteadyClock::now();
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto found = conn.lookup(name);
    if (!found)
        return std::unexpected(found.error());
    // Everything below is judged under the lock: a concurrent run may have
    // saved the domain while this one waited.
    auto lock = lock_domain(*state, *found, "cannot save");
    if (!lock)
        return std::unexpected(lock.error());
    test_point("save:locked");
    auto target = check_target(paths, std::move(*found));
    if (!target)
        return std::unexpected(target.error());
    const Domain& dom = target->dom;
    SaveReport report{dom.name(), {}, {}, {}, {}, {}, {}};
    // libvirt's SIGTERM after the save would make a discarding QEMU punch the RAM
    // out of its file: off first, in every backend QEMU has, whatever the XML says.
    auto discard = keep_ram_on_exit(qmp_call(dom), dom.name());
    if (!discard)
        return std::unexpected(discard.error());
    report.discard_switched = discard->switched.size();
    report.discard_us = discard->us;
    auto held = hold_ram(paths, *target, report);
    auto m = held ? record_saving(conn, paths, *state, *target, *held)
                  : Result<Manifest>(std::unexpected(held.error()));
    if (!m) {
        restore_discard(qmp_call(dom), *discard);
        return std::unexpected(m.error());
    }
    test_point("save:manifest-stored");

    auto save_started = pause_and_save(paths, *state, dom, *m, *discard);
    if (!save_started)
        return std::unexpected(save_started.error());
    // From here on the domain is stopped and its image written with x-ignore-shared.
    const std::string kept = "; the domain is saved: 'vmupdate restore " + dom.name() +
                             "' verifies the image and restores it";
    auto image = check_saved_image(dom, *m, *held, kept, report);
    if (!image)
        return std::unexpected(image.error());
    if (auto ok = record_saved(*state, events, *m, *save_started, *image); !ok)
        return fail(Errc::system, dom.name(), ok.error().step, ok.error().cause + kept);
    test_point("save:stored");
    report.image_bytes = image->size;
    report.seconds = seconds_since(t0);
    return report;
}

} // namespace vmupdate
