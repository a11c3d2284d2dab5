// pmem pool helpers that need no pmem: sizes, capacity arithmetic, the
// qemu.conf rewrite and mount detection from mountinfo text.
#include "vmupdate/pool.hpp"

#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace vmupdate;

TEST(PoolSize, ParsesBinarySuffixes) {
    EXPECT_EQ(parse_size("256M").value(), 256ull << 20);
    EXPECT_EQ(parse_size("1G").value(), 1ull << 30);
    EXPECT_EQ(parse_size("1g").value(), 1ull << 30);
    EXPECT_EQ(parse_size("4GiB").value(), 4ull << 30);
    EXPECT_EQ(parse_size("2T").value(), 2ull << 40);
    EXPECT_EQ(parse_size("512K").value(), 512ull << 10);
    EXPECT_EQ(parse_size("1073741824").value(), 1ull << 30);
    EXPECT_EQ(parse_size("100B").value(), 100u);
}

TEST(PoolSize, RejectsGarbage) {
    for (const char* bad : {"", "G", "-1G", "1.5G", "12Q", "1 G", "99999999999T"}) {
        auto r = parse_size(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().code, Errc::invalid_input) << bad;
        }
    }
}

TEST(PoolSize, Formats) {
    EXPECT_EQ(format_size(512), "512 B");
    EXPECT_EQ(format_size(256ull << 20), "256.0 MiB");
    EXPECT_EQ(format_size(3ull << 29), "1.5 GiB");
}

TEST(PoolFit, FitsExactlyAndRefusesOneByteMore) {
    EXPECT_FALSE(would_not_fit(1ull << 30, 1ull << 30, "/mnt/pool"));
    EXPECT_FALSE(would_not_fit(2ull << 30, 0, "/mnt/pool"));
    auto msg = would_not_fit(1ull << 30, (1ull << 30) + 1, "/mnt/pool");
    ASSERT_TRUE(msg);
    EXPECT_NE(msg->find("/mnt/pool"), std::string::npos) << *msg;
}

TEST(PoolFit, MessageNamesPoolAndSizes) {
    auto msg = would_not_fit(512ull << 20, 2ull << 30, "/mnt/pmem/ram");
    ASSERT_TRUE(msg);
    EXPECT_EQ(*msg, "pool /mnt/pmem/ram has 512.0 MiB free, 2.0 GiB needed (1.5 GiB short)");
}

TEST(PoolConf, ReplacesActiveSettingKeepsTheRest) {
    const std::string in = "# memory_backing_dir = \"/commented\"\n"
                           "user = \"root\"\n"
                           "  memory_backing_dir = \"/old\"\n"
                           "memory_backing_dirs = \"/not-this\"\n"
                           "group = \"kvm\"";
    EXPECT_EQ(set_memory_backing_dir(in, "/mnt/pool/ram"),
              "# memory_backing_dir = \"/commented\"\n"
              "user = \"root\"\n"
              "memory_backing_dir = \"/mnt/pool/ram\"\n"
              "memory_backing_dirs = \"/not-this\"\n"
              "group = \"kvm\"");
}

TEST(PoolConf, AppendsWhenUnsetAndEveryAssignmentGetsTheValue) {
    EXPECT_EQ(set_memory_backing_dir("", "/p"), "memory_backing_dir = \"/p\"\n");
    EXPECT_EQ(set_memory_backing_dir("user = \"root\"", "/p"),
              "user = \"root\"\nmemory_backing_dir = \"/p\"\n");
    // libvirt reads the last assignment: none may keep the old value.
    EXPECT_EQ(
        set_memory_backing_dir("memory_backing_dir=\"/a\"\nmemory_backing_dir = \"/b\"\n", "/p"),
        "memory_backing_dir = \"/p\"\nmemory_backing_dir = \"/p\"\n");
    // Idempotent.
    auto once = set_memory_backing_dir("x = 1\n", "/p");
    EXPECT_EQ(set_memory_backing_dir(once, "/p"), once);
    // The result is what host.hpp's reader sees.
    EXPECT_EQ(conf_string(set_memory_backing_dir("# c\nmemory_backing_dir = \"/a\"\n", "/p"),
                          "memory_backing_dir")
                  .value(),
              "/p");
}

TEST(PoolConf, RewritesFileCrashSafeKeepingModeAndContent) {
    char dir[] = "/tmp/vmupdate-pooltest-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    std::string path = std::string(dir) + "/qemu.conf";
    std::ofstream(path) << "# libvirt qemu.conf\n#memory_backing_dir = \"/x\"\nuser = \"root\"\n";
    ASSERT_EQ(chmod(path.c_str(), 0600), 0);
    ASSERT_TRUE(configure_libvirt(path, "/mnt/pool/ram"));
    std::stringstream ss;
    ss << std::ifstream(path).rdbuf();
    EXPECT_EQ(ss.str(), "# libvirt qemu.conf\n#memory_backing_dir = \"/x\"\nuser = \"root\"\n"
                        "memory_backing_dir = \"/mnt/pool/ram\"\n");
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(memory_backing_dir(path).value(), "/mnt/pool/ram/libvirt/qemu");
    // A missing file is created; bad values are refused before anything is written.
    std::string fresh = std::string(dir) + "/new.conf";
    ASSERT_TRUE(configure_libvirt(fresh, "/p"));
    EXPECT_FALSE(configure_libvirt(fresh, "relative"));
    EXPECT_FALSE(configure_libvirt(fresh, "/with\"quote"));
    std::stringstream fs;
    fs << std::ifstream(fresh).rdbuf();
    EXPECT_EQ(fs.str(), "memory_backing_dir = \"/p\"\n");
    std::remove(path.c_str());
    std::remove(fresh.c_str());
    rmdir(dir);
}

namespace {
constexpr const char* mountinfo =
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "30 22 259:0 / /mnt/pool rw,relatime shared:5 - ext4 /dev/pmem0 rw,dax=always\n"
    "31 22 259:1 / /mnt/old\\040pool rw,relatime - xfs /dev/pmem1 rw,attr2,dax,inode64\n"
    "32 22 259:2 / /mnt/nodax rw,relatime - ext4 /dev/pmem2 rw\n"
    "33 22 0:40 / /run rw,nosuid - tmpfs tmpfs rw,mode=755\n";
}

TEST(PoolMounts, FindsTheDeviceAndItsDaxState) {
    auto m = mount_of_device(mountinfo, 259, 0);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->mount_point, "/mnt/pool");
    EXPECT_EQ(m->fstype, "ext4");
    EXPECT_TRUE(m->dax);
    auto x = mount_of_device(mountinfo, 259, 1);
    ASSERT_TRUE(x);
    EXPECT_EQ(x->mount_point, "/mnt/old pool"); // \040 unescaped
    EXPECT_TRUE(x->dax);
    auto n = mount_of_device(mountinfo, 259, 2);
    ASSERT_TRUE(n);
    EXPECT_FALSE(n->dax);
    EXPECT_FALSE(mount_of_device(mountinfo, 259, 3));
    EXPECT_FALSE(mount_of_device("garbage\n\n1 2 3\n", 259, 0));
}

TEST(PoolUsage, ReportsTheFilesystemOfTheNearestExistingParent) {
    auto u = pool_usage("/tmp/vmupdate-does-not-exist/libvirt/qemu");
    ASSERT_TRUE(u) << u.error().message();
    EXPECT_GT(u->total, 0u);
    EXPECT_LE(u->free, u->total);
    EXPECT_FALSE(u->mount_point.empty());
}

TEST(PoolCreate, RefusesBadMountPointsBeforeLookingAtPmem) {
    auto r = create_pool(1ull << 30, std::nullopt, "relative/dir", FsType::ext4);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    r = create_pool(1ull << 30, std::nullopt, "/", FsType::ext4);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    // Something is mounted there already.
    r = create_pool(1ull << 30, std::nullopt, "/proc", FsType::ext4);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::refused) << r.error().message();
}
