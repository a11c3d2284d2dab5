// A temporary directory for unit tests, removed with everything in it.
#pragma once

#include <filesystem>
#include <stdlib.h>
#include <string>
#include <string_view>

namespace vmupdate::testing {

/// mkdtemp() under the system's temp directory; removed on destruction.
class TempDir {
public:
    explicit TempDir(std::string_view tag = "test") {
        std::string templ =
            (std::filesystem::temp_directory_path() / ("vmupdate-" + std::string(tag) + "-XXXXXX"))
                .string();
        if (char* p = ::mkdtemp(templ.data()))
            path_ = p;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty())
            std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    /// The directory.
    [[nodiscard]] const std::string& path() const { return path_; }
    /// A path inside it.
    [[nodiscard]] std::string operator/(std::string_view name) const {
        return path_ + "/" + std::string(name);
    }

private:
    std::string path_;
};

} // namespace vmupdate::testing
