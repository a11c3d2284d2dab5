// What a RAM handover and its reclaim share: the record of what went under
// which token (state_dir/handover.json), the lock that serialises them, and
// writing one file's RAM back into a preserved file. Private header.
//
// The handover's crash story. The record is written before any preserved file
// is unlinked and removed only once every file is a preserved file again;
// between the two the RAM of a file lives in an open memfd: the handing
// process's until the kexec, the LUO session's across it, and reclaim's until
// it is written back. A SIGKILL of host-update in that window, or of the
// reclaim before it wrote a file back, loses that RAM (the kernel frees a
// session whose file is closed); SIGINT, SIGTERM and SIGHUP are only flags in
// the CLI. The record lets a later `vmupdate restore` say which domains that
// was, instead of failing on a missing file without a reason.
#pragma once

#include "fd.hpp"
#include "preserved_file.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/paths.hpp"
#include "vmupdate/state.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace vmupdate::handover {

/// state_dir/handover.json.
[[nodiscard]] std::string record_path(const Paths& paths);

/// How long lock_handover waits for another holder by default.
inline constexpr std::chrono::milliseconds handover_lock_wait{5000};

/// Takes the lock that serialises handovers and reclaims (the restore unit and
/// an operator's `vmupdate restore` may run at once); held while the Fd lives.
/// Waits at most `wait`, less when interrupted; then Errc::timeout naming the
/// holder (its PID and unit, which it writes into the lock file) and what to do.
[[nodiscard]] Result<Fd> lock_handover(const Paths& paths,
                                       std::chrono::milliseconds wait = handover_lock_wait);

/// The running kernel's release ("" when uname fails).
[[nodiscard]] std::string running_release();

/// One handed-over file: the manifest entry it came from, its token and owner.
struct Entry {
    std::string uuid, domain; ///< the domain it belongs to
    RamFile ram;              ///< its manifest entry
    std::uint64_t token{};    ///< its token in the LUO session
    FileOwner owner;          ///< owner and mode a rebuilt file gets
    std::string sums;         ///< chunk_sums of its RAM at hand-over ("": none recorded)
};

/// The record's text for `entries` handed over by kernel `release`.
[[nodiscard]] std::string format_record(const std::string& release,
                                        const std::vector<Entry>& entries);

/// The entries of a record's `text`; errors name `path`.
[[nodiscard]] Result<std::vector<Entry>> parse_record(const std::string& text,
                                                      const std::string& path);

/// Moves the RAM of `e` from `fd` back into a new preserved file, checked
/// against e.sums, and points the domain's manifest at it. On failure `fd`
/// still holds all of the RAM (rebuild_preserved_file), unless Errc::ram_lost.
[[nodiscard]] Result<void> write_back(const StateDir& state, const Entry& e, int fd);

} // namespace vmupdate::handover
