// Guest RAM preservation: libvirt's RAM directory names and vmupdate's hard links.
#include "fsutil.hpp"
#include "ram_fixture.hpp"
#include "temp_dir.hpp"
#include "vmupdate/ram.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <grp.h>
#include <gtest/gtest.h>
#include <map>
#include <stdio.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace vmupdate;
namespace fs = std::filesystem;

namespace {

constexpr const char* uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";

using TempDir = vmupdate::testing::TempDir;
using vmupdate::testing::contains;
using vmupdate::testing::exists;
using vmupdate::testing::stat_of;

void write_file(const std::string& path, size_t size, char fill = 'x') {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << std::string(size, fill);
    ASSERT_TRUE(out.good()) << path;
}

std::vector<RamFile> sorted(std::vector<RamFile> v) {
    std::sort(v.begin(), v.end(),
              [](const RamFile& a, const RamFile& b) { return a.name < b.name; });
    return v;
}

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
        out += s;
    return out;
}

// libvirt's memory_backing_dir with the RAM directory of a running domain
// (id 7, "web1") holding pc.ram (4096 bytes) and ram-node0 (8192 bytes).
class RamDir : public vmupdate::testing::RamDirTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(make_ram_dir());
        write_file(ram_dir + "/pc.ram", 4096);
        write_file(ram_dir + "/ram-node0", 8192);
        auto p = preserved_dir(backing, uuid);
        ASSERT_TRUE(p) << p.error().message();
        preserved = *p;
    }

    std::vector<RamFile> preserve_ok() {
        auto held = preserve_ram(ram_dir, preserved, names);
        EXPECT_TRUE(held) << held.error().message();
        return held ? sorted(*held) : std::vector<RamFile>{};
    }

    // That `held` is pc.ram and ram-node0, nothing else.
    static void expect_both(const std::vector<RamFile>& held) {
        ASSERT_EQ(held.size(), 2u);
        EXPECT_EQ(held[0].name, "pc.ram");
        EXPECT_EQ(held[1].name, "ram-node0");
    }

    std::string preserved;
    std::vector<std::string> names{"pc.ram", "ram-node0"}; // as DomainInfo::ram_files
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
    auto held = preserve_ram(empty, preserved, names);
    ASSERT_FALSE(held);
    EXPECT_EQ(held.error().code, Errc::verify);
    EXPECT_TRUE(contains(held.error().message(), empty + "/pc.ram is missing"))
        << held.error().message();
    auto none = preserve_ram(ram_dir, preserved, {});
    ASSERT_FALSE(none);
    EXPECT_TRUE(contains(none.error().message(), "no RAM file")) << none.error().message();
}

TEST_F(RamDir, PreserveHoldsTheDomainsRamFilesByNameOnly) {
    // Files the domain's backends do not name are not RAM, whatever they hold.
    write_file(ram_dir + "/pc.ram.swap", 4096);
    write_file(ram_dir + "/ram-node7", 4096);
    auto held = preserve_ok();
    ASSERT_NO_FATAL_FAILURE(expect_both(held));
    EXPECT_FALSE(exists(preserved + "/pc.ram.swap"));
    EXPECT_FALSE(exists(preserved + "/ram-node7"));
    auto bad = preserve_ram(ram_dir, preserved, {"../pc.ram"});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_input);
}

TEST_F(RamDir, PreserveRefusesARamFileMovedAside) {
    // Seen in the fault suite: the QEMU user swaps pc.ram with a link
    // (RENAME_EXCHANGE) just as the hook holds the RAM. Holding the real file
    // under its new name made the restore link "pc.ram.swap", and QEMU created
    // an empty pc.ram beside it: the guest's RAM read as zeros.
    ASSERT_EQ(::rename((ram_dir + "/pc.ram").c_str(), (ram_dir + "/pc.ram.swap").c_str()), 0);
    ASSERT_EQ(::symlink("/nonexistent", (ram_dir + "/pc.ram").c_str()), 0);
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_FALSE(held) << "held a RAM file under a name QEMU does not use";
    EXPECT_EQ(held.error().code, Errc::verify);
    EXPECT_TRUE(
        contains(held.error().message(), ram_dir + "/pc.ram is missing or not a regular file"))
        << held.error().message();
    EXPECT_FALSE(exists(preserved + "/pc.ram.swap"));
    EXPECT_FALSE(fs::is_symlink(preserved + "/pc.ram"));
}

TEST_F(RamDir, PreserveIgnoresSubdirectories) {
    ASSERT_EQ(::mkdir((ram_dir + "/sub").c_str(), 0755), 0);
    write_file(ram_dir + "/sub/inner.ram", 512);
    auto held = preserve_ok();
    ASSERT_NO_FATAL_FAILURE(expect_both(held));
    EXPECT_FALSE(exists(preserved + "/sub"));
    EXPECT_FALSE(exists(preserved + "/inner.ram"));

    // A directory holding nothing but a subdirectory holds no RAM.
    std::string only_sub = backing + "/9-sub";
    ASSERT_EQ(::mkdir(only_sub.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((only_sub + "/sub").c_str(), 0755), 0);
    auto none = preserve_ram(only_sub, tmp / "other-preserved", names);
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
    ASSERT_NO_FATAL_FAILURE(expect_both(held));
    EXPECT_FALSE(exists(preserved + "/evil"));
    EXPECT_EQ(stat_of(outside).st_nlink, 1u);
}

TEST_F(RamDir, PreserveOfAMissingDirectoryIsAnError) {
    auto held = preserve_ram(backing + "/99-gone", preserved, names);
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

TEST(FindRamDir, FindsEitherCutOfALongMultibyteName) {
    TempDir tmp;
    std::string backing = tmp / "ram";
    ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
    const std::string e_acute = "\xC3\xA9";
    const std::string name = repeat(e_acute, 25);
    const std::string by_chars = "4-" + repeat(e_acute, 20); // UTF-8 locale
    const std::string by_bytes = "4-" + repeat(e_acute, 10); // C locale
    EXPECT_EQ(libvirt_short_name(4, name), by_chars);
    EXPECT_EQ(libvirt_short_name_bytes(4, name), by_bytes);

    auto none = find_domain_ram_dir(backing, 4, name);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, Errc::not_found);
    EXPECT_TRUE(contains(none.error().message(), by_chars)) << none.error().message();
    EXPECT_TRUE(contains(none.error().message(), by_bytes)) << none.error().message();

    ASSERT_EQ(::mkdir((backing + "/" + by_bytes).c_str(), 0755), 0);
    auto found = find_domain_ram_dir(backing, 4, name);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(*found, backing + "/" + by_bytes);

    ASSERT_EQ(::mkdir((backing + "/" + by_chars).c_str(), 0755), 0);
    auto both = find_domain_ram_dir(backing, 4, name);
    ASSERT_FALSE(both) << *both;
    EXPECT_EQ(both.error().code, Errc::refused);

    ASSERT_EQ(::rmdir((backing + "/" + by_bytes).c_str()), 0);
    found = find_domain_ram_dir(backing, 4, name);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(*found, backing + "/" + by_chars);

    // The byte cut may split a character, as libvirt's "%.*s" does.
    const std::string nihon = "\xE6\x97\xA5";
    std::string split_name = repeat(nihon, 10);
    std::string cut = "5-" + split_name.substr(0, 20);
    ASSERT_EQ(::mkdir((backing + "/" + cut).c_str(), 0755), 0);
    found = find_domain_ram_dir(backing, 5, split_name);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(*found, backing + "/" + cut);
}

TEST(FindRamDir, AsciiNamesHaveOneCutAndLinksAreRefused) {
    TempDir tmp;
    std::string backing = tmp / "ram";
    ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((backing + "/12-a-rather-long-domain").c_str(), 0755), 0);
    auto found = find_domain_ram_dir(backing, 12, "a-rather-long-domain-name-indeed");
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(*found, backing + "/12-a-rather-long-domain");

    ASSERT_EQ(::symlink(tmp.path().c_str(), (backing + "/13-web1").c_str()), 0);
    auto link = find_domain_ram_dir(backing, 13, "web1");
    ASSERT_FALSE(link) << *link;
    EXPECT_EQ(link.error().code, Errc::refused);
    EXPECT_TRUE(contains(link.error().message(), "symbolic link")) << link.error().message();
}

// The QEMU user as an attacker: it owns memory_backing_dir and the RAM
// directories in it, and plants links or swaps entries there while root works.
namespace {

constexpr uid_t attacker_uid = 65534; // nobody
constexpr gid_t attacker_gid = 65534;

// Runs `act` in a child process that has become the attacker; returns the
// child's pid when `wait` is false (the caller kills it), else its exit status.
pid_t as_attacker(const std::function<bool()>& act, bool wait = true) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(attacker_gid) != 0 ||
            ::setuid(attacker_uid) != 0)
            ::_exit(99);
        ::_exit(act() ? 0 : 1);
    }
    if (!wait || pid < 0)
        return pid;
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Everything under `root` as it is: any change to the victim shows.
std::map<std::string, std::string> snapshot(const std::string& root) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
        struct stat st {};
        ::lstat(e.path().c_str(), &st);
        out[fs::relative(e.path(), root).string()] =
            std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + " " +
            std::to_string(st.st_size) + " " + std::to_string(st.st_ino) + " " +
            std::to_string(st.st_nlink);
    }
    return out;
}

class RamAttack : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0)
            GTEST_SKIP() << "the attacks need root to play both sides";
        ASSERT_FALSE(tmp.path().empty());
        if (as_attacker([] { return true; }) == 99)
            GTEST_SKIP() << "cannot switch to uid " << attacker_uid;
        // The attacker reaches the backing directory, as the QEMU user does.
        ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
        ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
        ASSERT_EQ(::chown(backing.c_str(), attacker_uid, attacker_gid), 0);
        ASSERT_EQ(as_attacker([this] {
                      if (::mkdir(ram_dir.c_str(), 0755) != 0)
                          return false;
                      int fd = ::open((ram_dir + "/pc.ram").c_str(), O_WRONLY | O_CREAT, 0600);
                      return fd >= 0 && ::ftruncate(fd, 4096) == 0 && ::close(fd) == 0;
                  }),
                  0);
        // Root's own files, which no attack may touch.
        ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir((victim + "/" + uuid).c_str(), 0700), 0);
        write_file(victim + "/" + uuid + "/pc.ram", 4096, 's');
        write_file(victim + "/pc.ram", 4096, 's');
        write_file(victim + "/secret", 100, 's');
        before = snapshot(victim);
        ASSERT_EQ(before.size(), 4u);
        auto p = preserved_dir(backing, uuid);
        ASSERT_TRUE(p) << p.error().message();
        preserved = *p;
    }

    void expect_victim_intact() {
        EXPECT_EQ(snapshot(victim), before) << "root's directory was changed";
    }

    TempDir tmp;
    std::string backing = tmp / "ram";
    std::string ram_dir = backing + "/7-web1";
    std::string victim = tmp / "victim";
    std::string preserved;
    std::vector<std::string> names{"pc.ram"};
    std::map<std::string, std::string> before;
};

} // namespace

TEST_F(RamAttack, PreserveWorksInTheQemuUsersDirectory) {
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_TRUE(held) << held.error().message();
    ASSERT_EQ(held->size(), 1u);
    struct stat top = stat_of(backing + "/vmupdate");
    EXPECT_EQ(top.st_uid, 0u);
    EXPECT_EQ(top.st_mode & 07777, 0700u);
    EXPECT_EQ(stat_of(preserved).st_uid, 0u);
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, stat_of(ram_dir + "/pc.ram").st_ino);
    auto ok = drop_preserved(preserved);
    EXPECT_TRUE(ok) << ok.error().message();
    EXPECT_FALSE(exists(preserved));
}

TEST_F(RamAttack, PreserveRefusesAVmupdateDirectoryTheQemuUserMade) {
    std::string top = backing + "/vmupdate";
    ASSERT_EQ(as_attacker([&] {
                  return ::mkdir(top.c_str(), 0777) == 0 && ::chmod(top.c_str(), 0777) == 0;
              }),
              0);
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_FALSE(held) << "preserved into the QEMU user's directory";
    EXPECT_EQ(held.error().code, Errc::refused);
    EXPECT_TRUE(contains(held.error().message(), top)) << held.error().message();
    EXPECT_TRUE(contains(held.error().message(), "uid 65534")) << held.error().message();
    struct stat st = stat_of(top);
    EXPECT_EQ(st.st_uid, attacker_uid) << "taken over";
    EXPECT_EQ(st.st_mode & 07777, 0777u) << "changed";
    EXPECT_FALSE(exists(preserved));
    EXPECT_EQ(stat_of(ram_dir + "/pc.ram").st_nlink, 1u);
}

TEST_F(RamAttack, PreserveRefusesAVmupdateLinkToRootsDirectory) {
    std::string top = backing + "/vmupdate";
    ASSERT_EQ(as_attacker([&] { return ::symlink(victim.c_str(), top.c_str()) == 0; }), 0);
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_FALSE(held);
    EXPECT_EQ(held.error().code, Errc::refused);
    EXPECT_TRUE(contains(held.error().message(), "symbolic link")) << held.error().message();
    expect_victim_intact();
    auto dropped = drop_preserved(preserved);
    EXPECT_FALSE(dropped);
    expect_victim_intact();
}

TEST_F(RamAttack, PreserveDoesNotFollowARamDirectoryLink) {
    // Root's directory holds a file named like RAM: it must not be linked.
    ASSERT_EQ(as_attacker([&] {
                  return ::rename(ram_dir.c_str(), (backing + "/elsewhere").c_str()) == 0 &&
                         ::symlink(victim.c_str(), ram_dir.c_str()) == 0;
              }),
              0);
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_FALSE(held) << "linked " << held->size() << " file(s) of root's";
    EXPECT_EQ(held.error().code, Errc::refused);
    EXPECT_FALSE(exists(preserved + "/pc.ram"));
    EXPECT_FALSE(exists(preserved + "/secret"));
    expect_victim_intact();

    // Nor are the preserved links put through it.
    ASSERT_EQ(::unlink(ram_dir.c_str()), 0);
    ASSERT_EQ(::rename((backing + "/elsewhere").c_str(), ram_dir.c_str()), 0);
    auto ok = preserve_ram(ram_dir, preserved, names);
    ASSERT_TRUE(ok) << ok.error().message();
    std::string next = backing + "/8-web1";
    ASSERT_EQ(as_attacker([&] { return ::symlink(victim.c_str(), next.c_str()) == 0; }), 0);
    auto put = reinstate_ram("web1", *ok, next);
    EXPECT_FALSE(put);
    auto used = verify_in_use("web1", next, *ok);
    EXPECT_FALSE(used);
    expect_victim_intact();
}

TEST_F(RamAttack, PreserveSkipsARamFileThatIsALink) {
    ASSERT_EQ(
        as_attacker([&] {
            return ::symlink((victim + "/secret").c_str(), (ram_dir + "/ram-node0").c_str()) == 0 &&
                   ::symlink((victim + "/pc.ram").c_str(), (ram_dir + "/memdimm0").c_str()) == 0;
        }),
        0);
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_TRUE(held) << held.error().message();
    ASSERT_EQ(held->size(), 1u);
    EXPECT_EQ((*held)[0].name, "pc.ram");
    EXPECT_FALSE(exists(preserved + "/ram-node0"));
    EXPECT_FALSE(exists(preserved + "/memdimm0"));
    expect_victim_intact();
}

TEST_F(RamAttack, DropDoesNotFollowAVmupdateLinkToRootsDirectory) {
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_TRUE(held) << held.error().message();
    // The victim holds a directory named like the domain's preserved one.
    std::string top = backing + "/vmupdate";
    ASSERT_EQ(as_attacker([&] {
                  return ::rename(top.c_str(), (backing + "/moved").c_str()) == 0 &&
                         ::symlink(victim.c_str(), top.c_str()) == 0;
              }),
              0);
    auto ok = drop_preserved(preserved);
    ASSERT_FALSE(ok) << "dropped through the link";
    EXPECT_EQ(ok.error().code, Errc::refused);
    expect_victim_intact();
    // What vmupdate holds is still held, wherever the QEMU user moved it.
    EXPECT_EQ(stat_of(ram_dir + "/pc.ram").st_nlink, 2u);
}

TEST_F(RamAttack, VerifyRefusesAPreservedDirectoryTheQemuUserSwapped) {
    auto held = preserve_ram(ram_dir, preserved, names);
    ASSERT_TRUE(held) << held.error().message();
    std::string top = backing + "/vmupdate";
    // The attacker's own directory, with its own link to the same RAM file.
    ASSERT_EQ(as_attacker([&] {
                  return ::rename(top.c_str(), (backing + "/moved").c_str()) == 0 &&
                         ::mkdir(top.c_str(), 0755) == 0 && ::mkdir(preserved.c_str(), 0755) == 0 &&
                         ::link((ram_dir + "/pc.ram").c_str(), (preserved + "/pc.ram").c_str()) ==
                             0;
              }),
              0);
    auto ok = verify_preserved("web1", *held);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::refused);
    EXPECT_TRUE(contains(ok.error().message(), "uid 65534")) << ok.error().message();
}

TEST_F(RamAttack, SwappingVmupdateForALinkNeverReachesRootsDirectory) {
    // The attacker swaps vmupdate and a link to root's directory back and forth
    // while root preserves and drops the RAM.
    std::string top = backing + "/vmupdate";
    std::string bait = backing + "/bait";
    ASSERT_EQ(as_attacker([&] { return ::symlink(victim.c_str(), bait.c_str()) == 0; }), 0);
    ASSERT_TRUE(preserve_ram(ram_dir, preserved, names));
    pid_t pid = as_attacker(
        [&] {
            for (;;)
                ::renameat2(AT_FDCWD, top.c_str(), AT_FDCWD, bait.c_str(), RENAME_EXCHANGE);
            return true;
        },
        false);
    ASSERT_GT(pid, 0);
    int preserved_ok = 0, dropped_ok = 0;
    for (int i = 0; i < 200; ++i) {
        if (preserve_ram(ram_dir, preserved, names))
            ++preserved_ok;
        if (drop_preserved(preserved))
            ++dropped_ok;
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    expect_victim_intact();
    // Not a check, a sign the race ran both ways.
    std::cout << "preserved " << preserved_ok << ", dropped " << dropped_ok << " of 200\n";
}

TEST(MakeDirAttack, RefusesADirectoryAnotherUserMadeFirst) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";
    TempDir tmp;
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
    std::string shared = tmp / "shared";
    ASSERT_EQ(::mkdir(shared.c_str(), 01777), 0); // sticky, like /tmp
    ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
    std::string dir = shared + "/mine";
    if (as_attacker([&] {
            return ::mkdir(dir.c_str(), 0777) == 0 && ::chmod(dir.c_str(), 0777) == 0;
        }) == 99)
        GTEST_SKIP() << "cannot switch to uid " << attacker_uid;
    auto made = make_dir(dir, 0700);
    ASSERT_FALSE(made) << "adopted another user's directory";
    EXPECT_EQ(made.error().code, Errc::refused);
    EXPECT_TRUE(contains(made.error().message(), dir)) << made.error().message();
    EXPECT_TRUE(contains(made.error().message(), "uid 65534")) << made.error().message();
    EXPECT_EQ(stat_of(dir).st_mode & 07777, 0777u);
    // Handing it to that user is another matter: it is theirs already.
    auto theirs = make_dir(dir, 0700, Owner{attacker_uid, attacker_gid});
    EXPECT_TRUE(theirs) << theirs.error().message();
}

TEST(MakeDirAttack, RefusesToCreateInADirectoryAnotherUserCanChange) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";
    TempDir tmp;
    std::string theirs = tmp / "theirs";
    ASSERT_EQ(::mkdir(theirs.c_str(), 0755), 0);
    ASSERT_EQ(::chown(theirs.c_str(), attacker_uid, attacker_gid), 0);
    ASSERT_EQ(::mkdir((theirs + "/sub").c_str(), 0755), 0);
    for (std::string path : {theirs + "/state", theirs + "/sub/state"}) {
        auto made = make_dir(path, 0700);
        ASSERT_FALSE(made) << path;
        EXPECT_EQ(made.error().code, Errc::refused) << path;
        EXPECT_TRUE(contains(made.error().message(), "uid 65534")) << made.error().message();
        EXPECT_FALSE(exists(path));
    }
    std::string open = tmp / "open";
    ASSERT_EQ(::mkdir(open.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
    EXPECT_FALSE(make_dir(open + "/state", 0700));
    // Links on the way are fine when they are root's, in root's directories.
    ASSERT_EQ(::mkdir((tmp / "real").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("real", (tmp / "alias").c_str()), 0);
    auto made = make_dir(tmp / "alias/state", 0700);
    EXPECT_TRUE(made) << made.error().message();
    EXPECT_TRUE(exists(tmp / "real/state"));
}
