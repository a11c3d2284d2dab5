// Guest RAM preservation: libvirt's RAM directory names and vmupdate's hard links.
#include "temp_dir.hpp"
#include "vmupdate/ram.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace vmupdate;
namespace fs = std::filesystem;

namespace {

constexpr const char* uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";

using TempDir = vmupdate::testing::TempDir;

void write_file(const std::string& path, size_t size, char fill = 'x') {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << std::string(size, fill);
    ASSERT_TRUE(out.good()) << path;
}

struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

std::vector<RamFile> sorted(std::vector<RamFile> v) {
    std::sort(v.begin(), v.end(),
              [](const RamFile& a, const RamFile& b) { return a.name < b.name; });
    return v;
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
        out += s;
    return out;
}

// libvirt's memory_backing_dir with the RAM directory of a running domain
// (id 7, "web1") holding pc.ram (4096 bytes) and ram-node0 (8192 bytes).
class RamDir : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(tmp.path().empty());
        ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir(ram_dir.c_str(), 0755), 0);
        write_file(ram_dir + "/pc.ram", 4096);
        write_file(ram_dir + "/ram-node0", 8192);
        auto p = preserved_dir(backing, uuid);
        ASSERT_TRUE(p) << p.error().message();
        preserved = *p;
    }

    std::vector<RamFile> preserve_ok() {
        auto held = preserve_ram(ram_dir, preserved);
        EXPECT_TRUE(held) << held.error().message();
        return held ? sorted(*held) : std::vector<RamFile>{};
    }

    TempDir tmp;
    std::string backing = tmp / "ram";
    std::string ram_dir = backing + "/7-web1";
    std::string preserved;
};

} // namespace

TEST(ShortName, KeepsShortAsciiNames) {
    EXPECT_EQ(libvirt_short_name(7, "web1"), "7-web1");
    EXPECT_EQ(libvirt_short_name(123, "a"), "123-a");
    EXPECT_EQ(libvirt_short_name(1, "abcdefghijklmnopqrst"), "1-abcdefghijklmnopqrst");
}

TEST(ShortName, CutsAsciiNamesAtTwentyCharacters) {
    EXPECT_EQ(libvirt_short_name(3, "abcdefghijklmnopqrstuvwxyz"), "3-abcdefghijklmnopqrst");
    EXPECT_EQ(libvirt_short_name(42, "database-server-production-01"), "42-database-server-prod");
}

TEST(ShortName, CutsMultibyteNamesAtTwentyCharactersNotBytes) {
    // virDomainDefGetShortName converts to wide characters and keeps 20 of them.
    const std::string e_acute = "\xC3\xA9";       // 2 bytes
    const std::string nihon = "\xE6\x97\xA5";     // 3 bytes
    const std::string emoji = "\xF0\x9F\x98\x80"; // 4 bytes
    EXPECT_EQ(libvirt_short_name(5, repeat(e_acute, 25)), "5-" + repeat(e_acute, 20));
    EXPECT_EQ(libvirt_short_name(5, repeat(nihon, 21)), "5-" + repeat(nihon, 20));
    EXPECT_EQ(libvirt_short_name(5, repeat(emoji, 30)), "5-" + repeat(emoji, 20));
    // Mixed widths: the cut falls after the 20th character, whatever its width.
    std::string mixed = "vm-" + repeat(e_acute + nihon + emoji + "x", 6);
    std::string expected = "vm-" + repeat(e_acute + nihon + emoji + "x", 4) + e_acute;
    EXPECT_EQ(libvirt_short_name(9, mixed), "9-" + expected);
    // Short multibyte names are kept whole.
    EXPECT_EQ(libvirt_short_name(2, "m" + e_acute + "t" + e_acute + "o"),
              "2-m" + e_acute + "t" + e_acute + "o");
    EXPECT_EQ(libvirt_short_name(2, repeat(emoji, 20)), "2-" + repeat(emoji, 20));
}

TEST(ShortName, NamesTheDomainRamDirectory) {
    EXPECT_EQ(domain_ram_dir("/var/lib/libvirt/qemu/ram", 7, "web1"),
              "/var/lib/libvirt/qemu/ram/7-web1");
    EXPECT_EQ(domain_ram_dir("/dev/shm/vm", 12, "abcdefghijklmnopqrstuvwxyz"),
              "/dev/shm/vm/12-abcdefghijklmnopqrst");
}

TEST(PreservedDir, IsUnderTheBackingDir) {
    auto p = preserved_dir("/var/lib/libvirt/qemu/ram", uuid);
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(*p, std::string("/var/lib/libvirt/qemu/ram/vmupdate/") + uuid);
}

TEST(PreservedDir, RejectsNonCanonicalUuids) {
    for (std::string bad :
         {"../x", "", "C7A5FDBD-EDAF-9455-926A-D65C16DB1809",
          "c7a5fdbd-edaf-9455-926a-D65C16DB1809", "c7a5fdbdedaf9455926ad65c16db1809",
          "{c7a5fdbd-edaf-9455-926a-d65c16db1809}", "c7a5fdbd-edaf-9455-926a-d65c16db180",
          "../../../../../../etc/passwd", "c7a5fdbd-edaf-9455-926a-d65c16db1809/..",
          "c7a5fdbd/edaf-9455-926a-d65c16db1809"}) {
        auto p = preserved_dir("/var/lib/libvirt/qemu/ram", bad);
        ASSERT_FALSE(p) << bad << " accepted as " << *p;
        EXPECT_EQ(p.error().code, Errc::invalid_input) << bad;
    }
}

TEST_F(RamDir, PreserveLinksEveryRamFile) {
    auto held = preserve_ok();
    ASSERT_EQ(held.size(), 2u);
    for (const auto& [i, name] : {std::pair{0, "pc.ram"}, std::pair{1, "ram-node0"}}) {
        const RamFile& f = held[static_cast<size_t>(i)];
        EXPECT_EQ(f.name, name);
        EXPECT_EQ(f.preserved, preserved + "/" + name);
        struct stat src = stat_of(ram_dir + "/" + name);
        struct stat dst = stat_of(f.preserved);
        EXPECT_EQ(dst.st_ino, src.st_ino) << name;
        EXPECT_EQ(dst.st_dev, src.st_dev) << name;
        EXPECT_EQ(src.st_nlink, 2u) << name;
        EXPECT_EQ(f.inode, static_cast<std::uint64_t>(src.st_ino));
        EXPECT_EQ(f.device, static_cast<std::uint64_t>(src.st_dev));
        EXPECT_EQ(f.size, static_cast<std::uint64_t>(src.st_size));
    }
    EXPECT_EQ(held[0].size, 4096u);
    EXPECT_EQ(held[1].size, 8192u);
    // Only root and the hook may look at guest RAM.
    EXPECT_EQ(stat_of(preserved).st_mode & 07777, 0700u);
    EXPECT_EQ(stat_of(backing + "/vmupdate").st_mode & 07777, 0700u);
}

TEST_F(RamDir, PreserveIsIdempotent) {
    auto first = preserve_ok();
    auto second = preserve_ok();
    EXPECT_EQ(second, first);
    EXPECT_EQ(stat_of(ram_dir + "/pc.ram").st_nlink, 2u);
    EXPECT_EQ(stat_of(ram_dir + "/ram-node0").st_nlink, 2u);
}

TEST_F(RamDir, PreserveReplacesALinkToAnotherFile) {
    // The RAM of an earlier run of the domain is still held under the same name.
    ASSERT_EQ(::mkdir((backing + "/vmupdate").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(preserved.c_str(), 0700), 0);
    std::string old_ram = tmp / "old-pc.ram";
    write_file(old_ram, 1024, 'o');
    ASSERT_EQ(::link(old_ram.c_str(), (preserved + "/pc.ram").c_str()), 0);
    ASSERT_EQ(stat_of(old_ram).st_nlink, 2u);

    auto held = preserve_ok();
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, stat_of(ram_dir + "/pc.ram").st_ino);
    EXPECT_EQ(held[0].size, 4096u);
    EXPECT_EQ(stat_of(old_ram).st_nlink, 1u) << "the stale link was not removed";
}

TEST_F(RamDir, PreserveOfAnEmptyDirectoryIsAnError) {
    std::string empty = backing + "/8-empty";
    ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
    auto held = preserve_ram(empty, preserved);
    ASSERT_FALSE(held);
    EXPECT_EQ(held.error().code, Errc::verify);
    EXPECT_TRUE(contains(held.error().message(), "no RAM file")) << held.error().message();
}

TEST_F(RamDir, PreserveIgnoresSubdirectories) {
    ASSERT_EQ(::mkdir((ram_dir + "/sub").c_str(), 0755), 0);
    write_file(ram_dir + "/sub/inner.ram", 512);
    auto held = preserve_ok();
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(held[0].name, "pc.ram");
    EXPECT_EQ(held[1].name, "ram-node0");
    EXPECT_FALSE(exists(preserved + "/sub"));
    EXPECT_FALSE(exists(preserved + "/inner.ram"));

    // A directory holding nothing but a subdirectory holds no RAM.
    std::string only_sub = backing + "/9-sub";
    ASSERT_EQ(::mkdir(only_sub.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((only_sub + "/sub").c_str(), 0755), 0);
    auto none = preserve_ram(only_sub, tmp / "other-preserved");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, Errc::verify);
}

TEST_F(RamDir, PreserveIgnoresSymbolicLinks) {
    // The RAM directory belongs to the QEMU user: a symbolic link there is not
    // RAM and must neither be linked nor stop the real RAM from being preserved.
    std::string outside = tmp / "outside";
    write_file(outside, 100);
    ASSERT_EQ(::symlink(outside.c_str(), (ram_dir + "/evil").c_str()), 0);
    auto held = preserve_ok();
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(held[0].name, "pc.ram");
    EXPECT_EQ(held[1].name, "ram-node0");
    EXPECT_FALSE(exists(preserved + "/evil"));
    EXPECT_EQ(stat_of(outside).st_nlink, 1u);
}

TEST_F(RamDir, PreserveOfAMissingDirectoryIsAnError) {
    auto held = preserve_ram(backing + "/99-gone", preserved);
    ASSERT_FALSE(held);
    EXPECT_TRUE(contains(held.error().message(), backing + "/99-gone")) << held.error().message();
}

TEST_F(RamDir, VerifyPreservedAcceptsTheRecordedFiles) {
    auto held = preserve_ok();
    auto ok = verify_preserved("web1", held);
    EXPECT_TRUE(ok) << ok.error().message();
    // Libvirt deleting its RAM directory (the domain stopped) changes nothing.
    fs::remove_all(ram_dir);
    ok = verify_preserved("web1", held);
    EXPECT_TRUE(ok) << ok.error().message();
}

TEST_F(RamDir, VerifyPreservedNamesAMissingFile) {
    auto held = preserve_ok();
    ASSERT_EQ(::unlink((preserved + "/ram-node0").c_str()), 0);
    auto ok = verify_preserved("web1", held);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().object, "web1");
    EXPECT_TRUE(contains(ok.error().message(), preserved + "/ram-node0")) << ok.error().message();
}

TEST_F(RamDir, VerifyPreservedReportsAResizedFile) {
    auto held = preserve_ok();
    ASSERT_EQ(::truncate((preserved + "/pc.ram").c_str(), 8192), 0);
    auto ok = verify_preserved("web1", held);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::verify);
    EXPECT_TRUE(contains(ok.error().message(), "size is 8192 bytes, saved with 4096"))
        << ok.error().message();
    EXPECT_TRUE(contains(ok.error().message(), preserved + "/pc.ram")) << ok.error().message();
}

TEST_F(RamDir, VerifyPreservedReportsAReplacedFile) {
    auto held = preserve_ok();
    std::string link = preserved + "/pc.ram";
    ASSERT_EQ(::unlink(link.c_str()), 0);
    write_file(link, 4096); // same name and size, another inode
    auto ok = verify_preserved("web1", held);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::verify);
    EXPECT_TRUE(contains(ok.error().message(), link)) << ok.error().message();
    EXPECT_TRUE(contains(ok.error().message(), "inode")) << ok.error().message();
}

TEST(VerifyPreserved, NothingRecordedIsAnError) {
    auto ok = verify_preserved("web1", {});
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::verify);
}

TEST_F(RamDir, VerifyInUseChecksTheFilesQemuUses) {
    auto held = preserve_ok();
    auto ok = verify_in_use("web1", ram_dir, held);
    EXPECT_TRUE(ok) << ok.error().message();

    // A fresh file of the same size where QEMU expects the RAM: not the guest's RAM.
    std::string fresh = backing + "/8-web1";
    ASSERT_EQ(::mkdir(fresh.c_str(), 0755), 0);
    write_file(fresh + "/pc.ram", 4096);
    write_file(fresh + "/ram-node0", 8192);
    ok = verify_in_use("web1", fresh, held);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::verify);
    EXPECT_TRUE(contains(ok.error().message(), fresh + "/pc.ram")) << ok.error().message();

    // A missing one.
    ASSERT_EQ(::unlink((ram_dir + "/ram-node0").c_str()), 0);
    ok = verify_in_use("web1", ram_dir, held);
    ASSERT_FALSE(ok);
    EXPECT_TRUE(contains(ok.error().message(), ram_dir + "/ram-node0")) << ok.error().message();

    // A recorded name that would leave the directory.
    std::vector<RamFile> bad = held;
    bad[0].name = "../7-web1/pc.ram";
    ok = verify_in_use("web1", fresh, bad);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::invalid_input);
}

TEST_F(RamDir, ReinstateLinksThePreservedRamIntoANewDirectory) {
    auto held = preserve_ok();
    fs::remove_all(ram_dir); // libvirt cleans up when the domain stops
    std::string next = backing + "/8-web1";
    ASSERT_EQ(::mkdir(next.c_str(), 0755), 0);
    auto ok = reinstate_ram("web1", held, next);
    ASSERT_TRUE(ok) << ok.error().message();
    for (const auto& f : held) {
        struct stat st = stat_of(next + "/" + f.name);
        EXPECT_EQ(static_cast<std::uint64_t>(st.st_ino), f.inode) << f.name;
        EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), f.size) << f.name;
    }
    auto in_use = verify_in_use("web1", next, held);
    EXPECT_TRUE(in_use) << in_use.error().message();

    // A retried start finds its own links in place.
    ok = reinstate_ram("web1", held, next);
    EXPECT_TRUE(ok) << ok.error().message();
}

TEST_F(RamDir, ReinstateRefusesToShadowAnotherFile) {
    auto held = preserve_ok();
    std::string next = backing + "/8-web1";
    ASSERT_EQ(::mkdir(next.c_str(), 0755), 0);
    write_file(next + "/pc.ram", 4096, 'n');
    auto ok = reinstate_ram("web1", held, next);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().object, "web1");
    EXPECT_TRUE(contains(ok.error().message(), next + "/pc.ram")) << ok.error().message();
    EXPECT_TRUE(contains(ok.error().message(), "File exists")) << ok.error().message();
    EXPECT_NE(stat_of(next + "/pc.ram").st_ino, stat_of(preserved + "/pc.ram").st_ino);
}

TEST_F(RamDir, ReinstateRefusesBrokenPreservedRam) {
    auto held = preserve_ok();
    ASSERT_EQ(::truncate((preserved + "/ram-node0").c_str(), 4096), 0);
    std::string next = backing + "/8-web1";
    ASSERT_EQ(::mkdir(next.c_str(), 0755), 0);
    auto ok = reinstate_ram("web1", held, next);
    ASSERT_FALSE(ok);
    EXPECT_TRUE(contains(ok.error().message(), "size is 4096 bytes, saved with 8192"))
        << ok.error().message();
    // Checked before anything is linked: QEMU must not start on half the RAM.
    EXPECT_TRUE(fs::is_empty(next));
}

TEST_F(RamDir, ReinstateRejectsNamesWithASlash) {
    auto held = preserve_ok();
    std::string next = backing + "/8-web1";
    ASSERT_EQ(::mkdir(next.c_str(), 0755), 0);
    for (std::string bad : {"../escape", "sub/pc.ram", "..", "."}) {
        std::vector<RamFile> one{held[0]};
        one[0].name = bad;
        auto ok = reinstate_ram("web1", one, next);
        ASSERT_FALSE(ok) << bad;
        EXPECT_EQ(ok.error().code, Errc::invalid_input) << bad;
    }
    EXPECT_TRUE(fs::is_empty(next));
    EXPECT_FALSE(exists(backing + "/escape"));
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_nlink, 2u);
}

TEST_F(RamDir, DropPreservedReleasesTheLinks) {
    auto held = preserve_ok();
    auto ok = drop_preserved(preserved);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_FALSE(exists(preserved));
    // libvirt's own files are untouched.
    EXPECT_EQ(stat_of(ram_dir + "/pc.ram").st_nlink, 1u);
    EXPECT_EQ(stat_of(ram_dir + "/ram-node0").st_size, 8192);
    EXPECT_FALSE(verify_preserved("web1", held));
    // Nothing to drop is not an error.
    ok = drop_preserved(preserved);
    EXPECT_TRUE(ok) << ok.error().message();
}
