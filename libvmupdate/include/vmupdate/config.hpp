// vmupdate's own settings: /etc/vmupdate/vmupdate.conf.
#pragma once

#include "vmupdate/error.hpp"

#include <string>
#include <string_view>

namespace vmupdate {

/// Which domains vmupdate treats as its own.
enum class ManagePolicy {
    marked,      ///< only those `vmupdate prepare` marked in their <metadata>
    file_backed, ///< also every domain whose RAM already is a shared file kept on exit
};

/// The settings of /etc/vmupdate/vmupdate.conf.
struct Config {
    /// `manage = marked | file-backed`: file-backed suits hosts whose management
    /// layer (OpenStack Nova) regenerates definitions and drops vmupdate's mark.
    ManagePolicy manage = ManagePolicy::marked;
};

/// Parses `key = value` lines ('#' starts a comment); `source` names the text in errors.
[[nodiscard]] Result<Config> parse_config(std::string_view text, std::string_view source);

/// Reads the settings file; a missing file gives the defaults.
[[nodiscard]] Result<Config> load_config(const std::string& path);

/// The policy's name as written in the file.
[[nodiscard]] std::string_view to_string(ManagePolicy policy);

} // namespace vmupdate
