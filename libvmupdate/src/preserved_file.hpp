// Single preserved RAM files as open files, for handing guest RAM to the next
// kernel in memfds (handover.cpp) and taking it back. Private header; the
// implementation (preserved_file.cpp) shares link_dirs.hpp with ram.cpp.
#pragma once

#include "fd.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <string_view>
#include <sys/types.h>

namespace vmupdate {

/// Owner and permissions a rebuilt RAM file gets (those of the original: QEMU's).
struct FileOwner {
    uid_t uid{};
    gid_t gid{};
    mode_t mode{};
};

/// Opens the preserved file of `f` read-write through root's directory, without
/// following links; refuses unless it is the recorded file (device, inode, size)
/// with no link but vmupdate's (st_nlink 1). Fills `owner` from it.
[[nodiscard]] Result<Fd> open_preserved_file(std::string_view domain, const RamFile& f,
                                             FileOwner& owner);

/// Flushes the preserved file of `f` to stable storage (host-update, before
/// the kexec), opened as open_preserved_file does but read-only and without
/// blocking: a FIFO, a link or another file in its place is refused.
[[nodiscard]] Result<void> sync_preserved_file(std::string_view domain, const RamFile& f);

/// Removes vmupdate's link to `f`; the RAM then lives only as long as an open
/// file holds it.
[[nodiscard]] Result<void> unlink_preserved_file(std::string_view domain, const RamFile& f);

/// Moves the content of `src` (f.size bytes) into a new file at f.preserved
/// (creating root's directories), owned as `owner` says, checked against
/// `sums` (chunk_sums at hand-over; empty: unchecked). Zero pages stay holes;
/// `src` is hole-punched behind the copy, so the RAM is never held twice, and
/// on any failure all of it is moved back into `src` (move_ram), so a later try
/// starts from the whole RAM; Errc::ram_lost only when that failed too. Refuses
/// when something is already at f.preserved or its filesystem lacks the room.
/// Returns f with the new file's device and inode.
[[nodiscard]] Result<RamFile> rebuild_preserved_file(std::string_view domain, int src,
                                                     const RamFile& f, const FileOwner& owner,
                                                     std::string_view sums = {});

} // namespace vmupdate
