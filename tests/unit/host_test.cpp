// qemu.conf parsing and filesystem classification.
#include "temp_dir.hpp"
#include "vmupdate/host.hpp"

#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace vmupdate;

TEST(QemuConf, ReadsMemoryBackingDir) {
    EXPECT_EQ(conf_string("# memory_backing_dir = \"/no\"\nmemory_backing_dir = \"/dev/shm/vm\"\n",
                          "memory_backing_dir")
                  .value(),
              "/dev/shm/vm");
    EXPECT_EQ(conf_string("  memory_backing_dir='/a'\nmemory_backing_dir = \"/b\" # later wins\n",
                          "memory_backing_dir")
                  .value(),
              "/b");
    EXPECT_EQ(conf_string("memory_backing_dir_other = \"/x\"\n", "memory_backing_dir").value(), "");
    EXPECT_EQ(conf_string("", "memory_backing_dir").value(), "");
    EXPECT_FALSE(conf_string("memory_backing_dir = 5\n", "memory_backing_dir"));
    EXPECT_FALSE(conf_string("memory_backing_dir = \"/open\n", "memory_backing_dir"));
}

TEST(QemuConf, DefaultsWhenAbsent) {
    EXPECT_EQ(memory_backing_dir("/nonexistent/qemu.conf").value(), default_memory_backing_dir);
    char path[] = "/tmp/vmupdate-qemuconf-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << "user = \"root\"\n";
    EXPECT_EQ(memory_backing_dir(path).value(), default_memory_backing_dir);
    std::ofstream(path) << "memory_backing_dir = \"/mnt/pmem0/vm\"\n";
    // libvirt appends its own subdirectory to a configured directory.
    EXPECT_EQ(memory_backing_dir(path).value(), "/mnt/pmem0/vm/libvirt/qemu");
    std::remove(path);
}

namespace {
constexpr const char* mountinfo = R"(22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
41 22 259:0 / /mnt/pmem0 rw,relatime shared:20 - ext4 /dev/pmem0 rw,dax=always
42 22 259:1 / /mnt/pmem1 rw,relatime,dax shared:21 - xfs /dev/pmem1 rw,attr2
43 22 259:2 / /mnt/pmem\040two rw,relatime shared:22 - ext4 /dev/pmem2 rw,dax=never
44 41 0:26 / /mnt/pmem0/tmp rw shared:23 - tmpfs tmpfs rw
)";
}

TEST(Filesystem, ClassifiesMounts) {
    auto root = filesystem_from_mountinfo(mountinfo, "/var/lib/libvirt/qemu/ram");
    ASSERT_TRUE(root);
    EXPECT_EQ(root->mount_point, "/");
    EXPECT_EQ(root->kind, FsKind::disk);
    EXPECT_EQ(filesystem_from_mountinfo(mountinfo, "/dev/shm/vm")->kind, FsKind::memory);
    auto pmem = filesystem_from_mountinfo(mountinfo, "/mnt/pmem0/vm");
    EXPECT_EQ(pmem->kind, FsKind::dax);
    EXPECT_EQ(pmem->source, "/dev/pmem0");
    EXPECT_EQ(filesystem_from_mountinfo(mountinfo, "/mnt/pmem1")->kind, FsKind::dax);
    auto two = filesystem_from_mountinfo(mountinfo, "/mnt/pmem two/x");
    EXPECT_EQ(two->mount_point, "/mnt/pmem two");
    EXPECT_EQ(two->kind, FsKind::disk);
    // Prefix of a name is not a parent directory.
    EXPECT_EQ(filesystem_from_mountinfo(mountinfo, "/mnt/pmem0x")->mount_point, "/");
    EXPECT_EQ(filesystem_from_mountinfo(mountinfo, "/mnt/pmem0/tmp/a")->kind, FsKind::memory);
    EXPECT_FALSE(filesystem_from_mountinfo("", "/x"));
}

TEST(Filesystem, FindsRealMounts) {
    auto shm = filesystem_of("/dev/shm/does/not/exist/yet");
    ASSERT_TRUE(shm) << shm.error().message();
    EXPECT_EQ(shm->kind, FsKind::memory);
}

TEST(Filesystem, RefusesALinkInADirectoryOthersCanWrite) {
    // memory_backing_dir belongs to the QEMU user: a link it plants there (or a
    // directory it swaps for one) must not decide what the pre-flight sees.
    vmupdate::testing::TempDir tmp;
    std::string ram = tmp / "ram";
    ASSERT_EQ(::mkdir(ram.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(ram.c_str(), 0777), 0);
    ASSERT_EQ(::symlink("/dev/shm", (ram + "/7-web1").c_str()), 0);
    auto fs = filesystem_of(ram + "/7-web1/pc.ram");
    ASSERT_FALSE(fs) << fs->mount_point;
    EXPECT_EQ(fs.error().code, Errc::refused);
    EXPECT_NE(fs.error().message().find("7-web1"), std::string::npos) << fs.error().message();
}

TEST(Filesystem, FollowsALinkOnlyRootCanChange) {
    vmupdate::testing::TempDir tmp;
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
    ASSERT_EQ(::symlink("/dev/shm", (tmp / "shm").c_str()), 0);
    auto fs = filesystem_of(tmp / "shm/not/yet");
    ASSERT_TRUE(fs) << fs.error().message();
    EXPECT_EQ(fs->kind, FsKind::memory);
    EXPECT_EQ(fs->mount_point, "/dev/shm");
}

TEST(Filesystem, ClassifiesTheNearestExistingDirectory) {
    vmupdate::testing::TempDir tmp;
    auto fs = filesystem_of(tmp / "not/yet/there");
    auto parent = filesystem_of(tmp.path());
    ASSERT_TRUE(fs) << fs.error().message();
    ASSERT_TRUE(parent) << parent.error().message();
    EXPECT_EQ(fs->mount_point, parent->mount_point);
}
