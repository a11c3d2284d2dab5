// RAM handover by LUO: what can be checked without a LUO kernel (command lines,
// kernel images, writing handed-over RAM back, the record's crash cases). The
// handover itself runs in e2e.host_update_luo.
#include "fsutil.hpp"
#include "handover_record.hpp"
#include "preserved_file.hpp"
#include "ram_fixture.hpp"
#include "temp_dir.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/interrupt.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <chrono>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace vmupdate;

namespace {

constexpr const char* uuid = "0f5e4b9a-2c1d-4e8f-9a7b-3c2d1e0f9a8b";
using TempDir = vmupdate::testing::TempDir;
using vmupdate::testing::contains;
using vmupdate::testing::exists;
using vmupdate::testing::run_bounded;
using vmupdate::testing::stat_of;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// 1 MiB of guest RAM: a page of data, 3 zero pages, data to the end but for a
// zero page in the middle; distinct bytes per page so a misplaced page shows.
std::string ram_image() {
    std::string s(1 << 20, '\0');
    for (size_t p = 0; p < s.size() / 4096; ++p) {
        if ((p >= 1 && p <= 3) || p == 100)
            continue;
        for (size_t i = 0; i < 4096; ++i)
            s[p * 4096 + i] = static_cast<char>((p * 7 + i) % 251 + 1);
    }
    return s;
}

// A saved domain as the hook leaves it: RAM preserved in root's directory,
// libvirt's RAM directory gone, the manifest stored.
class Saved : public vmupdate::testing::RamDirTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(make_ram_dir());
        {
            std::ofstream out(ram_dir + "/pc.ram", std::ios::binary);
            out << content;
        }
        auto p = preserved_dir(backing, uuid);
        ASSERT_TRUE(p);
        auto held = preserve_ram(ram_dir, *p, {"pc.ram"});
        ASSERT_TRUE(held) << held.error().message();
        ram = *held;
        ASSERT_EQ(::unlink((ram_dir + "/pc.ram").c_str()), 0); // libvirt, at the domain's stop
        paths.state_dir = tmp / "state";
        paths.liveupdate_dev = tmp / "no-liveupdate";
        auto state = StateDir::open(paths.state_dir);
        ASSERT_TRUE(state) << state.error().message();
        Manifest m;
        m.uuid = uuid;
        m.name = "web1";
        m.state = SaveState::saved;
        m.ram = ram;
        m.image = tmp / "web1.save";
        auto ok = state->store(m);
        ASSERT_TRUE(ok) << ok.error().message();
    }

    std::string record() const { return paths.state_dir + "/handover.json"; }

    // A record naming the domain's file, as host-update writes it.
    void write_record() const {
        std::ofstream(record())
            << R"({"session":"vmupdate-ram","kernel":"x","files":[{"token":1,"uuid":")" << uuid
            << R"(","domain":"web1","name":"pc.ram","preserved":")" << ram[0].preserved
            << R"(","size":)" << ram[0].size << R"(,"uid":0,"gid":0,"mode":384}]})";
    }

    // A process holding the handover lock, as a surviving holder does; its PID.
    pid_t start_holder() const {
        int p[2];
        if (::pipe(p) != 0)
            return -1;
        pid_t pid = ::fork();
        if (pid == 0) {
            auto lock = handover::lock_handover(paths);
            (void)!::write(p[1], lock ? "y" : "n", 1);
            for (;;)
                ::pause();
        }
        ::close(p[1]);
        char c = 'n';
        (void)!::read(p[0], &c, 1);
        ::close(p[0]);
        return c == 'y' ? pid : -1;
    }

    // Ends a start_holder() process.
    static void stop_holder(pid_t pid) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }

    // reclaim_handed_over_ram in a child, at most `bound`: "ok" or the error's
    // exit code and message; nullopt when it did not return in time.
    std::optional<std::string> reclaim_bounded(std::chrono::milliseconds bound,
                                               bool interrupted = false) const {
        return run_bounded(
            [&] {
                if (interrupted)
                    request_interrupt();
                auto r = reclaim_handed_over_ram(paths);
                return r ? std::string("ok")
                         : std::to_string(exit_code(r.error())) + " " + r.error().message();
            },
            bound);
    }

    std::string content = ram_image();
    std::vector<RamFile> ram;
    Paths paths;
};

} // namespace

TEST(KernelSeries, IsMajorDotMinor) {
    EXPECT_EQ(kernel_series("7.2.11-vmu-luo"), "7.2");
    EXPECT_EQ(kernel_series("6.1.0-28-amd64"), "6.1");
    EXPECT_EQ(kernel_series("6.19-rc3"), "6.19");
    EXPECT_NE(kernel_series("6.19.2"), kernel_series("6.1.2"));
}

TEST(HandoverCmdline, NeedsKhoAndLiveupdate) {
    EXPECT_TRUE(
        handover_cmdline_offenders("ro root=/dev/vda1 kho=on liveupdate=on", "new").empty());
    EXPECT_TRUE(handover_cmdline_offenders("liveupdate=1 kho=y", "new").empty());
    auto none = handover_cmdline_offenders("ro quiet", "the new");
    ASSERT_EQ(none.size(), 1u);
    EXPECT_TRUE(contains(none[0], "the new kernel command line lacks kho=on liveupdate=on"))
        << none[0];
    auto kho = handover_cmdline_offenders("liveupdate=on", "the running");
    ASSERT_EQ(kho.size(), 1u);
    EXPECT_TRUE(contains(kho[0], "lacks kho=on:")) << kho[0];
    // The kernel takes the last of repeated words.
    auto off = handover_cmdline_offenders("kho=on liveupdate=on liveupdate=off", "new");
    ASSERT_EQ(off.size(), 1u);
    EXPECT_TRUE(contains(off[0], "lacks liveupdate=on")) << off[0];
    EXPECT_TRUE(handover_cmdline_offenders("kho=off liveupdate=on kho=on", "new").empty());
}

TEST(KernelImageRelease, ReadsTheBootProtocolHeader) {
    TempDir tmp;
    std::string image(0x300 + 64, '\0');
    std::memcpy(&image[0x202], "HdrS", 4);
    image[0x20E] = 0x00; // version string at 0x200 + 0x100
    image[0x20F] = 0x01;
    std::string version = "7.2.11-vmu-luo (root@host) #1 SMP PREEMPT_DYNAMIC";
    std::memcpy(&image[0x300], version.data(), version.size());
    std::string path = tmp / "bzImage";
    std::ofstream(path, std::ios::binary) << image;
    auto r = kernel_image_release(path);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, "7.2.11-vmu-luo");

    image[0x20F] = 0x7f; // points past the end of the file
    std::ofstream(path, std::ios::binary | std::ios::trunc) << image;
    auto past = kernel_image_release(path);
    ASSERT_FALSE(past);
    EXPECT_TRUE(contains(past.error().message(), "outside the image")) << past.error().message();

    std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(4096, 'x');
    auto junk = kernel_image_release(path);
    ASSERT_FALSE(junk);
    EXPECT_EQ(junk.error().code, Errc::invalid_input);
    EXPECT_TRUE(contains(junk.error().message(), "not an x86 bzImage")) << junk.error().message();
    EXPECT_FALSE(kernel_image_release(tmp / "missing"));
}

TEST(KernelImageRelease, NamesDebiansInstalledKernels) {
    // Debian names /boot/vmlinuz-RELEASE after the release its header carries.
    DIR* boot = ::opendir("/boot");
    int seen = 0;
    for (struct dirent* e = boot ? ::readdir(boot) : nullptr; e; e = ::readdir(boot)) {
        std::string name = e->d_name;
        if (!name.starts_with("vmlinuz-") || ::access(("/boot/" + name).c_str(), R_OK) != 0)
            continue;
        auto r = kernel_image_release("/boot/" + name);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(*r, name.substr(8));
        ++seen;
    }
    if (boot)
        ::closedir(boot);
    if (seen == 0)
        GTEST_SKIP() << "no readable /boot/vmlinuz-*";
}

TEST_F(Saved, OpenPreservedRefusesAFileWithAnotherLink) {
    // A link the QEMU user made would keep the file named: LUO would refuse it
    // after vmupdate's link is gone, and the RAM would hang on that link alone.
    ASSERT_EQ(::link(ram[0].preserved.c_str(), (backing + "/kept").c_str()), 0);
    FileOwner owner;
    auto fd = open_preserved_file("web1", ram[0], owner);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code, Errc::refused);
    EXPECT_TRUE(contains(fd.error().message(), "has 2 links")) << fd.error().message();
}

TEST_F(Saved, OpenPreservedRefusesAReplacedFile) {
    // Written beside it and renamed over it, so that the inode number differs.
    std::ofstream(ram[0].preserved + ".new", std::ios::binary) << content;
    ASSERT_EQ(::rename((ram[0].preserved + ".new").c_str(), ram[0].preserved.c_str()), 0);
    FileOwner owner;
    auto fd = open_preserved_file("web1", ram[0], owner);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code, Errc::verify);
}

// host-update's durability step before the kexec, at most 10 s: "ok" or the error.
std::optional<std::string> sync_bounded(const RamFile& f) {
    return run_bounded(
        [&] {
            auto ok = sync_preserved_file("web1", f);
            return ok ? std::string("ok") : ok.error().message();
        },
        std::chrono::seconds(10));
}

TEST_F(Saved, SyncPreservedSyncsTheRecordedFile) {
    auto got = sync_bounded(ram[0]);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "ok");
}

TEST_F(Saved, SyncPreservedRefusesAFifoWithoutBlocking) {
    // Planted by the QEMU user (it can rename root's directory aside): opening
    // it to read would wait for a writer with every guest paused.
    ASSERT_EQ(::unlink(ram[0].preserved.c_str()), 0);
    ASSERT_EQ(::mkfifo(ram[0].preserved.c_str(), 0666), 0);
    auto got = sync_bounded(ram[0]);
    ASSERT_TRUE(got) << "syncing the preserved RAM blocked on a FIFO";
    EXPECT_NE(*got, "ok");
    EXPECT_TRUE(contains(*got, "web1")) << *got;
}

TEST_F(Saved, SyncPreservedRefusesALink) {
    std::string elsewhere = tmp / "elsewhere";
    std::ofstream(elsewhere) << content;
    ASSERT_EQ(::unlink(ram[0].preserved.c_str()), 0);
    ASSERT_EQ(::symlink(elsewhere.c_str(), ram[0].preserved.c_str()), 0);
    auto got = sync_bounded(ram[0]);
    ASSERT_TRUE(got);
    EXPECT_NE(*got, "ok");
    EXPECT_TRUE(contains(*got, "not a regular file")) << *got;
}

TEST_F(Saved, SyncPreservedRefusesAnotherFile) {
    // Made before the original goes, so that it cannot get the inode number back.
    std::string other = ram[0].preserved + ".other";
    std::ofstream(other) << content;
    ASSERT_EQ(::rename(other.c_str(), ram[0].preserved.c_str()), 0);
    auto got = sync_bounded(ram[0]);
    ASSERT_TRUE(got);
    EXPECT_TRUE(contains(*got, "device/inode differ")) << *got;
}

TEST_F(Saved, UnlinkThenRebuildGivesTheSameRamUnderANewInode) {
    FileOwner owner;
    auto fd = open_preserved_file("web1", ram[0], owner);
    ASSERT_TRUE(fd) << fd.error().message();
    EXPECT_EQ(owner.uid, ::geteuid());
    auto gone = unlink_preserved_file("web1", ram[0]);
    ASSERT_TRUE(gone) << gone.error().message();
    EXPECT_FALSE(exists(ram[0].preserved));

    owner.mode = 0640;
    auto back = rebuild_preserved_file("web1", fd->get(), ram[0], owner);
    ASSERT_TRUE(back) << back.error().message();
    struct stat st = stat_of(ram[0].preserved);
    EXPECT_EQ(back->inode, static_cast<std::uint64_t>(st.st_ino));
    EXPECT_NE(back->inode, ram[0].inode);
    EXPECT_EQ(back->size, ram[0].size);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_TRUE(slurp(ram[0].preserved) == content);
    // The rebuilt file is what verify and reinstate accept now.
    EXPECT_TRUE(verify_preserved("web1", {*back}));
    EXPECT_FALSE(verify_preserved("web1", ram));
}

TEST(RebuildPreserved, KeepsHolesAndPunchesTheSource) {
    TempDir tmp;
    std::string backing = tmp / "ram";
    ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
    auto dir = preserved_dir(backing, uuid);
    ASSERT_TRUE(dir);
    std::string content = ram_image();
    // A memfd, as LUO hands it over.
    int src = ::memfd_create("handed-over", MFD_CLOEXEC);
    ASSERT_GE(src, 0);
    ASSERT_EQ(::pwrite(src, content.data(), content.size(), 0),
              static_cast<ssize_t>(content.size()));
    RamFile f{"pc.ram", *dir + "/pc.ram", 0, 0, content.size()};
    auto back = rebuild_preserved_file("web1", src, f, FileOwner{::geteuid(), ::getegid(), 0600});
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_TRUE(slurp(f.preserved) == content);
    struct stat src_st {};
    ASSERT_EQ(::fstat(src, &src_st), 0);
    EXPECT_EQ(src_st.st_blocks, 0) << "the handed-over copy was not released as it was copied";
    EXPECT_EQ(src_st.st_size, static_cast<off_t>(content.size()));
    // Root's directories, closed to others, as preserve_ram makes them.
    EXPECT_EQ(stat_of(*dir).st_mode & 07777, 0700u);
    EXPECT_EQ(stat_of(backing + "/vmupdate").st_mode & 07777, 0700u);
    // Zero pages stay holes where the file system keeps holes.
    std::string probe = tmp / "sparse";
    {
        int p = ::open(probe.c_str(), O_CREAT | O_WRONLY, 0600);
        ASSERT_GE(p, 0);
        ASSERT_EQ(::ftruncate(p, 1 << 20), 0);
        ::close(p);
    }
    if (stat_of(probe).st_blocks == 0) {
        EXPECT_LT(stat_of(f.preserved).st_blocks * 512, static_cast<blkcnt_t>(content.size()));
    }

    // Never over an existing file.
    auto again = rebuild_preserved_file("web1", src, f, FileOwner{::geteuid(), ::getegid(), 0600});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::refused);
    EXPECT_TRUE(contains(again.error().message(), "already there")) << again.error().message();
    ::close(src);
}

TEST_F(Saved, HandOverWithoutLuoChangesNothing) {
    auto h = hand_over_ram(paths, {uuid});
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code, Errc::not_found);
    EXPECT_TRUE(contains(h.error().message(), "liveupdate=on")) << h.error().message();
    EXPECT_TRUE(verify_preserved("web1", ram));
    EXPECT_FALSE(exists(record()));
}

TEST_F(Saved, ReclaimWithoutARecordDoesNothing) {
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_FALSE(*r);
}

TEST_F(Saved, ReclaimSettlesAHandoverCutShortBeforeTheUnlink) {
    // host-update killed after writing the record: every file is still in place.
    std::ofstream(record())
        << R"({"session":"vmupdate-ram","kernel":"x","files":[{"token":1,"uuid":")" << uuid
        << R"(","domain":"web1","name":"pc.ram","preserved":")" << ram[0].preserved
        << R"(","size":)" << ram[0].size << R"(,"uid":0,"gid":0,"mode":384}]})";
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(*r);
    EXPECT_EQ((*r)->files, 0u);
    EXPECT_FALSE(exists(record()));
    EXPECT_TRUE(verify_preserved("web1", ram));
}

TEST_F(Saved, ReclaimNamesTheDomainsWhoseRamDidNotComeAcross) {
    ASSERT_EQ(::unlink(ram[0].preserved.c_str()), 0);
    std::ofstream(record())
        << R"({"session":"vmupdate-ram","kernel":"x","files":[{"token":1,"uuid":")" << uuid
        << R"(","domain":"web1","name":"pc.ram","preserved":")" << ram[0].preserved
        << R"(","size":)" << ram[0].size << R"(,"uid":0,"gid":0,"mode":384}]})";
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_FALSE(r);
    EXPECT_TRUE(contains(r.error().message(), "web1 (pc.ram)")) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "cannot be restored")) << r.error().message();
    EXPECT_EQ(exit_code(r.error()), 1) << "RAM lost is never exit 2 (nothing changed)";
    EXPECT_TRUE(exists(record())) << "the record must stay to say it again";
}

TEST_F(Saved, ReclaimDoesNotWaitForeverForAHolder) {
    // host-update SIGKILLed with vmupdate-handover.service still holding: every
    // restore used to block in flock(), Ctrl-C included.
    write_record();
    pid_t holder = start_holder();
    ASSERT_GT(holder, 0);
    auto t0 = std::chrono::steady_clock::now();
    auto got = reclaim_bounded(std::chrono::seconds(30));
    auto took = std::chrono::steady_clock::now() - t0;
    stop_holder(holder);
    ASSERT_TRUE(got) << "reclaim still waiting for the handover lock after 30 s";
    EXPECT_LT(took, std::chrono::seconds(15));
    EXPECT_TRUE(got->starts_with("1 ")) << *got; // something is held: not exit 2
    EXPECT_TRUE(contains(*got, "PID " + std::to_string(holder))) << *got;
    EXPECT_TRUE(contains(*got, "vmupdate restore")) << *got; // what to do
    EXPECT_TRUE(exists(record()));
    EXPECT_TRUE(verify_preserved("web1", ram));
}

TEST_F(Saved, ReclaimWaitingForAHolderEndsAtAnInterrupt) {
    write_record();
    pid_t holder = start_holder();
    ASSERT_GT(holder, 0);
    auto got = reclaim_bounded(std::chrono::seconds(2), true);
    stop_holder(holder);
    ASSERT_TRUE(got) << "an interrupt did not end the wait for the handover lock";
    EXPECT_TRUE(got->starts_with("1 ")) << *got;
}

TEST_F(Saved, ReclaimTakesTheLockOnceTheHolderIsGone) {
    write_record();
    pid_t holder = start_holder();
    ASSERT_GT(holder, 0);
    stop_holder(holder);
    auto got = reclaim_bounded(std::chrono::seconds(30));
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "ok");
    EXPECT_FALSE(exists(record()));
}

TEST_F(Saved, ReclaimRejectsAMalformedRecord) {
    std::ofstream(record()) << R"({"files":[{"token":"one"}]})";
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_input);
}

TEST_F(Saved, HolderReportsAFailedHandover) {
    // What host-update waits for on a systemd host: a status line, here the failure.
    paths.run_dir = tmp / "run";
    sigset_t before;
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &before), 0);
    auto held = hold_handover(paths, {uuid});
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &before, nullptr), 0);
    ASSERT_FALSE(held);
    std::string status = slurp(paths.run_dir + "/handover.status");
    EXPECT_TRUE(status.starts_with("failed: ")) << status;
    EXPECT_TRUE(contains(status, "liveupdate=on")) << status;
    EXPECT_TRUE(verify_preserved("web1", ram));
    EXPECT_FALSE(exists(record()));
}
