// The libvirt qemu hook, driven the way libvirtd drives it, on temporary
// directories standing in for the host's.
#include "fsutil.hpp"
#include "save_image_fixture.hpp"
#include "temp_dir.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <gtest/gtest.h>
#include <map>
#include <pwd.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace vmupdate;
namespace fs = std::filesystem;

namespace {

constexpr const char* uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
constexpr const char* helper = "/bin/true";

using TempDir = vmupdate::testing::TempDir;

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good()) << path;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

// Everything under `root`: relative path -> type, size, mode, inode.
using Tree = std::map<std::string, std::string>;
Tree tree(const std::string& root) {
    Tree out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        struct stat st = stat_of(e.path().string());
        out[fs::relative(e.path(), root).string()] =
            std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
            std::to_string(st.st_ino) + " " + std::to_string(st.st_nlink);
    }
    return out;
}

// A domain as libvirt hands it to the hook; `id` < 0 leaves the id out (an
// inactive definition, as in a restore).
std::string domain_xml(bool managed, int id = 7, const std::string& name = "web1") {
    std::string xml = "<domain type='qemu'" +
                      (id >= 0 ? " id='" + std::to_string(id) + "'" : std::string()) + ">\n";
    xml += "  <name>" + name + "</name>\n";
    xml += std::string("  <uuid>") + uuid + "</uuid>\n";
    if (managed)
        xml += "  <metadata>\n"
               "    <vmupdate:managed xmlns:vmupdate='urn:vmupdate:domain:1' version='1'/>\n"
               "  </metadata>\n";
    xml += "  <memory unit='KiB'>4</memory>\n";
    if (managed)
        xml += "  <memoryBacking>\n"
               "    <source type='file'/>\n"
               "    <access mode='shared'/>\n"
               "  </memoryBacking>\n";
    xml += "  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n  </os>\n"
           "  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n"
           "</domain>\n";
    return xml;
}

// Every operation libvirt runs the qemu hook for, as (op, subop).
const std::vector<std::pair<std::string, std::string>> all_ops = {
    {"prepare", "begin"}, {"start", "begin"},     {"started", "begin"},
    {"stopped", "end"},   {"release", "end"},     {"restore", "begin"},
    {"migrate", "begin"}, {"reconnect", "begin"}, {"attach", "begin"},
};

class Hook : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(tmp.path().empty());
        paths.state_dir = tmp / "state";
        paths.run_dir = tmp / "run";
        paths.log_file = tmp / "log/hook.log";
        paths.qemu_conf = tmp / "qemu.conf";
        paths.save_dir = tmp / "save";
        paths.hooks_dir = tmp / "hooks";
        paths.config_file = tmp / "vmupdate.conf"; // none: the defaults, whatever /etc holds
        ASSERT_EQ(::mkdir(paths.save_dir.c_str(), 0700), 0);
        // The QEMU user is this test's own, so that the hook can hand it the
        // restore's socket directory without privileges.
        write_file(paths.qemu_conf, "# test configuration\nmemory_backing_dir = \"" +
                                        (tmp / "ram") + "\"\nuser = \"+" +
                                        std::to_string(::getuid()) + "\"\ngroup = \"+" +
                                        std::to_string(::getgid()) + "\"\n");
        // Where libvirt puts the RAM directories for that setting.
        auto dir = memory_backing_dir(paths.qemu_conf);
        ASSERT_TRUE(dir) << dir.error().message();
        backing = *dir;
        ASSERT_TRUE(backing.starts_with(tmp / "ram")) << backing;
        fs::create_directories(backing);
        preserved = backing + "/vmupdate/" + uuid;
    }

    HookOutcome run(const std::string& op, const std::string& subop, const std::string& xml,
                    const std::string& extra = "-") {
        return run_hook(paths, HookCall{"web1", op, subop, extra, xml}, helper);
    }

    // libvirt's (empty) RAM directory of a domain running with `id`, created
    // before the start hook runs (qemuProcessPrepareHost).
    std::string make_ram_dir(int id) {
        std::string dir = domain_ram_dir(backing, id, "web1");
        EXPECT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
        return dir;
    }

    // A domain running with id 7 and one RAM file, under the settings file `settings`.
    std::string running_with_settings(const std::string& settings) {
        std::string dir = make_ram_dir(7);
        write_file(dir + "/pc.ram", std::string(4096, 'r'));
        paths.config_file = tmp / "vmupdate.conf";
        write_file(paths.config_file, settings);
        return dir;
    }

    StateDir state() {
        auto s = StateDir::open(paths.state_dir);
        EXPECT_TRUE(s) << s.error().message();
        return std::move(s).value(); // throws, failing the test, on error
    }

    std::optional<Manifest> manifest() {
        auto m = state().load(uuid);
        EXPECT_TRUE(m) << m.error().message();
        return m ? *m : std::nullopt;
    }

    // What `vmupdate save` leaves behind: preserved RAM, a managed-save image
    // and a manifest in state saved whose checksum matches the image.
    Manifest save() {
        std::string dir = make_ram_dir(7);
        write_file(dir + "/pc.ram", std::string(4096, 'r'));
        auto held = preserve_ram(dir, preserved, {"pc.ram"});
        EXPECT_TRUE(held) << held.error().message();
        fs::remove_all(dir); // the domain stopped
        std::string image = managed_save_image(paths, "web1");
        const std::string content = vmupdate::testing::save_image();
        write_file(image, content);
        auto sum = sha256_file(image);
        EXPECT_TRUE(sum) << sum.error().message();
        Manifest m;
        m.uuid = uuid;
        m.name = "web1";
        m.state = SaveState::saved;
        m.ram = held ? *held : std::vector<RamFile>{};
        m.image = image;
        m.image_size = content.size();
        m.image_sha256 = sum ? *sum : "";
        m.machine_type = "pc";
        auto ok = state().store(m);
        EXPECT_TRUE(ok) << ok.error().message();
        return m;
    }

    TempDir tmp;
    Paths paths;
    std::string backing, preserved;
};

void expect_silent(const HookOutcome& out, const std::string& what) {
    EXPECT_EQ(out.exit_code, 0) << what;
    EXPECT_EQ(out.output, "") << what;
    EXPECT_EQ(out.error, "") << what;
    EXPECT_TRUE(out.log.empty()) << what << ": " << (out.log.empty() ? "" : out.log[0]);
}

std::string stripped_of_monitor(const std::string& xml) {
    auto s = strip_private_monitor(xml);
    EXPECT_TRUE(s && s->has_value());
    return s && s->has_value() ? **s : std::string();
}

} // namespace

TEST_F(Hook, LeavesUnmanagedDomainsAlone) {
    // Even with RAM files where a managed domain's would be.
    std::string dir = make_ram_dir(7);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    Tree before = tree(tmp.path());
    for (const auto& [op, subop] : all_ops) {
        expect_silent(run(op, subop, domain_xml(false)), op + " " + subop);
        expect_silent(run(op, subop, domain_xml(false, -1)), op + " " + subop + " (inactive)");
    }
    EXPECT_EQ(tree(tmp.path()), before);
    EXPECT_FALSE(exists(paths.state_dir));
    EXPECT_FALSE(exists(backing + "/vmupdate"));
}

TEST_F(Hook, LeavesUnmanagedDomainsAloneEvenWithAManifest) {
    // A domain that is no longer marked managed is not vmupdate's business,
    // whatever an old manifest says.
    Manifest m = save();
    Tree before = tree(tmp.path());
    for (const auto& [op, subop] : all_ops)
        expect_silent(run(op, subop, domain_xml(false, 8)), op + " " + subop);
    EXPECT_EQ(tree(tmp.path()), before);
    EXPECT_EQ(manifest(), m);
}

namespace {
// What a management layer that regenerates definitions (Nova) hands libvirt:
// shared file RAM, vmupdate's mark gone.
std::string unmarked_file_backed(int id) {
    std::string xml = domain_xml(true, id);
    auto from = xml.find("  <metadata>");
    auto to = xml.find("</metadata>\n") + std::string("</metadata>\n").size();
    return xml.erase(from, to - from);
}
} // namespace

TEST_F(Hook, ADomainVmupdateSavedStaysItsOwnWithoutTheMark) {
    // Restoring it without the hook would feed QEMU an x-ignore-shared stream
    // without the RAM, and libvirt would then delete the image.
    save();
    auto out = run("restore", "begin", unmarked_file_backed(-1));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    EXPECT_TRUE(contains(out.output, "socket,id=vmupdate-qmp")) << out.output;
    auto after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::restoring);
}

TEST_F(Hook, FileBackedPolicyTakesUnmarkedDomainsAndMarkedLeavesThemAlone) {
    std::string dir = running_with_settings("manage = marked\n");
    Tree before = tree(tmp.path());
    expect_silent(run("started", "begin", unmarked_file_backed(7)), "manage = marked");
    EXPECT_EQ(tree(tmp.path()), before);
    write_file(paths.config_file, "manage = file-backed\n");
    auto out = run("started", "begin", unmarked_file_backed(7));
    EXPECT_EQ(out.exit_code, 0);
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, stat_of(dir + "/pc.ram").st_ino);
}

TEST_F(Hook, ABrokenSettingsFileFallsBackToMarked) {
    running_with_settings("manage = everything\n");
    Tree before = tree(tmp.path());
    expect_silent(run("started", "begin", unmarked_file_backed(7)), "broken settings");
    EXPECT_EQ(tree(tmp.path()), before);
    // A marked domain is still handled, and the hook says why it ignored the file.
    auto out = run("started", "begin", domain_xml(true, 7));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
    bool said = false;
    for (const auto& l : out.log)
        said = said || contains(l, "settings ignored");
    EXPECT_TRUE(said);
}

TEST_F(Hook, IgnoresXmlItCannotRead) {
    Tree before = tree(tmp.path());
    for (const std::string xml : {"", "garbage", "<domain", "<network><name>n</name></network>",
                                  "<domain type='qemu'><uuid>x</uuid></domain>"}) {
        for (const auto& [op, subop] : all_ops)
            expect_silent(run(op, subop, xml), op + " " + subop + " on '" + xml + "'");
    }
    EXPECT_EQ(tree(tmp.path()), before);
}

TEST_F(Hook, IgnoresAManagedDomainWithoutACanonicalUuid) {
    std::string xml = domain_xml(true);
    xml.replace(xml.find(uuid), std::string(uuid).size(), "C7A5FDBD-EDAF-9455-926A-D65C16DB1809");
    std::string dir = make_ram_dir(7);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    Tree before = tree(tmp.path());
    auto out = run("started", "begin", xml);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    EXPECT_EQ(tree(tmp.path()), before);
}

TEST_F(Hook, StartedPreservesTheRam) {
    std::string dir = make_ram_dir(7);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    auto out = run("started", "begin", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    ASSERT_FALSE(out.log.empty());
    EXPECT_TRUE(contains(out.log[0], "pc.ram")) << out.log[0];
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, stat_of(dir + "/pc.ram").st_ino);
    EXPECT_EQ(stat_of(preserved).st_mode & 07777, 0700u);
}

TEST_F(Hook, StartedCutsLongNamesLikeLibvirt) {
    const std::string name = "a-rather-long-domain-name-indeed";
    std::string dir = domain_ram_dir(backing, 12, name);
    ASSERT_EQ(dir, backing + "/12-a-rather-long-domain");
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    auto out = run_hook(paths, HookCall{name, "started", "begin", "-", domain_xml(true, 12, name)},
                        helper);
    EXPECT_EQ(out.exit_code, 0);
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, stat_of(dir + "/pc.ram").st_ino);
}

TEST_F(Hook, ReleaseDropsTheRamOfADomainStoppedForGood) {
    std::string dir = make_ram_dir(7);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    ASSERT_EQ(run("started", "begin", domain_xml(true)).exit_code, 0);
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    fs::remove_all(dir); // libvirt removes its RAM directory on stop

    auto out = run("release", "end", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    EXPECT_FALSE(exists(preserved));
    EXPECT_FALSE(manifest().has_value());
}

// Seen in fault.attacker: the QEMU user planted its own `vmupdate` directory, so
// the links of a finished restore could not be dropped at the stop; the manifest
// stayed "restored" and the next `vmupdate restore` of the cold-started domain
// compared its new RAM with the old save.
TEST_F(Hook, ReleaseForgetsAFinishedSaveEvenWhenItsLinksCannotGo) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to plant another user's directory";
    Manifest m = save();
    m.state = SaveState::restored;
    ASSERT_TRUE(state().store(m));
    ::unlink(m.image.c_str()); // libvirt deletes the image of a finished restore
    std::string top = backing + "/vmupdate";
    fs::rename(top, backing + "/stolen");
    ASSERT_EQ(::mkdir(top.c_str(), 0777), 0);
    ASSERT_EQ(::chown(top.c_str(), 65534, 65534), 0);

    auto out = run("release", "end", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_FALSE(manifest().has_value()) << "a finished save's manifest outlived the domain";
    std::string log;
    for (const auto& l : out.log)
        log += l + "\n";
    EXPECT_TRUE(contains(log, "the save's manifest is removed, the links stay")) << log;
    EXPECT_EQ(stat_of(top).st_uid, 65534u) << "the planted directory was changed";
}

// A stock managed save holds the whole RAM in its image: pinning the old RAM too
// would keep two copies, and on a full pmem pool block the stock restore.
TEST_F(Hook, ReleaseDropsTheRamOfAStockManagedSave) {
    std::string dir = make_ram_dir(7);
    write_file(dir + "/pc.ram", std::string(4096, 'r'));
    ASSERT_EQ(run("started", "begin", domain_xml(true)).exit_code, 0);
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    write_file(managed_save_image(paths, "web1"), "image");
    fs::remove_all(dir);

    auto out = run("release", "end", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_FALSE(exists(preserved));
    EXPECT_TRUE(exists(managed_save_image(paths, "web1")));
}

TEST_F(Hook, ReleaseKeepsTheRamOfASavedDomain) {
    Manifest m = save();
    auto out = run("release", "end", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    ASSERT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_EQ(manifest(), m);
    // Even when the image is gone: the manifest alone decides.
    ASSERT_EQ(::unlink(m.image.c_str()), 0);
    out = run("release", "end", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_EQ(manifest(), m);
}

TEST_F(Hook, StartedLeavesTheRamOfASavedDomainAsItIs) {
    Manifest m = save();
    // A start that is not a vmupdate restore, with fresh RAM of its own.
    std::string dir = make_ram_dir(8);
    write_file(dir + "/pc.ram", std::string(8192, 'n'));
    auto out = run("started", "begin", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, m.ram[0].inode);
    EXPECT_EQ(manifest(), m);
}

TEST_F(Hook, RestoreWithoutManifestIsAStockRestore) {
    auto out = run("restore", "begin", domain_xml(true, -1));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    EXPECT_EQ(out.error, "");
    EXPECT_FALSE(manifest().has_value());
    EXPECT_FALSE(exists(paths.run_dir + "/qmp"));
    EXPECT_FALSE(exists(backing + "/vmupdate"));
}

TEST_F(Hook, RestoreWithoutManifestStripsAnOldPrivateMonitor) {
    auto with =
        add_private_monitor(domain_xml(true, -1), tmp / "run/qmp/0011223344556677/qmp.sock");
    ASSERT_TRUE(with) << with.error().message();
    ASSERT_TRUE(contains(*with, "vmupdate-qmp"));
    auto out = run("restore", "begin", *with);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_FALSE(out.output.empty());
    EXPECT_FALSE(contains(out.output, "vmupdate-qmp")) << out.output;
    EXPECT_FALSE(contains(out.output, "commandline")) << out.output;
    EXPECT_EQ(out.output, stripped_of_monitor(*with));
    // The rest of the definition survives.
    auto info = inspect_domain(out.output, "output");
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->name, "web1");
    EXPECT_EQ(info->uuid, uuid);
    EXPECT_TRUE(info->managed);
    EXPECT_TRUE(info->shared_file_ram);
    EXPECT_FALSE(manifest().has_value());
}

TEST_F(Hook, RestoreOfAnImageVmupdateDidNotSaveIsAStockRestore) {
    Manifest m = save();
    // libvirt's own managed save replaced vmupdate's image.
    write_file(m.image, "another image altogether");
    auto out = run("restore", "begin", domain_xml(true, -1));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    EXPECT_EQ(manifest(), m);
    EXPECT_FALSE(exists(paths.run_dir + "/qmp"));

    // With an old private monitor in the XML: stripped, still stock.
    auto with =
        add_private_monitor(domain_xml(true, -1), tmp / "run/qmp/0011223344556677/qmp.sock");
    ASSERT_TRUE(with) << with.error().message();
    out = run("restore", "begin", *with);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, stripped_of_monitor(*with));
    EXPECT_EQ(manifest(), m);

    // Nor does the next start touch anything.
    std::string dir = make_ram_dir(8);
    out = run("start", "begin", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST_F(Hook, RestoreWithResizedRamIsRefusedAtStartNeverInTheRestoreHook) {
    Manifest m = save();
    ASSERT_EQ(::truncate(m.ram[0].preserved.c_str(), 8192), 0);

    // libvirt 11.3 deletes the managed-save image when the restore hook fails.
    auto out = run("restore", "begin", domain_xml(true, -1));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
    auto after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::restoring);
    EXPECT_EQ(after->attempt, "");
    EXPECT_TRUE(contains(after->last_error, "size is 8192 bytes, saved with 4096"))
        << after->last_error;

    // start begin fails, which keeps the image.
    std::string dir = make_ram_dir(8);
    out = run("start", "begin", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 1);
    EXPECT_TRUE(contains(out.error, "size is 8192 bytes, saved with 4096")) << out.error;
    EXPECT_TRUE(contains(out.error, "web1")) << out.error;
    EXPECT_TRUE(fs::is_empty(dir)) << "RAM linked for a refused restore";

    // libvirt then stops the domain it never started.
    fs::remove_all(dir);
    out = run("release", "end", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 0);
    after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::saved);
    EXPECT_EQ(after->attempt, "");
    EXPECT_TRUE(contains(after->last_error, "size is 8192 bytes")) << after->last_error;
    EXPECT_EQ(after->ram, m.ram);
    EXPECT_EQ(after->image_sha256, m.image_sha256);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_TRUE(exists(m.image));
}

TEST_F(Hook, ReleaseAfterARefusedRestoreLeavesOtherRestoresAlone) {
    Manifest m = save();
    ASSERT_EQ(::truncate(m.ram[0].preserved.c_str(), 8192), 0);
    ASSERT_EQ(run("restore", "begin", domain_xml(true, -1)).exit_code, 0);
    ASSERT_EQ(manifest()->attempt, "");

    // Another domain's restore is under way, its QMP socket in the run directory.
    std::string other =
        paths.run_dir + "/qmp/libvirt-0f2c8a4e-1d3b-4c5a-9e6f-7a8b9c0d1e2f.8899aabbccddeeff";
    fs::create_directories(other);
    write_file(other + "/qmp.sock", "");

    ASSERT_EQ(run("start", "begin", domain_xml(true, 8)).exit_code, 1);
    ASSERT_EQ(run("release", "end", domain_xml(true, 8)).exit_code, 0);
    EXPECT_TRUE(exists(other + "/qmp.sock"));
    EXPECT_EQ(manifest()->state, SaveState::saved);
}

TEST_F(Hook, RestoreOfAVmupdateSaveAddsThePrivateMonitor) {
    Manifest m = save();
    auto out = run("restore", "begin", domain_xml(true, -1));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    auto after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::restoring);
    EXPECT_EQ(after->last_error, "");
    // Named after the domain's AppArmor profile (libvirt-<uuid>), which the
    // rule libvirt-qemu.d/vmupdate grants only its own attempts' sockets.
    const std::string attempt = after->attempt;
    const std::string prefix = std::string("libvirt-") + uuid + ".";
    ASSERT_EQ(attempt.size(), prefix.size() + 16) << attempt;
    EXPECT_EQ(attempt.substr(0, prefix.size()), prefix);
    EXPECT_EQ(attempt.find_first_not_of("0123456789abcdef", prefix.size()), std::string::npos)
        << attempt;
    EXPECT_TRUE(is_attempt_of(attempt, uuid));
    EXPECT_FALSE(is_attempt_of(attempt, "0f2c8a4e-1d3b-4c5a-9e6f-7a8b9c0d1e2f"));

    const std::string socket = paths.run_dir + "/qmp/" + attempt + "/qmp.sock";
    EXPECT_TRUE(contains(out.output, "<qemu:arg value='-chardev'/>")) << out.output;
    // QEMU connects to root's socket (a client chardev): no QEMU listens on a
    // monitor another domain's QEMU could reach.
    EXPECT_TRUE(contains(out.output, "<qemu:arg value='socket,id=vmupdate-qmp,path=" + socket +
                                         ",server=off'/>"))
        << out.output;
    EXPECT_TRUE(contains(out.output, "<qemu:arg value='chardev=vmupdate-qmp,mode=control'/>"))
        << out.output;
    // The directory is root's (here: this user's) and only traversable; the
    // socket, already listening for the helper, is the QEMU group's to connect to.
    struct stat dir = stat_of(paths.run_dir + "/qmp/" + attempt);
    EXPECT_TRUE(S_ISDIR(dir.st_mode));
    EXPECT_EQ(dir.st_mode & 07777, 0711u);
    EXPECT_EQ(dir.st_uid, ::getuid());
    struct stat sock = stat_of(socket);
    EXPECT_TRUE(S_ISSOCK(sock.st_mode));
    EXPECT_EQ(sock.st_mode & 07777, 0660u);
    EXPECT_EQ(sock.st_uid, ::getuid());
    EXPECT_EQ(sock.st_gid, ::getgid());

    // start begin puts the preserved RAM where the new QEMU opens it; libvirt
    // passes the definition the restore hook returned, now with an id.
    std::string ram = make_ram_dir(8);
    auto restored_xml = add_private_monitor(domain_xml(true, 8), socket);
    ASSERT_TRUE(restored_xml) << restored_xml.error().message();
    out = run("start", "begin", *restored_xml);
    EXPECT_EQ(out.exit_code, 0) << out.error;
    ASSERT_TRUE(exists(ram + "/pc.ram"));
    EXPECT_EQ(stat_of(ram + "/pc.ram").st_ino, m.ram[0].inode);
    EXPECT_EQ(stat_of(ram + "/pc.ram").st_size, 4096);
    // started begin then finds the RAM it already holds.
    out = run("started", "begin", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_ino, m.ram[0].inode);
    EXPECT_EQ(stat_of(preserved + "/pc.ram").st_nlink, 2u);

    // QEMU fails to load the state: libvirt stops the domain.
    fs::remove_all(ram);
    out = run("release", "end", domain_xml(true, 8));
    EXPECT_EQ(out.exit_code, 0);
    after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::saved);
    EXPECT_EQ(after->attempt, "");
    EXPECT_TRUE(contains(after->last_error, attempt)) << after->last_error;
    EXPECT_FALSE(exists(paths.run_dir + "/qmp/" + attempt));
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
    EXPECT_TRUE(exists(m.image));
}

TEST_F(Hook, RestoreStartsQemuWithoutDiscardOrPreallocation) {
    // As Nova writes it: the restoring QEMU would punch the preserved RAM out of
    // its file if libvirt stopped it after a failed load, and preallocate it.
    save();
    std::string xml = domain_xml(true, -1);
    xml.replace(xml.find("  </memoryBacking>"), 0,
                "    <allocation mode='immediate'/>\n    <discard/>\n");
    auto out = run("restore", "begin", xml);
    EXPECT_EQ(out.exit_code, 0) << out.error;
    EXPECT_FALSE(contains(out.output, "discard")) << out.output;
    EXPECT_FALSE(contains(out.output, "allocation")) << out.output;
    EXPECT_TRUE(contains(out.output, "<access mode='shared'/>")) << out.output;
    EXPECT_TRUE(contains(out.output, "vmupdate-qmp")) << out.output;
    EXPECT_EQ(manifest()->state, SaveState::restoring);
}

TEST_F(Hook, RestoreReplacesAnOldPrivateMonitor) {
    save();
    const std::string old_socket = tmp / "run/qmp/0011223344556677/qmp.sock";
    auto with = add_private_monitor(domain_xml(true, -1), old_socket);
    ASSERT_TRUE(with) << with.error().message();
    auto out = run("restore", "begin", *with);
    EXPECT_EQ(out.exit_code, 0) << out.error;
    auto after = manifest();
    ASSERT_TRUE(after && !after->attempt.empty());
    EXPECT_FALSE(contains(out.output, old_socket)) << out.output;
    EXPECT_TRUE(contains(out.output, paths.run_dir + "/qmp/" + after->attempt + "/qmp.sock"))
        << out.output;
    size_t first = out.output.find("socket,id=vmupdate-qmp");
    ASSERT_NE(first, std::string::npos);
    EXPECT_EQ(out.output.find("socket,id=vmupdate-qmp", first + 1), std::string::npos)
        << out.output;
}

TEST_F(Hook, MigrateStripsThePrivateMonitor) {
    auto with = add_private_monitor(domain_xml(true), tmp / "run/qmp/0011223344556677/qmp.sock");
    ASSERT_TRUE(with) << with.error().message();
    auto out = run("migrate", "begin", *with);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, stripped_of_monitor(*with));
    EXPECT_FALSE(contains(out.output, "vmupdate-qmp")) << out.output;

    // Nothing to strip: libvirt keeps its XML.
    out = run("migrate", "begin", domain_xml(true));
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, "");
}

TEST_F(Hook, MigrateStripsThePrivateMonitorOfADomainNoLongerMarked) {
    // Nova rewrote the definition of a domain vmupdate restored: no mark, and
    // <discard/> back. The monitor would make QEMU fail on the destination.
    std::string xml = domain_xml(false);
    auto with = add_private_monitor(xml, tmp / "run/qmp/0011223344556677/qmp.sock");
    ASSERT_TRUE(with) << with.error().message();
    auto out = run("migrate", "begin", *with);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.output, stripped_of_monitor(*with));
    EXPECT_FALSE(contains(out.output, "vmupdate-qmp")) << out.output;
}

namespace {

class QemuUserTest : public ::testing::Test {
protected:
    Result<QemuUser> with(const std::string& conf) {
        write_file(path, conf);
        return qemu_user(path);
    }
    TempDir tmp;
    std::string path = tmp / "qemu.conf";
};

} // namespace

TEST_F(QemuUserTest, ReadsNumericIds) {
    auto u = with("user = \"+1234\"\ngroup = \"+5678\"\n");
    ASSERT_TRUE(u) << u.error().message();
    EXPECT_EQ(u->uid, 1234u);
    EXPECT_EQ(u->gid, 5678u);
    u = with("user = '+0'\ngroup = '+0'\n");
    ASSERT_TRUE(u) << u.error().message();
    EXPECT_EQ(u->uid, 0u);
    EXPECT_EQ(u->gid, 0u);
}

TEST_F(QemuUserTest, ResolvesNames) {
    passwd* pw = ::getpwuid(::getuid());
    ASSERT_NE(pw, nullptr);
    std::string user = pw->pw_name;
    struct group* gr = ::getgrgid(::getgid());
    ASSERT_NE(gr, nullptr);
    std::string group = gr->gr_name;
    auto u = with("user = \"" + user + "\"\ngroup = \"" + group + "\"\n");
    ASSERT_TRUE(u) << u.error().message();
    EXPECT_EQ(u->uid, ::getuid());
    EXPECT_EQ(u->gid, ::getgid());
}

TEST_F(QemuUserTest, DefaultsToLibvirtQemu) {
    // Debian's libvirt runs QEMU as libvirt-qemu:libvirt-qemu unless told otherwise.
    passwd* pw = ::getpwnam("libvirt-qemu");
    std::optional<unsigned> uid = pw ? std::optional<unsigned>(pw->pw_uid) : std::nullopt;
    struct group* gr = ::getgrnam("libvirt-qemu");
    std::optional<unsigned> gid = gr ? std::optional<unsigned>(gr->gr_gid) : std::nullopt;
    for (const std::string conf :
         {"", "# user = \"+1\"\n#group = \"+1\"\nmemory_backing_dir = \"/x\"\n",
          "user = \"\"\ngroup = \"\"\n"}) {
        auto u = with(conf);
        if (uid && gid) {
            ASSERT_TRUE(u) << u.error().message();
            EXPECT_EQ(u->uid, *uid) << conf;
            EXPECT_EQ(u->gid, *gid) << conf;
        } else {
            ASSERT_FALSE(u) << conf;
            EXPECT_EQ(u.error().code, Errc::not_found);
            EXPECT_EQ(u.error().object, "libvirt-qemu");
        }
    }
    auto missing = qemu_user(tmp / "no-such-qemu.conf");
    EXPECT_EQ(missing.has_value(), uid && gid);
    if (missing && uid && gid) {
        EXPECT_EQ(missing->uid, *uid);
        EXPECT_EQ(missing->gid, *gid);
    }
    // A group alone still defaults the user, and the other way round.
    if (uid) {
        auto u = with("group = \"+42\"\n");
        ASSERT_TRUE(u) << u.error().message();
        EXPECT_EQ(u->uid, *uid);
        EXPECT_EQ(u->gid, 42u);
    }
    if (gid) {
        auto u = with("user = \"+42\"\n");
        ASSERT_TRUE(u) << u.error().message();
        EXPECT_EQ(u->uid, 42u);
        EXPECT_EQ(u->gid, *gid);
    }
}

TEST_F(QemuUserTest, RejectsGarbage) {
    for (const std::string bad : {"+x", "+", "+12x", "+-1", "+ 1", "+4294967296", "++1"}) {
        auto u = with("user = \"" + bad + "\"\ngroup = \"+1\"\n");
        ASSERT_FALSE(u) << bad << " read as " << u->uid;
        EXPECT_EQ(u.error().code, Errc::invalid_input) << bad;
        EXPECT_EQ(u.error().object, bad);
        auto g = with("user = \"+1\"\ngroup = \"" + bad + "\"\n");
        ASSERT_FALSE(g) << bad << " read as " << g->gid;
        EXPECT_EQ(g.error().code, Errc::invalid_input) << bad;
    }
}

TEST_F(QemuUserTest, UnknownNamesAreNotFound) {
    auto u = with("user = \"vmupdate-no-such-user\"\ngroup = \"+1\"\n");
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Errc::not_found);
    EXPECT_EQ(u.error().object, "vmupdate-no-such-user");
    auto g = with("user = \"+1\"\ngroup = \"vmupdate-no-such-group\"\n");
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().code, Errc::not_found);
}

// A save interrupted after libvirt wrote the image but before vmupdate recorded
// its checksum (CLI killed, host crash): `virsh start` must restore it the
// vmupdate way, or QEMU rejects the stream (capability mismatch).
TEST_F(Hook, RestoreOfAnInterruptedSaveChecksTheImageItself) {
    Manifest m = save();
    m.state = SaveState::saving;
    m.image_size = 0;
    m.image_sha256.clear();
    ASSERT_TRUE(state().store(m));
    auto out = run("restore", "begin", domain_xml(true, -1));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    EXPECT_TRUE(contains(out.output, "vmupdate-qmp")) << out.output;
    auto after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::restoring);
    // What it lacked is recorded now, for retries.
    EXPECT_EQ(after->image_sha256, *sha256_file(m.image));
    EXPECT_EQ(after->image_size, vmupdate::testing::save_image().size());
}

TEST_F(Hook, InterruptedSaveWithAnIncompleteOrStockImageIsAStockRestore) {
    for (const auto& image :
         {vmupdate::testing::save_image(false, true), vmupdate::testing::save_image(true, false),
          vmupdate::testing::save_image(true, true, 1)}) {
        Manifest m = save();
        m.state = SaveState::saving;
        m.image_sha256.clear();
        write_file(m.image, image);
        ASSERT_TRUE(state().store(m));
        auto out = run("restore", "begin", domain_xml(true, -1));
        EXPECT_EQ(out.exit_code, 0);
        EXPECT_EQ(out.output, "");
        EXPECT_EQ(manifest(), m);
        fs::remove_all(backing + "/vmupdate");
        ASSERT_TRUE(state().remove(uuid));
    }
}

// libvirt 11.3 restores a domain with an image through `restore begin`; a plain
// start of a saved domain means the image is gone: deleted by --force-boot, or by
// libvirt because it could not read it. The guest may still be saved by putting
// the image back: no fresh boot until the operator discards the save.
TEST_F(Hook, ColdStartOfASavedDomainWithoutItsImageIsRefused) {
    Manifest m = save();
    ::unlink(m.image.c_str());
    make_ram_dir(9);
    auto out = run("start", "begin", domain_xml(true, 9));
    EXPECT_EQ(out.exit_code, 1);
    EXPECT_TRUE(contains(out.error, "vmupdate discard web1")) << out.error;
    EXPECT_EQ(manifest(), m);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
}

// A save interrupted before libvirt wrote the image has nothing to restore.
TEST_F(Hook, ColdStartAfterASaveThatWroteNoImageDropsIt) {
    Manifest m = save();
    m.state = SaveState::saving;
    m.image_sha256.clear();
    ASSERT_TRUE(state().store(m));
    ::unlink(m.image.c_str());
    make_ram_dir(9);
    auto out = run("start", "begin", domain_xml(true, 9));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    EXPECT_FALSE(manifest().has_value());
    EXPECT_FALSE(exists(preserved));
}

TEST_F(Hook, StartWithTheImageStillThereKeepsTheSave) {
    Manifest m = save();
    make_ram_dir(9);
    auto out = run("start", "begin", domain_xml(true, 9));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    EXPECT_EQ(manifest(), m);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
}

// A VM started while host-update saves every VM would die with the kexec.
TEST_F(Hook, ColdStartsAreRefusedWhileAHostUpdateRuns) {
    ASSERT_EQ(::mkdir(paths.run_dir.c_str(), 0711), 0);
    // This very process stands in for the running `vmupdate host-update`.
    auto me = std::to_string(::getpid());
    std::string stat;
    {
        std::ifstream in("/proc/self/stat");
        std::getline(in, stat);
    }
    std::string rest = stat.substr(stat.rfind(')') + 2);
    std::istringstream fields(rest);
    std::string field;
    for (int i = 3; i <= 22; ++i)
        fields >> field;
    write_file(host_update_mark(paths), me + " " + field + "\n");
    make_ram_dir(9);
    auto out = run("start", "begin", domain_xml(true, 9));
    EXPECT_EQ(out.exit_code, 1);
    EXPECT_TRUE(contains(out.error, "host-update")) << out.error;
    // A mark of a process that is gone (or a reused pid) does not count.
    write_file(host_update_mark(paths), me + " 1\n");
    out = run("start", "begin", domain_xml(true, 9));
    EXPECT_EQ(out.exit_code, 0) << out.error;
    // Unmanaged domains are never touched.
    write_file(host_update_mark(paths), me + " " + field + "\n");
    out = run("start", "begin", domain_xml(false, 9));
    EXPECT_EQ(out.exit_code, 0) << out.error;
}

// The manifest said restored (the helper finished) but libvirt stopped the domain
// before it ran and kept the image: that is a failed restore, not a stop for good.
TEST_F(Hook, ReleaseAfterALoadedButFailedRestoreKeepsTheSave) {
    Manifest m = save();
    m.state = SaveState::restored;
    ASSERT_TRUE(state().store(m));
    auto out = run("release", "end", domain_xml(true), "failed");
    EXPECT_EQ(out.exit_code, 0);
    auto after = manifest();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, SaveState::saved);
    EXPECT_TRUE(exists(preserved + "/pc.ram"));
}

TEST_F(Hook, HookRunsOnlyWhenInstalledAndRunByTheLiveDaemon) {
    auto no = check_hook_runs(paths);
    ASSERT_FALSE(no);
    EXPECT_EQ(no.error().code, Errc::refused);
    EXPECT_TRUE(contains(no.error().message(), "hook install")) << no.error().message();
    ASSERT_EQ(::mkdir(paths.hooks_dir.c_str(), 0755), 0);
    ASSERT_EQ(::symlink("/bin/true", (paths.hooks_dir + "/50-other").c_str()), 0);
    EXPECT_FALSE(check_hook_runs(paths));
    // Installed, but the daemon that runs now has not run it.
    ASSERT_EQ(::symlink("/usr/sbin/vmupdate-hook", (paths.hooks_dir + "/50-vmupdate").c_str()), 0);
    auto stale = check_hook_runs(paths);
    EXPECT_FALSE(stale);
    // The hook records its parent (libvirtd; here the test runner) on every run.
    (void)run("prepare", "begin", domain_xml(true, 9));
    (void)run("release", "end", domain_xml(true, 9));
    // The link points nowhere executable here: installed means executable.
    EXPECT_FALSE(check_hook_runs(paths));
    std::string hook = tmp / "vmupdate-hook";
    write_file(hook, "#!/bin/sh\n");
    ASSERT_EQ(::chmod(hook.c_str(), 0755), 0);
    ASSERT_EQ(::unlink((paths.hooks_dir + "/50-vmupdate").c_str()), 0);
    ASSERT_EQ(::symlink(hook.c_str(), (paths.hooks_dir + "/50-vmupdate").c_str()), 0);
    auto ok = check_hook_runs(paths);
    EXPECT_TRUE(ok) << ok.error().message();
    // A mark of a daemon that has gone since.
    write_file(hook_daemon_mark(paths), std::to_string(::getppid()) + " 1\n");
    EXPECT_FALSE(check_hook_runs(paths));
}

TEST(HookAppArmor, OnlyPathsLibvirtsProfileMayRunAreAcceptedWhenItEnforces) {
    const std::string confined = "virt-aa-helper (enforce)\nlibvirtd (enforce)\n"
                                 "libvirtd//qemu_bridge_helper (enforce)\nman_filter (enforce)\n";
    EXPECT_EQ(apparmor_blocks_hook(confined, "/usr/sbin/vmupdate-hook"), "");
    EXPECT_EQ(apparmor_blocks_hook(confined, "/usr/bin/vmupdate-hook"), "");
    EXPECT_EQ(apparmor_blocks_hook(confined, "/etc/libvirt/hooks/bin/vmupdate-hook"), "");
    auto why = apparmor_blocks_hook(confined, "/usr/libexec/vmupdate/vmupdate-hook");
    EXPECT_TRUE(contains(why, "AppArmor confines libvirtd")) << why;
    EXPECT_TRUE(contains(why, "every domain start would fail")) << why;
    // /usr/sbin/* matches files directly in it, not below.
    EXPECT_NE(apparmor_blocks_hook(confined, "/usr/sbin/vmupdate/vmupdate-hook"), "");
    EXPECT_NE(apparmor_blocks_hook(confined, "/usr/local/sbin/vmupdate-hook"), "");
    EXPECT_NE(apparmor_blocks_hook("virtqemud (enforce)\n", "/opt/vmupdate/hook"), "");
    // Complain mode, another daemon's profile or no AppArmor: nothing blocks it.
    EXPECT_EQ(apparmor_blocks_hook("libvirtd (complain)\n", "/opt/vmupdate/hook"), "");
    EXPECT_EQ(apparmor_blocks_hook("libvirtd-helper (enforce)\n", "/opt/vmupdate/hook"), "");
    EXPECT_EQ(apparmor_blocks_hook("", "/opt/vmupdate/hook"), "");
}

TEST_F(Hook, InstallRefusesAHookTheConfinedDaemonCouldNotRun) {
    std::string hook = tmp / "vmupdate-hook";
    write_file(hook, "#!/bin/sh\n");
    ASSERT_EQ(::chmod(hook.c_str(), 0755), 0);
    paths.apparmor_profiles = tmp / "profiles";
    write_file(paths.apparmor_profiles, "libvirtd (enforce)\n");
    // hook install --dry-run asks the same question.
    auto dry = check_hook_installable(paths, hook);
    ASSERT_FALSE(dry);
    EXPECT_EQ(dry.error().code, Errc::refused);
    auto refused = install_hook(paths, hook);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::refused);
    EXPECT_TRUE(contains(refused.error().message(), "AppArmor")) << refused.error().message();
    EXPECT_FALSE(exists(paths.hooks_dir + "/50-vmupdate"));
    write_file(paths.apparmor_profiles, "libvirtd (complain)\n");
    auto ok = install_hook(paths, hook);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE(exists(paths.hooks_dir + "/50-vmupdate"));
}
