// Taking handed-over RAM back after the kexec (or after a handover that never
// reached one): each file the record names whose preserved file is gone is
// retrieved from the incoming LUO session (or, after a failed try, from the
// holder that kept it: handover_holder.hpp) and moved back into a preserved
// file, and the manifests point at the new files.
#include "fsutil.hpp"
#include "handover_holder.hpp"
#include "handover_record.hpp"
#include "luo.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace vmupdate {
namespace {

using handover::Entry;

// The entries whose preserved file is gone. The manifests say which preserved
// files exist now: those never unlinked (the handover was cut short before the
// kexec) need nothing, nor those of a save discarded since.
Result<std::vector<const Entry*>> unlinked_entries(const StateDir& state,
                                                   const std::vector<Entry>& entries) {
    std::vector<const Entry*> missing;
    for (const auto& e : entries) {
        auto m = state.load(e.uuid);
        if (!m)
            return std::unexpected(m.error());
        if (!*m)
            continue; // the domain's save was discarded since
        auto it = std::find_if((*m)->ram.begin(), (*m)->ram.end(), [&](const RamFile& f) {
            return f.name == e.ram.name && f.preserved == e.ram.preserved;
        });
        if (it == (*m)->ram.end())
            continue;
        if (verify_preserved(e.domain, {*it}))
            continue;
        missing.push_back(&e);
    }
    return missing;
}

// Why the RAM of `missing` cannot come back when there is no incoming session.
Error not_handed_over(Error err, const std::vector<const Entry*>& missing) {
    err.code = Errc::ram_lost; // not "nothing changed" (exit 2), whatever the LUO said
    err.cause += "; the RAM handed over for " + handover::ram_names(missing) +
                 " is not here (the host did not kexec with LUO, or host-update was "
                 "killed before it): those domains cannot be restored";
    return err;
}

// Where each missing file's RAM is now: with a holder left by an earlier try
// that failed, else in the incoming LUO session (retrieved whole, then the
// session is finished: upstream LUO gives a session out once per boot).
Result<std::map<std::uint64_t, Fd>> find_ram(const Paths& paths,
                                             const std::vector<const Entry*>& missing,
                                             bool& from_holder, std::optional<Error>& lost) {
    auto held = handover::open_held_files(paths);
    if (!held) {
        Error err = held.error();
        err.code = Errc::ram_lost;
        err.cause += "; the RAM of domains that a failed write-back left with it is gone";
        return std::unexpected(err);
    }
    from_holder = held->has_value();
    if (from_holder)
        return std::move(**held);
    auto dev = LuoDevice::open(paths.liveupdate_dev);
    auto session = dev ? dev->retrieve_session(std::string(handover_session))
                       : Result<LuoSession>(std::unexpected(dev.error()));
    if (!session)
        return std::unexpected(not_handed_over(session.error(), missing));
    std::map<std::uint64_t, Fd> out;
    for (const Entry* e : missing) {
        auto memfd = session->retrieve(e->token);
        if (memfd)
            out.emplace(e->token, std::move(*memfd));
        else if (!lost)
            lost = not_handed_over(memfd.error(), {e});
    }
    // Best effort: closing the session ends it as well; all that mattered is out.
    (void)session->finish();
    return out;
}

// Checks the size of `e`'s RAM in `fd` and moves it back into a preserved file.
Result<void> reclaim_file(const StateDir& state, const Entry& e, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return fail_errno(errno, e.domain, "cannot examine the RAM handed over");
    if (static_cast<std::uint64_t>(st.st_size) != e.ram.size)
        return fail(Errc::ram_lost, e.domain, "RAM handed over for " + e.ram.name,
                    "is " + std::to_string(st.st_size) + " bytes, " + std::to_string(e.ram.size) +
                        " were handed over: not the guest's");
    auto ok = handover::write_back(state, e, fd);
    // A mismatch means the RAM is not the guest's: it must never be linked.
    if (!ok && ok.error().code == Errc::verify)
        ok.error().code = Errc::ram_lost;
    return ok;
}

// Counts a file written back.
void count(ReclaimReport& report, const Entry& e) {
    ++report.files;
    report.bytes += e.ram.size;
    if (std::find(report.uuids.begin(), report.uuids.end(), e.uuid) == report.uuids.end())
        report.uuids.push_back(e.uuid);
}

// Writes every file of `missing` back; what fails stays held by a holder.
Result<void> reclaim_files(const Paths& paths, const StateDir& state,
                           const std::vector<const Entry*>& missing, ReclaimReport& report) {
    bool from_holder = false;
    std::optional<Error> first;
    auto ram = find_ram(paths, missing, from_holder, first);
    if (!ram)
        return std::unexpected(ram.error());
    std::vector<handover::HeldFile> keep;
    std::vector<const Entry*> kept;
    for (const Entry* e : missing) {
        auto it = ram->find(e->token);
        if (it == ram->end()) {
            if (!first)
                first =
                    Error{Errc::ram_lost, e->domain, "cannot write RAM " + e->ram.name + " back",
                          "it is neither in the LUO session nor with a holder"};
            continue;
        }
        auto ok = reclaim_file(state, *e, it->second.get());
        if (ok) {
            count(report, *e);
            continue;
        }
        if (!first)
            first = ok.error();
        if (ok.error().code != Errc::ram_lost) {
            keep.push_back({e->token, it->second.get()});
            kept.push_back(e);
        }
    }
    if (!first)
        return {};
    if (!keep.empty())
        *first = handover::with_holder(*first, handover::ram_names(kept),
                                       from_holder ? handover::holder_pid(paths)
                                                   : handover::keep_held(paths, keep));
    first->cause += "; " + std::to_string(report.files) + " of " + std::to_string(missing.size()) +
                    " RAM files were written back";
    return std::unexpected(*first);
}

} // namespace

std::vector<std::string> domains_awaiting_write_back(const Paths& paths) {
    std::vector<std::string> out;
    auto text = read_file_if_exists(handover::record_path(paths), 1 << 26);
    if (!text || !*text)
        return out;
    auto entries = handover::parse_record(**text, handover::record_path(paths));
    auto state = StateDir::open(paths.state_dir);
    if (!entries || !state)
        return out;
    auto missing = unlinked_entries(*state, *entries);
    if (!missing)
        return out;
    for (const Entry* e : *missing)
        if (std::find(out.begin(), out.end(), e->domain) == out.end())
            out.push_back(e->domain);
    return out;
}

Result<std::optional<ReclaimReport>> reclaim_handed_over_ram(const Paths& paths) {
    const std::string path = handover::record_path(paths);
    // The common case, and the only one without root: nothing was handed over.
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT)
        return std::nullopt;
    auto lock = handover::lock_handover(paths);
    if (!lock)
        return std::unexpected(lock.error());
    auto text = read_file_if_exists(path, 1 << 26); // ~4 MiB of checksums per TiB
    if (!text)
        return std::unexpected(text.error());
    if (!*text)
        return std::nullopt;
    auto entries = handover::parse_record(**text, path);
    if (!entries)
        return std::unexpected(entries.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto t0 = std::chrono::steady_clock::now();
    ReclaimReport report;
    auto missing = unlinked_entries(*state, *entries);
    if (!missing)
        return std::unexpected(missing.error());
    if (!missing->empty())
        if (auto ok = reclaim_files(paths, *state, *missing, report); !ok)
            return std::unexpected(ok.error());
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, path, "cannot remove the RAM handover record");
    // A holder of an earlier try holds nothing needed any more.
    if (auto ok = handover::release_holder(paths); !ok)
        return std::unexpected(ok.error());
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
}

} // namespace vmupdate
