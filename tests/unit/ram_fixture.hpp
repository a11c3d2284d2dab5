// Helpers for the tests of RAM preservation and the handover, which stands on
// it: file checks, and a memory_backing_dir with a running domain's RAM
// directory in a temporary directory.
#pragma once

#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>

namespace vmupdate::testing {

/// Whether `needle` occurs in `hay`.
inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

/// lstat() of `path`, which must exist.
inline struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

/// Whether anything, a dangling link too, is at `path`.
inline bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

/// libvirt's memory_backing_dir (`backing`) in a temporary directory, with the
/// RAM directory of running domain 7, "web1" (`ram_dir`).
class RamDirTest : public ::testing::Test {
protected:
    /// Creates both directories, empty.
    void make_ram_dir() {
        ASSERT_FALSE(tmp.path().empty());
        ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir(ram_dir.c_str(), 0755), 0);
    }

    TempDir tmp;
    std::string backing = tmp / "ram";
    std::string ram_dir = backing + "/7-web1";
};

} // namespace vmupdate::testing
