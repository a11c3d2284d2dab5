// Keeping guest RAM whose write-back failed: a memfd retrieved from LUO (or a
// file taken back before a kexec) lives only while some process holds it, and
// upstream LUO hands a session over once per boot. So when a write-back fails,
// the RAM goes to a holder process, `vmupdate ram-hold`, which reopens the
// descriptors from its starter (/proc/PID/fd/N), says what it holds in
// run_dir/ram-held.json and waits; the next `vmupdate restore` reopens them
// from the holder the same way, writes the RAM back and lets the holder go.
// Private header.
#pragma once

#include "fd.hpp"
#include "handover_record.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/paths.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vmupdate::handover {

/// A file whose RAM is still to be written back, and this process's descriptor of it.
struct HeldFile {
    std::uint64_t token{}; ///< its token in the handover record
    int fd{-1};            ///< open in this process
};

/// What every error about RAM left with a holder says (and what a caller that
/// only sees the text, stop_handover_holder, looks for).
inline constexpr std::string_view held_marker = "is still held by vmupdate ram-hold";

/// "domain (file), ..." of `entries`, for messages.
[[nodiscard]] std::string ram_names(const std::vector<const Entry*>& entries);

/// `err` with what became of the RAM of `names`: held by `holder` and how to
/// retry (Errc::ram_held, unless it already is ram_lost), or, when no holder
/// keeps it, lost when this process exits (Errc::ram_lost).
[[nodiscard]] Error with_holder(Error err, const std::string& names, const Result<pid_t>& holder);

/// run_dir/ram-held.json: the holder's PID and what it holds.
[[nodiscard]] std::string held_record_path(const Paths& paths);

/// Starts a holder of `files` (vmupdate at paths.self_exe, else this process's
/// binary; as a transient systemd service where systemd runs, so that no unit's
/// end kills it) and waits until it holds every one; its PID.
[[nodiscard]] Result<pid_t> keep_held(const Paths& paths, const std::vector<HeldFile>& files);

/// The files a holder holds, by token, reopened from it and checked to be the
/// very files it recorded; nullopt without a holder record; Errc::ram_lost when
/// the recorded holder is gone (the RAM went with it).
[[nodiscard]] Result<std::optional<std::map<std::uint64_t, Fd>>>
open_held_files(const Paths& paths);

/// The PID of the holder the record names.
[[nodiscard]] Result<pid_t> holder_pid(const Paths& paths);

/// Lets the holder go once everything it held was written back: its record is
/// removed, then it is told to exit.
[[nodiscard]] Result<void> release_holder(const Paths& paths);

} // namespace vmupdate::handover
