#include "vmupdate/orchestrate.hpp"

#include "clock.hpp"
#include "domain_info.hpp"
#include "domain_log.hpp"
#include "fsutil.hpp"
#include "save_image.hpp"
#include "test_point.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/interrupt.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool.hpp"
#include "vmupdate/qmp.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view capability = "x-ignore-shared";
constexpr auto lock_wait = 5s;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::optional<std::uint64_t> file_size(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        return std::nullopt;
    return static_cast<std::uint64_t>(st.st_size);
}

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "";
}

// libvirt's QMP passthrough returns QEMU's whole reply; a QMP error is not a
// libvirt error, so look inside.
Result<std::string> monitor(const Domain& dom, std::string_view command,
                            std::string_view arguments = {}) {
    std::string cmd = "{\"execute\":\"" + std::string(command) + "\"";
    if (!arguments.empty())
        cmd += ",\"arguments\":" + std::string(arguments);
    cmd += "}";
    auto reply = dom.qemu_monitor_command(cmd);
    if (!reply)
        return std::unexpected(reply.error());
    auto j = nlohmann::json::parse(*reply, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return fail(Errc::qmp, dom.name(), "QMP " + std::string(command),
                    "unreadable reply from QEMU");
    if (auto e = j.find("error"); e != j.end()) {
        std::string desc = e->is_object() && e->contains("desc") && (*e)["desc"].is_string()
                               ? (*e)["desc"].get<std::string>()
                               : e->dump();
        return fail(Errc::qmp, dom.name(), "QMP " + std::string(command) + " failed", desc);
    }
    auto r = j.find("return");
    return r == j.end() ? std::string("{}") : r->dump();
}

Result<void> set_capability(const Domain& dom, bool on) {
    if (auto r = monitor(dom, "migrate-set-capabilities", capability_arguments(capability, on)); !r)
        return std::unexpected(r.error());
    auto caps = monitor(dom, "query-migrate-capabilities");
    if (!caps)
        return std::unexpected(caps.error());
    auto state = capability_state(*caps, capability);
    if (!state) {
        state.error().object = dom.name();
        return std::unexpected(state.error());
    }
    if (*state != on)
        return fail(Errc::verify, dom.name(),
                    std::string("cannot switch ") + std::string(capability) + (on ? " on" : " off"),
                    "QEMU still reports it " + std::string(*state ? "on" : "off"));
    return {};
}

struct Target {
    Domain dom;
    DomainInfo info;
};

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
    if (!info->managed || !info->shared_file_ram) {
        auto prepared = inspect(dom, Definition::persistent, policy);
        if (prepared && prepared->managed)
            return fail(
                Errc::refused, dom.name(), "cannot save",
                "its running QEMU does not keep RAM in a shared file yet: the prepared definition "
                "takes effect at the next cold start (shut it down and start it)");
        return fail(Errc::refused, dom.name(), "cannot save",
                    "vmupdate does not manage this domain: run 'vmupdate prepare " + dom.name() +
                        "', then shut it down and start it");
    }
    // QEMU would punch the RAM out of its file on exit, and the restore would map
    // zeroes and report success. A management layer (Nova) may have added it back.
    if (!info->discard.empty())
        return fail(Errc::refused, dom.name(), "cannot save",
                    "its running QEMU discards its RAM on exit (" + info->discard +
                        "): run 'vmupdate prepare " + dom.name() +
                        "', then shut it down and start it; the domain is still running");
    if (auto ok = check_domain_name(dom.name()); !ok)
        return std::unexpected(ok.error());
    return Target{std::move(dom), std::move(*info)};
}

// Takes the domain's lock (waiting a while for another vmupdate run); the UUID
// names the lock file, so it must be canonical.
Result<DomainLock> lock_domain(const StateDir& state, const Domain& dom, std::string_view step) {
    if (!is_canonical_uuid(dom.uuid()))
        return fail(Errc::refused, dom.name(), std::string(step),
                    "libvirt reports no canonical UUID");
    auto lock = state.lock(dom.uuid(), lock_wait);
    if (!lock)
        lock.error().object = dom.name();
    return lock;
}

std::optional<std::int64_t> first_event(const EventWatch& events, const std::string& uuid,
                                        std::string_view name, std::int64_t since_us) {
    for (const auto& e : events.events(uuid))
        if (e.event == name && e.at_us >= since_us)
            return e.at_us;
    return std::nullopt;
}

} // namespace

Result<SaveReport> save_domain(const Connection& conn, const Paths& paths, std::string_view name,
                               const EventWatch& events) {
    auto t0 = Clock::now();
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
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    auto target = running_managed(std::move(*found), *policy);
    if (!target)
        return std::unexpected(target.error());
    const Domain& dom = target->dom;
    SaveReport report{dom.name(), {}, {}, {}, {}};
    if (auto ok = check_hook_runs(paths); !ok) {
        ok.error().object = dom.name();
        ok.error().step = "cannot save: " + ok.error().step;
        return std::unexpected(ok.error());
    }

    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());
    if (auto fs = filesystem_of(*backing); fs && fs->kind == FsKind::disk)
        report.warnings.push_back("guest RAM is in " + *backing + " on " + fs->fstype +
                                  ", a disk filesystem: the kernel keeps writing it back to disk");

    // Hold the RAM before anything can stop QEMU (the hook normally does this at start).
    auto pres = preserved_dir(*backing, dom.uuid());
    if (!pres)
        return std::unexpected(pres.error());
    auto ram_dir = find_domain_ram_dir(*backing, dom.id(), dom.name());
    auto held = ram_dir ? preserve_ram(*ram_dir, *pres, target->info.ram_files)
                        : Result<std::vector<RamFile>>(std::unexpected(ram_dir.error()));
    if (!held) {
        held.error().object = dom.name();
        held.error().cause += "; the domain is still running";
        return std::unexpected(held.error());
    }
    for (const auto& f : *held)
        report.ram_bytes += f.size;

    Manifest m;
    m.uuid = dom.uuid();
    m.name = dom.name();
    m.state = SaveState::saving;
    m.ram = *held;
    m.image = managed_save_image(paths, dom.name());
    m.qemu_version = conn.hypervisor_version().value_or("");
    m.kernel_version = kernel_release();
    m.machine_type = target->info.machine;
    // Recorded before QEMU stops: the hook must see the save when libvirt releases
    // the domain, and `vmupdate restore` must find an interrupted one.
    if (auto ok = state->store(m); !ok)
        return std::unexpected(ok.error());
    test_point("save:manifest-stored");

    auto undo = [&](Error e) -> std::unexpected<Error> {
        auto still = dom.is_active();
        auto image = dom.has_managed_save();
        if (still && *still) {
            (void)set_capability(dom, false);
            (void)state->remove(m.uuid);
            e.cause += "; the domain is still running";
        } else if (still && image && !*image) {
            // Stopped by someone else (virsh destroy, a crash) before libvirt wrote
            // an image: there is nothing to restore, and a kept save would only
            // block its next start.
            (void)drop_save(paths, *state, m.uuid);
            e.cause += "; the domain was stopped during the save, not by vmupdate, and libvirt "
                       "wrote no image: nothing is saved, 'virsh start' boots it afresh";
        } else if (auto facts = read_save_image(m.image);
                   still && facts && facts->complete && facts->ignore_shared == false) {
            // A concurrent stock `virsh managedsave` won: its image holds the RAM.
            (void)drop_save(paths, *state, m.uuid);
            e.cause += "; a stock managed save of the domain came first: 'virsh start " +
                       dom.name() + "' restores it";
        } else {
            e.cause += "; the domain is stopped: 'vmupdate restore " + dom.name() +
                       "' restores it, 'vmupdate status' shows its state";
        }
        e.object = dom.name();
        return std::unexpected(e);
    };
    if (auto ok = set_capability(dom, true); !ok)
        return undo(ok.error());
    test_point("save:capability-on");
    std::int64_t save_started = now_us();
    if (auto ok = dom.managed_save(); !ok)
        return undo(ok.error());
    test_point("save:managed-saved");

    // From here on the domain is stopped and its image written with x-ignore-shared:
    // a failure below leaves the manifest `saving`, which `vmupdate restore` verifies
    // and completes.
    const std::string kept = "; the domain is saved: 'vmupdate restore " + dom.name() +
                             "' verifies the image and restores it";
    auto facts = read_save_image(m.image);
    if (!facts)
        return fail(Errc::verify, dom.name(),
                    "managed save reported success but its image cannot be read",
                    facts.error().message() + "; the RAM is held in " + *pres);
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
    // The Stopped event may come a moment after the call returns (seen with three
    // parallel saves): the phase breakdown needs it.
    (void)events.wait_for(m.uuid, "stopped", 2s, save_started);
    m.image_size = facts->size;
    m.image_sha256 = *sum;
    m.saved_at_us = now_us();
    m.paused_at_us =
        first_event(events, m.uuid, "suspended", save_started)
            .value_or(first_event(events, m.uuid, "stopped", save_started).value_or(save_started));
    m.timeline = {{"suspended", m.paused_at_us}};
    if (auto stopped = first_event(events, m.uuid, "stopped", save_started))
        m.timeline.push_back({"stopped", *stopped});
    m.timeline.push_back({"saved", m.saved_at_us});
    m.state = SaveState::saved;
    auto stored = state->update(m.uuid, [&](Manifest& cur) {
        if (cur.state != SaveState::saving)
            return false;
        cur = m;
        return true;
    });
    if (!stored)
        return fail(Errc::system, dom.name(), stored.error().step, stored.error().cause + kept);
    test_point("save:stored");
    report.image_bytes = facts->size;
    report.seconds = seconds_since(t0);
    return report;
}

Result<std::string> discard_save(const Connection& conn, const Paths& paths,
                                 std::string_view name) {
    auto dom = conn.lookup(name);
    if (!dom)
        return std::unexpected(dom.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto lock = lock_domain(*state, *dom, "cannot discard the save");
    if (!lock)
        return std::unexpected(lock.error());
    auto loaded = state->load(dom->uuid());
    if (!loaded)
        return std::unexpected(loaded.error());
    if (!*loaded)
        return fail(Errc::refused, dom->name(), "cannot discard the save",
                    "no vmupdate save is recorded for it");
    auto active = dom->is_active();
    if (!active)
        return std::unexpected(active.error());
    if (*active)
        return fail(Errc::refused, dom->name(), "cannot discard the save",
                    "the domain is running: 'vmupdate restore " + dom->name() +
                        "' finishes or undoes what is recorded");
    const Manifest& m = **loaded;
    // Only vmupdate's own image goes: without the RAM it is worthless, while a
    // stock image (someone's `virsh managedsave` since) still holds a whole guest.
    std::string outcome = "vmupdate save discarded";
    if (auto facts = read_save_image(m.image); facts && facts->ignore_shared.value_or(false)) {
        if (auto ok = dom->remove_managed_save(); !ok)
            return std::unexpected(ok.error());
        outcome += " with its managed-save image";
    } else if (facts) {
        outcome += "; its managed-save image is not vmupdate's and is kept";
    }
    if (auto ok = drop_save(paths, *state, m.uuid); !ok)
        return std::unexpected(ok.error());
    return outcome + "; 'virsh start " + dom->name() + "' boots it afresh";
}

namespace {

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

} // namespace

Result<RestoreReport> restore_domain(const Connection& conn, const Paths& paths,
                                     std::string_view name, const EventWatch& events) {
    auto t0 = Clock::now();
    auto dom = conn.lookup(name);
    if (!dom)
        return std::unexpected(dom.error());
    RestoreReport report{dom->name(), {}, {}, {}, {}};
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto lock = lock_domain(*state, *dom, "cannot restore");
    if (!lock)
        return std::unexpected(lock.error());
    auto loaded = state->load(dom->uuid());
    if (!loaded)
        return std::unexpected(loaded.error());
    auto active = dom->is_active();
    if (!active)
        return std::unexpected(active.error());
    if (!*loaded) {
        auto stock = dom->has_managed_save();
        return fail(Errc::refused, dom->name(), "cannot restore",
                    *active ? "the domain is running and has no vmupdate save"
                    : stock && *stock
                        ? "its managed-save image is not vmupdate's: start it with 'virsh start'"
                        : "no vmupdate save is recorded for it");
    }
    Manifest m = **loaded;
    auto backing = memory_backing_dir(paths.qemu_conf);
    if (!backing)
        return std::unexpected(backing.error());

    // A save interrupted while libvirt had not stopped the guest yet (the CLI, or
    // libvirtd, killed): the guest runs on, but x-ignore-shared may still be on.
    if (*active && m.state == SaveState::saving) {
        if (auto ok = set_capability(*dom, false); !ok)
            return fail(Errc::verify, dom->name(), "cannot undo an interrupted save",
                        ok.error().message() + "; the domain is running");
        if (auto ok = state->remove(m.uuid); !ok)
            return std::unexpected(ok.error());
        report.was_running = true;
        report.warnings.push_back("its save was interrupted while it kept running: x-ignore-shared "
                                  "is off again and there is nothing to restore");
        report.seconds = seconds_since(t0);
        return report;
    }

    std::vector<TimePoint> local{{"restore-command", now_us()}};
    if (!*active) {
        // Nothing has changed yet: every refusal here is exit 2, with image and RAM kept.
        auto image = check_image_for_restore(m);
        if (!image) {
            if (m.state == SaveState::saving && image.error().code == Errc::not_found)
                return fail(Errc::refused, dom->name(), "cannot restore",
                            "its save was interrupted before libvirt wrote the image, so its "
                            "device state is lost; 'virsh start " +
                                dom->name() + "' boots it afresh (and drops the preserved RAM)");
            if (image.error().code == Errc::not_found)
                return fail(Errc::refused, dom->name(), "cannot restore",
                            "its managed-save image " + m.image +
                                " is gone (libvirt deletes an image it cannot read): put it back "
                                "and run 'vmupdate restore' again, or drop the save with "
                                "'vmupdate discard " +
                                dom->name() + "'; the RAM is kept");
            return fail(Errc::refused, dom->name(), "cannot restore",
                        image.error().message() + "; the image and the RAM are kept");
        }
        if (auto ok = verify_preserved(dom->name(), m.ram); !ok)
            return fail(Errc::refused, dom->name(), ok.error().step,
                        ok.error().cause + "; the managed-save image and the RAM are kept");
        if (m.state == SaveState::saving) {
            report.warnings.push_back(image->unverified);
            auto done = state->update(m.uuid, [&](Manifest& cur) {
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
        }
        test_point("restore:checked");
        std::int64_t started = now_us();
        if (auto ok = dom->start(); !ok) {
            auto after = state->load(m.uuid);
            std::string hook = after && *after && !(*after)->last_error.empty()
                                   ? " (" + (*after)->last_error + ")"
                                   : "";
            // libvirt may have failed after QEMU loaded the image (libvirtd killed
            // mid-start): then the image is gone and the domain runs, paused.
            auto now = dom->is_active();
            std::string where =
                !now ? "; the connection to libvirt failed: once libvirtd is back, 'vmupdate "
                       "restore " +
                           dom->name() + "' finishes or retries the restore"
                : *now ? "; the domain runs all the same: 'vmupdate restore " + dom->name() +
                             "' finishes the restore"
                       : "; the managed-save image and the RAM are kept: fix the cause and run "
                         "'vmupdate restore' again";
            return fail(Errc::libvirt, dom->name(), "restore failed",
                        ok.error().cause + hook + where);
        }
        test_point("restore:started");
        if (auto resumed = events.wait_for(m.uuid, "resumed", 30s, started);
            resumed && m.paused_at_us > 0) {
            report.pause_us = resumed->at_us - m.paused_at_us;
            local.push_back({"resumed", resumed->at_us});
        } else
            report.warnings.push_back("no Resumed event from libvirt: pause time unknown");
    } else if (m.state != SaveState::restored && m.state != SaveState::restoring) {
        return fail(Errc::refused, dom->name(), "cannot restore", "the domain is already running");
    }

    // The helper marks the manifest once QEMU has loaded the state and the capability is off.
    auto deadline = Clock::now() + 10s;
    while (m.state != SaveState::restored && Clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
        auto again = state->load(m.uuid);
        if (again && *again)
            m = **again;
    }
    std::vector<TimePoint> timeline = m.timeline;
    timeline.insert(timeline.end(), local.begin(), local.end());
    add_domain_log_moments(paths, dom->name(), timeline);
    report.phases = pause_phases(timeline);
    if (m.state != SaveState::restored)
        report.warnings.push_back("the restore helper did not report completion" +
                                  (m.last_error.empty() ? std::string() : ": " + m.last_error));
    auto ram_dir = find_domain_ram_dir(*backing, dom->id(), dom->name());
    auto in_use = ram_dir ? verify_in_use(dom->name(), *ram_dir, m.ram)
                          : Result<void>(std::unexpected(ram_dir.error()));
    if (!in_use)
        return fail(Errc::verify, dom->name(), "restored, but its RAM is not the preserved RAM",
                    in_use.error().message());
    auto caps = monitor(*dom, "query-migrate-capabilities");
    auto on =
        caps ? capability_state(*caps, capability) : Result<bool>(std::unexpected(caps.error()));
    // A restore whose libvirt job was cut short (libvirtd killed after QEMU loaded
    // the state) leaves the domain paused: libvirt resumes only in the job it lost.
    if (m.state == SaveState::restored && dom->is_paused().value_or(false)) {
        if (!on || *on)
            (void)set_capability(*dom, false);
        if (auto ok = dom->resume(); !ok)
            return fail(Errc::libvirt, dom->name(), "restored, but still paused",
                        ok.error().cause + "; 'virsh resume " + dom->name() + "' resumes it");
        report.warnings.push_back("libvirt had left it paused (its restore job was interrupted): "
                                  "resumed");
    }
    if (!on || *on) {
        if (auto ok = set_capability(*dom, false); !ok)
            return fail(Errc::verify, dom->name(), "restored, but x-ignore-shared is still on",
                        ok.error().message());
        report.warnings.push_back("x-ignore-shared was still on: switched off");
    }
    test_point("restore:done");
    if (auto ok = state->remove(m.uuid); !ok)
        return std::unexpected(ok.error());
    if (report.pause_us)
        (void)state->record_pause(m.uuid, *report.pause_us);
    report.seconds = seconds_since(t0);
    return report;
}

namespace {

// Runs fn(connection, i) for i in [0, n) on up to `parallel` threads. Each extra
// thread opens its own connection: libvirtd serves at most max_client_requests
// (5 by default) calls of one client at a time, and a save or restore call lasts
// its whole operation. Each domain is guarded by its own lock.
template <typename R, typename Fn>
std::vector<Result<R>> run_parallel(const Connection& conn, size_t n, unsigned parallel, Fn fn) {
    std::vector<std::optional<Result<R>>> slots(n);
    std::atomic<size_t> next{0};
    auto uri = conn.uri();
    auto worker = [&](bool own_connection) {
        std::optional<Connection> own;
        if (own_connection && uri)
            if (auto c = Connection::open(*uri))
                own.emplace(std::move(*c));
        const Connection& use = own ? *own : conn;
        for (size_t i = next++; i < n; i = next++)
            slots[i].emplace(fn(use, i));
    };
    {
        std::vector<std::jthread> threads;
        for (unsigned t = 1; t < std::max(1u, parallel) && t < n; ++t)
            threads.emplace_back(worker, true);
        worker(false);
    }
    std::vector<Result<R>> out;
    out.reserve(n);
    for (auto& s : slots)
        out.push_back(std::move(*s));
    return out;
}

} // namespace

std::vector<Result<SaveReport>> save_domains(const Connection& conn, const Paths& paths,
                                             const std::vector<std::string>& names,
                                             const EventWatch& events, unsigned parallel) {
    return run_parallel<SaveReport>(
        conn, names.size(), parallel, [&](const Connection& c, size_t i) -> Result<SaveReport> {
            // A save under way finishes; none starts after an interrupt.
            if (interrupt_requested())
                return fail(Errc::refused, names[i], "not saved",
                            "interrupted before its save started; it is still running");
            return save_domain(c, paths, names[i], events);
        });
}

std::vector<Result<RestoreReport>> restore_domains(const Connection& conn, const Paths& paths,
                                                   const std::vector<std::string>& names,
                                                   const EventWatch& events, unsigned parallel,
                                                   bool undoing) {
    return run_parallel<RestoreReport>(
        conn, names.size(), parallel, [&](const Connection& c, size_t i) -> Result<RestoreReport> {
            if (interrupt_requested() && !undoing)
                return fail(Errc::refused, names[i], "not restored",
                            "interrupted before its restore started; it stays saved: "
                            "'vmupdate restore " +
                                names[i] + "' restores it");
            return restore_domain(c, paths, names[i], events);
        });
}

std::vector<Phase> pause_phases(const std::vector<TimePoint>& timeline) {
    // The moments in the order they happen, each naming the phase that ends there.
    static constexpr std::pair<std::string_view, std::string_view> order[] = {
        {"suspended", ""},
        {"qemu-terminating", "device state saved to the image"},
        {"stopped", "QEMU exit (libvirt's 200 ms kill poll), stop hooks"},
        {"saved", "vmupdate save checks"},
        {"restore-command", "between save and restore"},
        {"restore-begin", "vmupdate restore checks, libvirt reads the image"},
        {"qemu-starting", "libvirt prepares the domain (hooks)"},
        {"helper-connected", "QEMU launch and initialisation"},
        {"migration-setup", "libvirt probes and sets up the new QEMU"},
        {"loaded", "device state load"},
        {"resumed", "started hook, resume"},
    };
    std::vector<Phase> out;
    std::optional<std::int64_t> last;
    // A missing moment merges the two phases around it rather than misnaming one.
    std::string pending;
    for (const auto& [moment, phase] : order) {
        if (last && !phase.empty())
            pending += (pending.empty() ? "" : " + ") + std::string(phase);
        auto it = std::find_if(timeline.rbegin(), timeline.rend(),
                               [&](const TimePoint& t) { return t.name == moment && t.at_us > 0; });
        if (it == timeline.rend())
            continue;
        if (last && !pending.empty())
            out.push_back(Phase{pending, it->at_us - *last});
        pending.clear();
        last = it->at_us;
    }
    return out;
}

Result<std::vector<std::string>> running_managed_domains(const Connection& conn,
                                                         const Paths& paths) {
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    auto doms = conn.domains();
    if (!doms)
        return std::unexpected(doms.error());
    std::vector<std::string> out;
    for (const auto& d : *doms) {
        auto active = d.is_active();
        if (!active || !*active)
            continue;
        auto info = inspect(d, Definition::live, *policy);
        if (info && info->managed)
            out.push_back(d.name());
    }
    return out;
}

Result<std::vector<std::string>> saved_domains(const Paths& paths) {
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto all = state->list();
    if (!all)
        return std::unexpected(all.error());
    std::vector<std::string> out;
    for (const auto& m : *all)
        if (m.state == SaveState::saved || m.state == SaveState::restoring)
            out.push_back(m.uuid);
    return out;
}

Result<std::vector<DomainStatus>> domain_status(const Connection& conn, const Paths& paths) {
    auto doms = conn.domains();
    if (!doms)
        return std::unexpected(doms.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    auto backing = memory_backing_dir(paths.qemu_conf);
    std::optional<FsInfo> fs;
    if (backing)
        if (auto f = filesystem_of(*backing))
            fs = *f;
    std::vector<DomainStatus> out;
    for (const auto& d : *doms) {
        DomainStatus s;
        s.name = d.name();
        s.uuid = d.uuid();
        s.running = d.is_active().value_or(false);
        auto xml = s.running ? d.live_xml() : d.inactive_xml();
        if (auto info = xml ? inspect_domain(*xml, s.name, *policy)
                            : Result<DomainInfo>(std::unexpected(xml.error()))) {
            s.managed = info->managed;
            s.shared_file_ram = info->shared_file_ram;
            s.ram_bytes = info->memory_kib * 1024;
            s.unmanaged_why = why_unmanaged(*xml, *info, *policy);
            // Marked, but the running QEMU still has the RAM it started with.
            if (s.unmanaged_why.empty() && s.running && !info->discard.empty())
                s.unmanaged_why = "its running QEMU discards its RAM on exit (" + info->discard +
                                  "): shut it down and start it";
            else if (s.unmanaged_why.empty() && s.running && !info->shared_file_ram)
                s.unmanaged_why = "prepared: its RAM moves to a shared file at the next cold "
                                  "start (shut it down and start it)";
        }
        if (s.shared_file_ram && backing) {
            s.backing_dir = *backing;
            if (fs) {
                s.fs_type = fs->fstype;
                s.fs_kind = std::string(to_string(fs->kind));
            }
        }
        if (is_canonical_uuid(s.uuid)) {
            if (auto m = state->load(s.uuid); m && *m) {
                s.save_state = std::string(to_string((*m)->state));
                s.last_error = (*m)->last_error;
            }
            if (auto p = state->last_pause(s.uuid); p && *p)
                s.last_pause_us = **p;
        }
        if (d.has_managed_save().value_or(false) && check_domain_name(s.name))
            s.image_bytes = file_size(managed_save_image(paths, s.name));
        out.push_back(std::move(s));
    }
    return out;
}

namespace {
constexpr std::string_view hook_link_name = "50-vmupdate";
}

std::string apparmor_blocks_hook(std::string_view loaded_profiles, std::string_view hook_realpath) {
    // libvirt's profiles for its daemons (usr.sbin.libvirtd, usr.sbin.virtqemud)
    // allow exec of /usr/sbin/*, /usr/bin/*, /sbin/*, /bin/* (PUx) and
    // /etc/libvirt/hooks/** (ix), nothing else a hook could live in. AppArmor
    // checks the resolved path, so the link in qemu.d does not help.
    std::string daemon;
    for (std::string_view d : {"libvirtd", "virtqemud"}) {
        std::string enforced = "\n" + std::string(d) + " (enforce)";
        if (("\n" + std::string(loaded_profiles)).find(enforced) != std::string::npos)
            daemon = d;
    }
    if (daemon.empty())
        return "";
    std::filesystem::path p(hook_realpath);
    const std::string dir = p.parent_path().string();
    if (dir == "/usr/sbin" || dir == "/usr/bin" || dir == "/sbin" || dir == "/bin" ||
        hook_realpath.starts_with("/etc/libvirt/hooks/"))
        return "";
    return "AppArmor confines " + daemon + ", whose profile lets it run hooks only from " +
           "/usr/sbin, /usr/bin or /etc/libvirt/hooks, not " + std::string(hook_realpath) +
           ": every domain start would fail; install the hook and vmupdate-restore-helper " +
           "in /usr/sbin (the Debian package does)";
}

Result<void> check_hook_installable(const Paths& paths, const std::string& hook_executable) {
    if (access(hook_executable.c_str(), X_OK) != 0)
        return fail_errno(errno, hook_executable, "cannot install the hook");
    std::error_code real_ec;
    const auto real = std::filesystem::canonical(hook_executable, real_ec);
    // No profiles file: AppArmor is off (or securityfs not mounted), nothing to check.
    if (auto profiles = read_file(paths.apparmor_profiles, 1 << 20); profiles && !real_ec)
        if (auto why = apparmor_blocks_hook(*profiles, real.string()); !why.empty())
            return fail(Errc::refused, hook_executable, "cannot install the hook", why);
    return {};
}

Result<std::string> install_hook(const Paths& paths, const std::string& hook_executable) {
    if (auto ok = check_hook_installable(paths, hook_executable); !ok)
        return std::unexpected(ok.error());
    std::error_code ec;
    std::filesystem::create_directories(paths.hooks_dir, ec);
    if (ec)
        return fail(Errc::system, paths.hooks_dir, "cannot create the hook directory",
                    ec.message());
    std::string link = paths.hooks_dir + "/" + std::string(hook_link_name);
    std::string tmp = link + ".tmp";
    std::filesystem::remove(tmp, ec);
    std::filesystem::create_symlink(std::filesystem::absolute(hook_executable), tmp, ec);
    if (ec)
        return fail(Errc::system, link, "cannot link the hook", ec.message());
    if (rename(tmp.c_str(), link.c_str()) != 0)
        return fail_errno(errno, link, "cannot install the hook");
    return link;
}

Result<std::string> uninstall_hook(const Paths& paths) {
    std::string link = paths.hooks_dir + "/" + std::string(hook_link_name);
    if (unlink(link.c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, link, "cannot remove the hook");
    return link;
}

} // namespace vmupdate
