// `vmupdate restore`: a domain vmupdate saved, from its preserved RAM. The steps
// of restore_domain, in the order they run; from start_from_image until
// finish_restore the guest's pause goes on.
#include "clock.hpp"
#include "domain_log.hpp"
#include "fsutil.hpp"
#include "operation.hpp"
#include "save_image.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/ram.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;

// The moment QEMU got libvirt's SIGTERM after the save and the moment libvirt started
// the restoring QEMU, from the domain log that libvirt keeps per domain name. Without
// them the phases around them are merged, not invented.
void add_domain_log_moments(const Paths& paths, const std::string& name,
                            std::vector<TimePoint>& timeline) {
    if (!check_domain_name(name))
        return;
    auto text = read_file_tail(paths.qemu_log_dir + "/" + name + ".log", 256 * 1024);
    if (!text)
        return;
    auto moments = domain_log_moments(*text);
    auto at = [&](std::string_view moment) -> std::int64_t {
        auto it = std::find_if(timeline.rbegin(), timeline.rend(),
                               [&](const TimePoint& t) { return t.name == moment; });
        return it == timeline.rend() ? 0 : it->at_us;
    };
    if (std::int64_t suspended = at("suspended"); suspended > 0)
        if (auto t = first_moment(moments, "qemu-terminating", suspended))
            timeline.push_back({"qemu-terminating", *t});
    if (std::int64_t begin = at("restore-begin"); begin > 0)
        if (auto t = first_moment(moments, "qemu-starting", begin))
            timeline.push_back({"qemu-starting", *t});
}

// No vmupdate save is recorded: say what the domain has instead.
Error no_save(const Domain& dom, bool active) {
    auto stock = dom.has_managed_save();
    return Error{Errc::refused, dom.name(), "cannot restore",
                 active ? "the domain is running and has no vmupdate save"
                 : stock && *stock
                     ? "its managed-save image is not vmupdate's: start it with 'virsh start'"
                     : "no vmupdate save is recorded for it"};
}

// A save interrupted while libvirt had not stopped the guest yet (the CLI, or
// libvirtd, killed): the guest runs on, but x-ignore-shared may still be on.
Result<void> undo_interrupted_save(const Domain& dom, const StateDir& state, const Manifest& m,
                                   RestoreReport& report) {
    if (auto ok = set_ignore_shared(dom, false); !ok)
        return fail(Errc::verify, dom.name(), "cannot undo an interrupted save",
                    ok.error().message() + "; the domain is running");
    if (auto ok = state.remove(m.uuid); !ok)
        return std::unexpected(ok.error());
    report.was_running = true;
    report.warnings.push_back("its save was interrupted while it kept running: x-ignore-shared "
                              "is off again and there is nothing to restore");
    return {};
}

// Nothing has changed yet: every refusal here is exit 2, with image and RAM kept.
// A save interrupted after libvirt wrote its image is completed in the manifest.
Result<void> check_restorable(const Domain& dom, const StateDir& state, Manifest& m,
                              RestoreReport& report) {
    auto image = check_image_for_restore(m);
    if (!image) {
        if (m.state == SaveState::saving && image.error().code == Errc::not_found)
            return fail(Errc::refused, dom.name(), "cannot restore",
                        "its save was interrupted before libvirt wrote the image, so its "
                        "device state is lost; 'virsh start " +
                            dom.name() + "' boots it afresh (and drops the preserved RAM)");
        if (image.error().code == Errc::not_found)
            return fail(Errc::refused, dom.name(), "cannot restore",
                        "its managed-save image " + m.image +
                            " is gone (libvirt deletes an image it cannot read): put it back "
                            "and run 'vmupdate restore' again, or drop the save with "
                            "'vmupdate discard " +
                            dom.name() + "'; the RAM is kept");
        return fail(Errc::refused, dom.name(), "cannot restore",
                    image.error().message() + "; the image and the RAM are kept");
    }
    if (auto ok = verify_preserved(dom.name(), m.ram); !ok)
        return fail(Errc::refused, dom.name(), ok.error().step,
                    ok.error().cause + "; the managed-save image and the RAM are kept");
    if (m.state != SaveState::saving)
        return {};
    report.warnings.push_back(image->unverified);
    auto done = state.update(m.uuid, [&](Manifest& cur) {
        if (cur.state != SaveState::saving)
            return false;
        cur.state = SaveState::saved;
        cur.image_size = image->size;
        cur.image_sha256 = image->sha256;
        return true;
    });
    if (!done)
        return std::unexpected(done.error());
    if (*done)
        m = **done;
    return {};
}

// libvirt starts the domain from its managed-save image (through the hook).
Result<void> start_from_image(const Domain& dom, const StateDir& state, const Manifest& m) {
    auto ok = dom.start();
    if (ok)
        return {};
    auto after = state.load(m.uuid);
    std::string hook =
        after && *after && !(*after)->last_error.empty() ? " (" + (*after)->last_error + ")" : "";
    // libvirt may have failed after QEMU loaded the image (libvirtd killed
    // mid-start): then the image is gone and the domain runs, paused.
    auto now = dom.is_active();
    std::string where =
        !now ? "; the connection to libvirt failed: once libvirtd is back, 'vmupdate "
               "restore " +
                   dom.name() + "' finishes or retries the restore"
        : *now ? "; the domain runs all the same: 'vmupdate restore " + dom.name() +
                     "' finishes the restore"
               : "; the managed-save image and the RAM are kept: fix the cause and run "
                 "'vmupdate restore' again";
    return fail(Errc::libvirt, dom.name(), "restore failed", ok.error().cause + hook + where);
}

// The restore helper marks the manifest once QEMU has loaded the state and the
// capability is off; waits a while for that.
void wait_for_helper(const StateDir& state, Manifest& m) {
    auto deadline = SteadyClock::now() + 10s;
    while (m.state != SaveState::restored && SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
        auto again = state.load(m.uuid);
        if (again && *again)
            m = **again;
    }
}

// The running QEMU maps the preserved RAM, runs, and has x-ignore-shared off.
Result<void> finish_restore(const Domain& dom, const std::string& backing, const Manifest& m,
                            RestoreReport& report) {
    auto ram_dir = find_domain_ram_dir(backing, dom.id(), dom.name());
    auto in_use = ram_dir ? verify_in_use(dom.name(), *ram_dir, m.ram)
                          : Result<void>(std::unexpected(ram_dir.error()));
    if (!in_use)
        return fail(Errc::verify, dom.name(), "restored, but its RAM is not the preserved RAM",
                    in_use.error().message());
    auto on = ignore_shared_on(dom);
    // A restore whose libvirt job was cut short (libvirtd killed after QEMU loaded
    // the state) leaves the domain paused: libvirt resumes only in the job it lost.
    if (m.state == SaveState::restored && dom.is_paused().value_or(false)) {
        if (!on || *on)
            (void)set_ignore_shared(dom, false);
        if (auto ok = dom.resume(); !ok)
            return fail(Errc::libvirt, dom.name(), "restored, but still paused",
                        ok.error().cause + "; 'virsh resume " + dom.name() + "' resumes it");
        report.warnings.push_back("libvirt had left it paused (its restore job was interrupted): "
                                  "resumed");
    }
    if (!on || *on) {
        if (auto ok = set_ignore_shared(dom, false); !ok)
            return fail(Errc::verify, dom.name(), "restored, but x-ignore-shared is still on",
                        ok.error().message());
        report.warnings.push_back("x-ignore-shared was still on: switched off");
    }
    return {};
}

// Starts the stopped domain from its image and measures its pause.
Result<void> start_saved(const Domain& dom, const StateDir& state, const EventWatch& events,
                         Manifest& m, RestoreReport& report, std::vector<TimePoint>& local) {
    if (auto ok = check_restorable(dom, state, m, report); !ok)
        return ok;
    test_point("restore:checked");
    std::int64_t started = now_us();
    if (auto ok = start_from_image(dom, state, m); !ok)
        return ok;
    test_point("restore:started");
    if (auto resumed = events.wait_for(m.uuid, "resumed", 30s, started);
        resumed && m.paused_at_us > 0) {
        report.pause_us = resumed->at_us - m.paused_at_us;
        local.push_back({"resumed", resumed->at_us});
    } else
        report.warnings.push_back("no Resumed event from libvirt: pause time unknown");
    return {};
}

} // namespace

Result<RestoreReport> restore_domain(const Connection& conn, const Paths& paths,
                                     std::string_view name, const EventWatch& events) {
    auto t0 = SteadyClock::now();
    auto locked = lookup_and_lock(conn, paths, name, "cannot restore");
    if (!locked)
        return std::unexpected(locked.error());
    const Domain& dom = locked->dom;
    const StateDir& state = locked->state;
    RestoreReport report{dom.name(), {}, {}, {}, {}};
    auto loaded = state.load(dom.uuid());
    if (!loaded)
        return std::unexpected(loaded.error());
    auto active = dom.is_active();
    if (!active)
        return std::unexpected(active.error());
    if (!*loaded)
        return std::unexpected(no_save(dom, *active));
    Manifest m = **loaded;
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());

    if (*active && m.state == SaveState::saving) {
        if (auto ok = undo_interrupted_save(dom, state, m, report); !ok)
            return std::unexpected(ok.error());
        report.seconds = seconds_since(t0);
        return report;
    }
    std::vector<TimePoint> local{{"restore-command", now_us()}};
    if (!*active) {
        if (auto ok = start_saved(dom, state, events, m, report, local); !ok)
            return std::unexpected(ok.error());
    } else if (m.state != SaveState::restored && m.state != SaveState::restoring) {
        return fail(Errc::refused, dom.name(), "cannot restore", "the domain is already running");
    }

    wait_for_helper(state, m);
    std::vector<TimePoint> timeline = m.timeline;
    timeline.insert(timeline.end(), local.begin(), local.end());
    add_domain_log_moments(paths, dom.name(), timeline);
    report.phases = pause_phases(timeline);
    if (m.state != SaveState::restored)
        report.warnings.push_back("the restore helper did not report completion" +
                                  (m.last_error.empty() ? std::string() : ": " + m.last_error));
    if (auto ok = finish_restore(dom, *backing, m, report); !ok)
        return std::unexpected(ok.error());
    test_point("restore:done");
    if (auto ok = state.remove(m.uuid); !ok)
        return std::unexpected(ok.error());
    if (report.pause_us)
        (void)state.record_pause(m.uuid, *report.pause_us);
    report.seconds = seconds_since(t0);
    return report;
}

} // namespace vmupdate
