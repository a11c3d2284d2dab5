// Where `vmupdate hook install` finds the hook executable.
#pragma once

#include "vmupdate/paths.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::cli {

/// The places the hook may be, most specific first, for the vmupdate binary at
/// `self` (/proc/self/exe):
///  1. <dir of self>/<bin_to_hookdir>/vmupdate-hook: an installed tree, wherever
///     it was installed to (`cmake --install --prefix P`, a package root);
///  2. <dir of self>/../hooks/vmupdate-hook: the build tree;
///  3. <hookdir>/vmupdate-hook: where the build was configured to install it.
/// Paths are lexically normal (no "..") so that the link libvirt follows reads
/// plainly. An empty `self` (unknown) leaves only the third.
[[nodiscard]] std::vector<std::string>
hook_candidates(std::string_view self, std::string_view bin_to_hookdir, std::string_view hookdir);

/// The first executable candidate, or the last (the configured path) when none
/// is, so that the error names where the hook should be.
[[nodiscard]] std::string find_hook(const std::vector<std::string>& candidates);

/// The link `vmupdate hook install` makes: <hooks_dir>/50-vmupdate, the name
/// libvmupdate's install_hook gives it (the unit test cli_hook_path keeps the two
/// in step; the library does not export it). libvirt runs qemu.d hooks in
/// alphabetical order.
[[nodiscard]] std::string hook_link_path(const Paths& paths);

/// The path of the running executable, or "" when /proc is not there.
[[nodiscard]] std::string self_exe();

} // namespace vmupdate::cli
