// Reading apt-get's simulation for `vmupdate host-update --packages`.
#include "vmupdate/package_update.hpp"

#include <gtest/gtest.h>

using namespace vmupdate;

// `apt-get install --simulate -y ./qemu-system-x86_...deb ./qemu-system-common_...deb`
// on Debian 12 + bookworm-backports, and a libvirt upgrade from the archive.
constexpr std::string_view simulation = R"(NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
The following packages will be upgraded:
  qemu-system-common qemu-system-x86
2 upgraded, 0 newly installed, 0 to remove and 117 not upgraded.
Inst qemu-system-x86 [1:10.0.2+ds-2+deb13u1~bpo12+1] (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64]) []
Inst qemu-system-common [1:10.0.2+ds-2+deb13u1~bpo12+1] (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
Inst libvirt0 [11.3.0-2~bpo12+1] (11.3.0-3~bpo12+1 Debian Backports:bookworm-backports [amd64])
Inst libslirp0 (4.7.0-1 Debian:12.12/stable [amd64])
Conf qemu-system-x86 (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
Conf qemu-system-common (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
)";

TEST(PackageUpdate, ReadsEveryInstLine) {
    auto c = parse_apt_simulation(simulation);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_EQ(c[0].name, "qemu-system-x86");
    EXPECT_EQ(c[0].from, "1:10.0.2+ds-2+deb13u1~bpo12+1");
    EXPECT_EQ(c[0].to, "1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1");
    EXPECT_EQ(c[2].name, "libvirt0");
    EXPECT_EQ(c[2].to, "11.3.0-3~bpo12+1");
    EXPECT_EQ(c[3].name, "libslirp0");
    EXPECT_EQ(c[3].from, "");
    EXPECT_EQ(c[3].to, "4.7.0-1");
}

TEST(PackageUpdate, NothingToDoAndGarbageGiveNoChanges) {
    EXPECT_TRUE(parse_apt_simulation("0 upgraded, 0 newly installed, 0 to remove\n").empty());
    EXPECT_TRUE(parse_apt_simulation("Inst\nInst x [1\nInst y\n").empty());
    EXPECT_TRUE(parse_apt_simulation("").empty());
}

TEST(PackageUpdate, KnowsWhichPackagesNeedALibvirtRestart) {
    for (auto p : {"libvirt0", "libvirt-daemon", "libvirt-daemon-system",
                   "libvirt-daemon-driver-qemu", "libvirt0:amd64"})
        EXPECT_TRUE(is_libvirt_package(p)) << p;
    for (auto p : {"qemu-system-x86", "qemu-system-common", "libvirt-dev", "python3-libvirt"})
        EXPECT_FALSE(is_libvirt_package(p)) << p;
}
