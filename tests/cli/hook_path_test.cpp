// Where `vmupdate hook install` finds the hook (cli/hook_path.hpp).
#include "../unit/temp_dir.hpp"
#include "hook_path.hpp"
#include "vmupdate/orchestrate.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

namespace {

using namespace vmupdate::cli;
using vmupdate::testing::TempDir;
namespace fs = std::filesystem;

void make_file(const std::string& path, bool executable) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << "#!/bin/sh\n";
    fs::permissions(path, executable ? fs::perms::owner_all : fs::perms::owner_read);
}

TEST(CliHookPath, RelativeToTheBinaryThenBuildTreeThenConfigured) {
    EXPECT_EQ(hook_candidates("/opt/vm/bin/vmupdate", "../libexec/vmupdate",
                              "/usr/local/libexec/vmupdate"),
              (std::vector<std::string>{"/opt/vm/libexec/vmupdate/vmupdate-hook",
                                        "/opt/vm/hooks/vmupdate-hook",
                                        "/usr/local/libexec/vmupdate/vmupdate-hook"}));
    // Without /proc/self/exe only the configured path is left.
    EXPECT_EQ(hook_candidates("", "../libexec/vmupdate", "/usr/libexec/vmupdate"),
              (std::vector<std::string>{"/usr/libexec/vmupdate/vmupdate-hook"}));
}

TEST(CliHookPath, FirstExecutableCandidateWins) {
    TempDir dir("cli-hook");
    auto candidates = hook_candidates(dir / "bin/vmupdate", "../libexec/vmupdate",
                                      dir / "configured/libexec/vmupdate");
    ASSERT_EQ(candidates.size(), 3u);
    // None there: the configured path, so that the error names it.
    EXPECT_EQ(find_hook(candidates), dir / "configured/libexec/vmupdate/vmupdate-hook");
    make_file(candidates[2], true);
    EXPECT_EQ(find_hook(candidates), candidates[2]);
    make_file(candidates[1], true);
    EXPECT_EQ(find_hook(candidates), candidates[1]);
    make_file(candidates[0], false); // not executable: passed over
    EXPECT_EQ(find_hook(candidates), candidates[1]);
    fs::permissions(candidates[0], fs::perms::owner_all);
    EXPECT_EQ(find_hook(candidates), dir / "libexec/vmupdate/vmupdate-hook");
}

TEST(CliHookPath, LinkPathIsTheOneInstallHookMakes) {
    TempDir dir("cli-hook-link");
    vmupdate::Paths paths;
    paths.hooks_dir = dir / "qemu.d";
    make_file(dir / "vmupdate-hook", true);
    auto link = vmupdate::install_hook(paths, dir / "vmupdate-hook");
    ASSERT_TRUE(link) << link.error().message();
    EXPECT_EQ(*link, hook_link_path(paths));
}

} // namespace
