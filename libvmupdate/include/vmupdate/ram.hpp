// Guest RAM preservation: libvirt deletes a domain's RAM directory whenever the
// domain stops, so vmupdate holds a hard link to every RAM file in a directory
// of its own on the same filesystem, and links them back when QEMU restarts.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// libvirt's short name of a running domain, "<id>-<name cut to 20 characters>"
/// (virDomainDefGetShortName), which names its RAM directory.
[[nodiscard]] std::string libvirt_short_name(int id, std::string_view name);

/// libvirt's short name when libvirtd runs in the C locale, or the name is not
/// valid there: cut at 20 bytes.
[[nodiscard]] std::string libvirt_short_name_bytes(int id, std::string_view name);

/// The directory where libvirt keeps a running domain's RAM files, as named in
/// a UTF-8 locale; find_domain_ram_dir also covers the C locale.
[[nodiscard]] std::string domain_ram_dir(std::string_view backing_dir, int id,
                                         std::string_view name);

/// The existing RAM directory of a running domain, whichever locale libvirtd cut
/// its name in; Errc::not_found when there is none, Errc::refused when both cuts
/// exist or it is not a directory.
[[nodiscard]] Result<std::string> find_domain_ram_dir(std::string_view backing_dir, int id,
                                                      std::string_view name);

/// vmupdate's directory of preserved links for one domain, inside backing_dir so
/// that it is on the same filesystem. `uuid` must be canonical (checked).
[[nodiscard]] Result<std::string> preserved_dir(std::string_view backing_dir,
                                                std::string_view uuid);

/// Hard-links the RAM files `names` (DomainInfo::ram_files; each must be a regular
/// file) of `ram_dir` into `preserved` (created 0700, and its parent too, both
/// root's), replacing links to other files; returns what is now held. Follows no
/// link below the parent of `preserved`'s parent (the QEMU user's backing
/// directory), nor in `ram_dir`.
[[nodiscard]] Result<std::vector<RamFile>> preserve_ram(const std::string& ram_dir,
                                                        const std::string& preserved,
                                                        const std::vector<std::string>& names);

/// Checks that every preserved link still is the file recorded (same device,
/// inode and size); the error names the first file that is not.
[[nodiscard]] Result<void> verify_preserved(std::string_view domain,
                                            const std::vector<RamFile>& ram);

/// Checks that the RAM files QEMU now uses in `ram_dir` are the recorded ones.
[[nodiscard]] Result<void> verify_in_use(std::string_view domain, const std::string& ram_dir,
                                         const std::vector<RamFile>& ram);

/// Links the preserved files into a new RAM directory before QEMU starts, so that
/// QEMU maps the old RAM (it reuses an existing file of the right size).
[[nodiscard]] Result<void> reinstate_ram(std::string_view domain, const std::vector<RamFile>& ram,
                                         const std::string& ram_dir);

/// Removes a domain's preserved links (the RAM is freed once QEMU is gone too);
/// refuses, leaving everything, when `preserved` or its parent is not root's own.
[[nodiscard]] Result<void> drop_preserved(const std::string& preserved);

} // namespace vmupdate
