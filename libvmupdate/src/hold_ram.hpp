// Holding a running domain's RAM files so that no stop of its QEMU can free
// them: the one way the hook (at start) and `vmupdate save` (before the save)
// do it. Private header.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// The RAM files held, and the directory of their preserved links.
struct HeldRam {
    std::string preserved;      ///< preserved_dir of the domain
    std::vector<RamFile> files; ///< what is now held
};

/// Links the RAM files `ram_files` of the running domain (libvirt id `id`, named
/// `name`) into its preserved directory under `backing_dir`: preserved dir, then
/// the domain's RAM directory, then preserve_ram; the first error stops it.
[[nodiscard]] Result<HeldRam> hold_domain_ram(std::string_view backing_dir, std::string_view uuid,
                                              int id, std::string_view name,
                                              const std::vector<std::string>& ram_files);

} // namespace vmupdate
