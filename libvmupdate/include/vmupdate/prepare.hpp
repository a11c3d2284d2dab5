// `vmupdate prepare`: apply the translation to a domain's persistent definition.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/libvirt.hpp"

#include <optional>
#include <string>
#include <vector>

namespace vmupdate {

/// What prepare did to one domain.
struct Prepared {
    std::string name;
    std::vector<std::string> changes; ///< empty when the definition was already prepared
    bool needs_cold_start{};          ///< running with RAM not yet in a shared file
};

/// Translates the domain's persistent definition and redefines it. Refuses
/// transient domains and domains whose RAM cannot be preserved; never touches a
/// running QEMU.
[[nodiscard]] Result<Prepared> prepare_domain(const Connection& conn, std::string_view name);

/// Where guest RAM will live for this connection, when that can be known locally.
struct BackingDir {
    std::string path;
    FsInfo fs;
};

/// Reads memory_backing_dir for a local qemu:///system connection (from
/// `qemu_conf`) and finds its filesystem; nullopt for URIs whose host files
/// vmupdate cannot see.
[[nodiscard]] Result<std::optional<BackingDir>> backing_dir_for(const Connection& conn,
                                                                const std::string& qemu_conf);

/// A warning for operators when the backing directory's filesystem is a poor
/// home for guest RAM, or nullopt when it is fine.
[[nodiscard]] std::optional<std::string> backing_dir_warning(const BackingDir& dir);

/// A warning when the RAM of all managed domains together does not fit in the
/// pmem pool (the DAX filesystem) holding the backing directory.
[[nodiscard]] std::optional<std::string> pool_capacity_warning(const Connection& conn,
                                                               const BackingDir& dir);

} // namespace vmupdate
