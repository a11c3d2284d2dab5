// Command line checks of host-update's pre-flight.
#include "vmupdate/host_update.hpp"
#include "vmupdate/kexec.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <sys/stat.h>

using namespace vmupdate;

TEST(Kexec, FindsLegacyPmemRegions) {
    EXPECT_EQ(pmem_memmap_args("console=ttyS0 memmap=256M!1G quiet memmap=1G!4G"),
              (std::vector<std::string>{"memmap=256M!1G", "memmap=1G!4G"}));
    // memmap with other types ($ reserved, # ACPI, @ RAM) is not pmem.
    EXPECT_TRUE(pmem_memmap_args("memmap=64M$0x10000000 memmap=2G@4G root=/dev/sda1").empty());
    EXPECT_TRUE(pmem_memmap_args("").empty());
    EXPECT_EQ(pmem_memmap_args("memmap=256M!1G"), std::vector<std::string>{"memmap=256M!1G"});
}

TEST(HostUpdate, RefusesACommandLineThatDropsAPmemRegion) {
    std::string now = "console=ttyS0 memmap=256M!1G root=/dev/vda";
    EXPECT_TRUE(
        cmdline_offenders(now, "root=/dev/vda memmap=256M!1G console=ttyS0 vmu_stage=2").empty());
    auto off = cmdline_offenders(now, "console=ttyS0 root=/dev/vda");
    ASSERT_EQ(off.size(), 1u);
    EXPECT_NE(off[0].find("lacks memmap=256M!1G"), std::string::npos) << off[0];
    // A different region is not the same region.
    EXPECT_EQ(cmdline_offenders(now, "memmap=256M!2G").size(), 1u);
    // No pmem on the command line (NVDIMMs described by ACPI): nothing to keep.
    EXPECT_TRUE(cmdline_offenders("console=ttyS0", "console=ttyS0").empty());
}

TEST(Kexec, UsesSystemdOnlyWhenItRunsAsPid1) {
    char dir[] = "/tmp/vmu-kexec-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string base = dir;
    EXPECT_EQ(kexec_method(base + "/run/systemd/system"), KexecVia::kexec_e);
    ASSERT_EQ(::mkdir((base + "/run").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((base + "/run/systemd").c_str(), 0755), 0);
    // systemd installed but not booted: /run/systemd exists, its system/ does not.
    EXPECT_EQ(kexec_method(base + "/run/systemd/system"), KexecVia::kexec_e);
    ASSERT_EQ(::mkdir((base + "/run/systemd/system").c_str(), 0755), 0);
    EXPECT_EQ(kexec_method(base + "/run/systemd/system"), KexecVia::systemd);
    std::filesystem::remove_all(base);
}
