// Domain XML: turning a libvirt domain definition into one whose RAM survives
// QEMU (a shared file mapping), and reading what vmupdate needs from one.
#pragma once

#include "vmupdate/config.hpp"
#include "vmupdate/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// XML namespace of vmupdate's element in a domain's <metadata>.
inline constexpr std::string_view metadata_namespace = "urn:vmupdate:domain:1";

/// A translated domain definition.
struct Translation {
    std::string name;                 ///< the domain's <name>
    std::string xml;                  ///< the preservable definition
    std::vector<std::string> changes; ///< what was changed, one phrase each; empty when nothing was
};

/// Rewrites a domain definition so that its RAM is a shared file mapping that can
/// outlive QEMU, and marks it as managed by vmupdate. Idempotent. `source` names
/// the input in errors until the domain's name is known. Refuses (Errc::refused)
/// domains whose RAM or devices cannot be preserved; Errc::invalid_input for input
/// that is not a libvirt domain.
[[nodiscard]] Result<Translation> translate_domain(std::string_view xml, std::string_view source);

/// What vmupdate needs to know about a domain definition.
struct DomainInfo {
    std::string name;
    std::string uuid;           ///< empty when the definition has none
    std::string type;           ///< qemu, kvm, ...
    std::uint64_t memory_kib{}; ///< <memory>, or the sum of the NUMA cells
    bool managed{};             ///< vmupdate's: marked, or preservable as is under file-backed
    bool marked{};              ///< carries vmupdate's metadata element
    bool shared_file_ram{};     ///< memoryBacking source file + shared access
    /// Why QEMU would punch the RAM out of its file on exit (<discard/>, a NUMA
    /// cell or memory device with discard='yes'); empty when nothing would.
    std::string discard;
    int numa_cells{};    ///< number of <cell> elements (0: no NUMA)
    int id{-1};          ///< <domain id=...> of a running domain, -1 when absent
    std::string machine; ///< <os><type machine=...>
    /// Names of the RAM files libvirt has QEMU create in the domain's directory
    /// under memory_backing_dir: one per memory backend ("pc.ram", "ram-node0",
    /// "memdimm0", ...); only these are guest RAM, whatever else the QEMU user
    /// puts or renames there.
    std::vector<std::string> ram_files;
};

/// Reads a domain definition. Under ManagePolicy::file_backed an unmarked domain
/// counts as managed when translate_domain would change nothing but the mark.
[[nodiscard]] Result<DomainInfo> inspect_domain(std::string_view xml, std::string_view source,
                                                ManagePolicy policy = ManagePolicy::marked);

/// Why vmupdate does not manage a domain under `policy`, and what would make it
/// (empty when it does): for `vmupdate status`.
[[nodiscard]] std::string why_unmanaged(std::string_view xml, const DomainInfo& info,
                                        ManagePolicy policy);

/// Adds a private QMP monitor to a domain XML (through <qemu:commandline>),
/// replacing an earlier one: QEMU connects to `socket_path`, where root listens.
[[nodiscard]] Result<std::string> add_private_monitor(std::string_view xml,
                                                      std::string_view socket_path);

/// The restoring QEMU's XML and what was changed in it.
struct RestoreXml {
    std::string xml;                  ///< the domain XML for the restoring QEMU
    std::vector<std::string> changes; ///< e.g. "<memoryBacking><discard/> removed"
};

/// Drops from a restore's domain XML what would discard the preserved RAM on a
/// failed restore (<discard/>, discard='yes') or preallocate it (allocation
/// mode='immediate'); the guest ABI is unchanged.
[[nodiscard]] Result<RestoreXml> restoring_qemu_xml(std::string_view xml);

/// Removes vmupdate's private monitor from a domain XML; nullopt when it had none.
[[nodiscard]] Result<std::optional<std::string>> strip_private_monitor(std::string_view xml);

/// Converts a libvirt scaled integer (value + unit attribute; KiB when the unit is
/// empty) to KiB, rounding up. nullopt for an unknown unit or overflow.
[[nodiscard]] std::optional<std::uint64_t> to_kib(std::string_view value, std::string_view unit);

/// Checks that a domain name is safe to appear in a file name: non-empty, at most
/// 200 bytes, no '/', no control characters, not "." or "..".
[[nodiscard]] Result<void> check_domain_name(std::string_view name);

} // namespace vmupdate
