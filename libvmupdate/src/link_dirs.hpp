// vmupdate's directories of held RAM links (<backing>/vmupdate/<uuid>), reached
// without following links and checked to be root's and closed to others, and
// the identity checks of the files in them: what RAM preservation (ram.cpp) and
// the handover's single files (preserved_file.cpp) both stand on. Private header.
//
// The QEMU user owns memory_backing_dir (libvirt chowns it at every daemon start)
// and every <id>-<name> directory in it, and may plant links or swap entries
// there at any moment. So nothing below the backing directory is reached by a
// path: each step goes from a directory descriptor opened without following
// links, and vmupdate's own directories must be root's and closed to others,
// after which what they hold can change only through root.
#pragma once

#include "fd.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

namespace vmupdate::held {

/// What identifies a RAM file: device, inode and size.
struct Identity {
    std::uint64_t device, inode, size;
};

/// The identity of a stat result.
[[nodiscard]] Identity identity_of(const struct stat& st);

/// The regular file `name` in `dir`, never through a link; errors name `domain`,
/// `what` and `path`.
[[nodiscard]] Result<Identity> identity_at(int dir, const std::string& name,
                                           const std::string& path, std::string_view domain,
                                           std::string_view what);

/// Whether `id` is the recorded file `f`; the error says what differs.
[[nodiscard]] Result<void> matches(const RamFile& f, const Identity& id, std::string_view domain,
                                   const std::string& path);

/// Whether `n` names an entry of a directory (not ".", "..", empty or with a '/').
[[nodiscard]] bool safe_file_name(std::string_view n);

/// A path cut at its last '/'.
struct Split {
    std::string dir, name;
};

/// `path` cut into its directory and last name (trailing '/' ignored).
[[nodiscard]] Split split(std::string_view path);

/// A preserved directory <backing>/vmupdate/<uuid>, opened level by level.
struct HeldDir {
    Fd top;      ///< <backing>/vmupdate
    Fd dir;      ///< <backing>/vmupdate/<uuid>
    Split where; ///< top's path and the <uuid> name
};

/// Opens `preserved`; both vmupdate levels must be root's with mode 0700
/// (created so when `create`).
[[nodiscard]] Result<HeldDir> open_held(const std::string& preserved, bool create);

/// One preserved file, opened through root's directory and checked to be the
/// file recorded (device, inode, size).
struct VerifiedFile {
    HeldDir held;     ///< its directory
    std::string name; ///< its name there
};

/// The preserved file of `f`, verified; errors name `domain`.
[[nodiscard]] Result<VerifiedFile> open_verified(std::string_view domain, const RamFile& f);

/// Every recorded file, verified, before anything is done with any of them.
[[nodiscard]] Result<std::vector<VerifiedFile>> open_all_verified(std::string_view domain,
                                                                  const std::vector<RamFile>& ram);

} // namespace vmupdate::held
