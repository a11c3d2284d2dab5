// /proc/self/mountinfo, parsed once for the modules that need mounts (host
// filesystem classification, pmem pools). Private header.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// One line of mountinfo: "id parent maj:min root mount-point options [optional...] - fstype source
/// super-options".
struct MountEntry {
    std::string device;      ///< "maj:min"
    std::string mount_point; ///< unescaped
    std::string options;     ///< per-mount options
    std::string fstype;
    std::string source;        ///< unescaped
    std::string super_options; ///< superblock options
    std::string id;            ///< the mount ID (statx's stx_mnt_id)
};

/// Every well-formed line of a mountinfo text, in order (later mounts stack on earlier ones).
[[nodiscard]] std::vector<MountEntry> parse_mountinfo(std::string_view text);

/// Whether a comma-separated option list turns DAX on for every file ("dax", "dax=always").
[[nodiscard]] bool has_dax_option(std::string_view options);

/// Splits at every `sep`, keeping empty fields.
[[nodiscard]] std::vector<std::string> split(std::string_view s, char sep);

} // namespace vmupdate
