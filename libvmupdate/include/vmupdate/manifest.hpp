// The save manifest: what vmupdate knows about one saved domain, enough to find
// its preserved RAM and managed-save image again after a host update.
#pragma once

#include "vmupdate/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// Namespace URI of the manifest document (xml-schemas/manifest.rng).
inline constexpr std::string_view manifest_namespace = "urn:vmupdate:manifest:1";

/// Where a domain is in its save/restore cycle.
enum class SaveState {
    saving,    ///< RAM is being preserved and the managed save is under way
    saved,     ///< the managed-save image and the RAM files are complete
    restoring, ///< a restore attempt (Manifest::attempt) is under way
    restored,  ///< the domain runs again; the preserved RAM may be released
};

/// Name of a SaveState as written in the manifest ("saving", "saved", ...).
[[nodiscard]] std::string_view to_string(SaveState state);

/// The SaveState named `text`, or nullopt for an unknown name.
[[nodiscard]] std::optional<SaveState> parse_save_state(std::string_view text);

/// One guest RAM file (pc.ram, ram-node0, memdimm0, ...).
struct RamFile {
    std::string name; ///< file name in libvirt's <memory_backing_dir>/<id>-<name>/, e.g. "pc.ram"
    std::string preserved; ///< absolute path of vmupdate's hard link that keeps the RAM alive
    std::uint64_t device{}, inode{}, size{}; ///< st_dev, st_ino and st_size when preserved

    friend bool operator==(const RamFile&, const RamFile&) = default;
};

/// A moment of a save or restore, for the phase breakdown ("stopped", "loaded", ...).
struct TimePoint {
    std::string name;     ///< lowercase letters and dashes
    std::int64_t at_us{}; ///< CLOCK_REALTIME microseconds

    friend bool operator==(const TimePoint&, const TimePoint&) = default;
};

/// One saved domain.
struct Manifest {
    std::string uuid, name;             ///< domain UUID (canonical lowercase 36-char form) and name
    SaveState state{SaveState::saving}; ///< where the save/restore cycle stands
    std::vector<RamFile> ram;           ///< every guest RAM file, all preserved
    std::string image;                  ///< managed-save image path
    std::uint64_t image_size{};         ///< bytes, once the save completed
    std::string image_sha256;           ///< lowercase hex
    std::string qemu_version, kernel_version, machine_type; ///< at save time
    std::int64_t saved_at_us{}; ///< CLOCK_REALTIME microseconds when the save completed (0 unknown)
    std::int64_t paused_at_us{};     ///< when libvirt reported the guest Suspended (0 unknown)
    std::vector<TimePoint> timeline; ///< moments of the save and the restore, in order
    std::string attempt;             ///< restore attempt id while state == restoring
    std::string last_error;          ///< why the last restore failed, for `vmupdate status`

    friend bool operator==(const Manifest&, const Manifest&) = default;
};

/// Whether `uuid` is in canonical form: 36 characters, lowercase hex digits and
/// dashes in the 8-4-4-4-12 positions (as libvirt prints UUIDs).
[[nodiscard]] bool is_canonical_uuid(std::string_view uuid);

/// Reads a manifest document; `source` names it in errors (a file path). Every
/// failure is Errc::invalid_input.
[[nodiscard]] Result<Manifest> parse_manifest(std::string_view xml, std::string_view source);

/// Writes a manifest document in a stable, readable form. Characters XML cannot
/// carry (invalid UTF-8, control characters) are written as U+FFFD.
[[nodiscard]] std::string format_manifest(const Manifest& manifest);

} // namespace vmupdate
