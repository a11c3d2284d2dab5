// The hook at a domain's start and stop: holding its RAM (started), putting
// preserved RAM in place or refusing a start that would lose a save (start), and
// dropping the RAM when nothing needs it (release).
#include "hold_ram.hpp"
#include "hook_ops.hpp"
#include "process_mark.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/pool_usage.hpp"
#include "vmupdate/ram.hpp"

namespace vmupdate {
namespace {

// A cold start on a pmem pool: refuse a domain whose RAM does not fit, with the
// pool and the sizes, rather than let QEMU die of SIGBUS when the pool fills.
void check_fits(HookContext& c, const DomainInfo& info) {
    auto backing = memory_backing_dir(c.paths.qemu_conf);
    if (!backing)
        return;
    auto usage = pool_usage(*backing);
    if (!usage || usage->kind != FsKind::dax)
        return;
    if (auto msg = would_not_fit(usage->free, info.memory_kib * 1024, usage->mount_point))
        c.refuse(Error{Errc::refused, info.name, "cannot start on the pmem pool", *msg});
}

} // namespace

// started: hold a link to every RAM file from now on, so that no stop can free it.
void on_started(HookContext& c, const DomainInfo& info, const StateDir& state) {
    auto manifest = state.load(info.uuid);
    if (manifest && *manifest &&
        ((*manifest)->state == SaveState::saving || (*manifest)->state == SaveState::saved)) {
        c.log("a save is recorded: preserved RAM left as it is");
        return;
    }
    auto backing = memory_backing_dir(c.paths.qemu_conf);
    if (!backing) {
        c.log(backing.error().message());
        return;
    }
    auto held = hold_domain_ram(*backing, info.uuid, info.id, info.name, info.ram_files);
    if (!held) {
        c.log("RAM not preserved: " + held.error().message());
        return;
    }
    for (const auto& f : held->files)
        c.log("holding " + f.name + " (" + std::to_string(f.size) + " bytes, inode " +
              std::to_string(f.inode) + ") as " + f.preserved);
}

// start begin: put the preserved RAM where the restoring QEMU will open it.
void on_start(HookContext& c, const DomainInfo& info, const StateDir& state) {
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
void on_release(HookContext& c, const DomainInfo& info, const StateDir& state) {
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

} // namespace vmupdate
