// Taking handed-over RAM back after the kexec (or after a handover that never
// reached one): each file the record names whose preserved file is gone is
// retrieved from the incoming LUO session and written back into a preserved
// file, and the manifests point at the new files.
#include "fsutil.hpp"
#include "handover_record.hpp"
#include "luo.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
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
    std::string names;
    for (const Entry* e : missing)
        names += (names.empty() ? "" : ", ") + e->domain + " (" + e->ram.name + ")";
    err.code = Errc::ram_lost; // not "nothing changed" (exit 2), whatever the LUO said
    err.cause += "; the RAM handed over for " + names +
                 " is not here (the host did not kexec with LUO, or host-update was "
                 "killed before it): those domains cannot be restored";
    return err;
}

// Retrieves the file of `e` from `session`, checks its size and writes it back.
Result<void> reclaim_file(const StateDir& state, const LuoSession& session, const Entry& e) {
    auto memfd = session.retrieve(e.token);
    if (!memfd)
        return std::unexpected(memfd.error());
    struct stat st {};
    if (::fstat(memfd->get(), &st) != 0)
        return fail_errno(errno, e.domain, "cannot examine the RAM handed over");
    if (static_cast<std::uint64_t>(st.st_size) != e.ram.size)
        return fail(Errc::verify, e.domain, "RAM handed over for " + e.ram.name,
                    "is " + std::to_string(st.st_size) + " bytes, " + std::to_string(e.ram.size) +
                        " were handed over");
    return handover::write_back(state, e, memfd->get());
}

// Counts a file written back.
void count(ReclaimReport& report, const Entry& e) {
    ++report.files;
    report.bytes += e.ram.size;
    if (std::find(report.uuids.begin(), report.uuids.end(), e.uuid) == report.uuids.end())
        report.uuids.push_back(e.uuid);
}

// Writes every file of `missing` back from the incoming session, then ends it.
Result<void> reclaim_files(const Paths& paths, const StateDir& state,
                           const std::vector<const Entry*>& missing, ReclaimReport& report) {
    auto dev = LuoDevice::open(paths.liveupdate_dev);
    auto session = dev ? dev->retrieve_session(std::string(handover_session))
                       : Result<LuoSession>(std::unexpected(dev.error()));
    if (!session)
        return std::unexpected(not_handed_over(session.error(), missing));
    // One file failing must not cost the others: the session frees whatever
    // is not retrieved once it is closed, so go on with the rest.
    std::optional<Error> first;
    for (const Entry* e : missing) {
        if (auto ok = reclaim_file(state, *session, *e); ok)
            count(report, *e);
        else if (!first)
            first = ok.error();
    }
    if (first) {
        first->cause += "; " + std::to_string(report.files) + " of " +
                        std::to_string(missing.size()) + " RAM files were written back";
        return std::unexpected(*first);
    }
    return session->finish();
}

} // namespace

Result<std::optional<ReclaimReport>> reclaim_handed_over_ram(const Paths& paths) {
    const std::string path = handover::record_path(paths);
    // The common case, and the only one without root: nothing was handed over.
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT)
        return std::nullopt;
    auto lock = handover::lock_handover(paths);
    if (!lock)
        return std::unexpected(lock.error());
    auto text = read_file_if_exists(path, 1 << 22);
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
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
}

} // namespace vmupdate
