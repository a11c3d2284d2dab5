// Writing handed-over RAM back (issue 21, items 1 and 2): nothing is freed from
// the handed-over memory unless it is written, a failure part-way moves it all
// back, RAM that does not match its hand-over checksums is never linked, and
// RAM whose write-back failed stays with a holder until a retry succeeds.
#include "handover_holder.hpp"
#include "handover_record.hpp"
#include "preserved_file.hpp"
#include "ram_fixture.hpp"
#include "ram_move.hpp"
#include "temp_dir.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace vmupdate;
using vmupdate::testing::contains;
using vmupdate::testing::exists;
using vmupdate::testing::run_bounded;
using TempDir = vmupdate::testing::TempDir;

namespace {

constexpr const char* uuid = "7d3c9e1a-5b2f-4c8d-9e0a-1f2b3c4d5e6f";

// `chunks` ram_chunks of guest RAM: distinct bytes per page, every fourth page zero.
std::string ram_image(std::size_t chunks) {
    std::string s(chunks * ram_chunk, '\0');
    for (std::size_t p = 0; p < s.size() / 4096; ++p) {
        if (p % 4 == 3)
            continue;
        for (std::size_t i = 0; i < 4096; i += 512)
            s[p * 4096 + i] = static_cast<char>((p * 13 + i) % 251 + 1);
    }
    return s;
}

// A memfd holding `content`, as LUO hands RAM over.
int memfd_with(const std::string& content) {
    int fd = ::memfd_create("handed-over", MFD_CLOEXEC);
    if (fd >= 0 &&
        ::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size())) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::string read_all(int fd, std::size_t size) {
    std::string s(size, '\0');
    return ::pread(fd, s.data(), size, 0) == static_cast<ssize_t>(size) ? s : "";
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

FileOwner me() {
    return FileOwner{::geteuid(), ::getegid(), 0600};
}

} // namespace

TEST(Crc32c, IsCastagnoli) {
    // The check value of CRC-32C (RFC 3720, appendix B.4).
    EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
    EXPECT_EQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    std::string zeros(32, '\0');
    EXPECT_EQ(crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
}

// The sums are of the content, whether a chunk is a hole, part hole, or data
// (the three ways chunk_sums reads it).
TEST(Crc32c, ChunkSumsAreOfTheContentWhateverItsHoles) {
    const std::size_t size = 4 * ram_chunk + 4096;
    int fd = ::memfd_create("sparse", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    std::string page(4096, 'x');
    std::string full(ram_chunk, 'y');
    ASSERT_EQ(::pwrite(fd, page.data(), page.size(), static_cast<off_t>(ram_chunk + 8192)), 4096);
    ASSERT_EQ(::pwrite(fd, full.data(), full.size(), static_cast<off_t>(3 * ram_chunk)),
              static_cast<ssize_t>(full.size()));
    auto sums = chunk_sums(fd, size, "sparse");
    ASSERT_TRUE(sums) << sums.error().message();
    std::string content = read_all(fd, size);
    ASSERT_EQ(content.size(), size);
    std::string want;
    for (std::size_t off = 0; off < size; off += ram_chunk) {
        std::size_t n = std::min(ram_chunk, size - off);
        char hex[9];
        std::snprintf(hex, sizeof hex, "%08x", crc32c(0, content.data() + off, n));
        want += hex;
    }
    EXPECT_EQ(*sums, want);
    ::close(fd);
}

// A memory_backing_dir in a temporary directory, for rebuilding into.
class WriteBack : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0); }

    // The domain's RamFile for `content` in root's directory of preserved RAM.
    RamFile ram_file(const std::string& content) const {
        auto dir = preserved_dir(backing, uuid);
        EXPECT_TRUE(dir);
        return RamFile{"pc.ram", (dir ? *dir : backing) + "/pc.ram", 0, 0, content.size()};
    }

    TempDir tmp;
    std::string backing = tmp / "ram";
};

// A write that fails part-way (here the file size limit, at the third chunk of
// four): the two chunks already written and punched from the source are moved
// back, so the handed-over memory is whole and nothing is linked.
TEST_F(WriteBack, AFailurePartWayMovesEverythingBack) {
    const std::string content = ram_image(4);
    const RamFile f = ram_file(content);
    auto out = run_bounded(
        [&] {
            int src = memfd_with(content);
            std::signal(SIGXFSZ, SIG_IGN);
            rlimit lim{5 << 20, 5 << 20};
            if (src < 0 || ::setrlimit(RLIMIT_FSIZE, &lim) != 0)
                return std::string("setup failed");
            auto r = rebuild_preserved_file("web1", src, f, me());
            std::string whole = read_all(src, content.size()) == content ? "whole" : "DAMAGED";
            return (r ? std::string("ok") : r.error().message()) + "|" + whole;
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(out);
    EXPECT_TRUE(contains(*out, "File too large")) << *out;
    EXPECT_TRUE(contains(*out, "|whole")) << *out;
    EXPECT_FALSE(exists(f.preserved));
}

// RAM that does not match its checksums from hand-over time (a source partly
// consumed by an earlier try) is refused, never linked, and left as it was.
TEST_F(WriteBack, RefusesRamThatIsNotTheGuests) {
    const std::string content = ram_image(3);
    int src = memfd_with(content);
    ASSERT_GE(src, 0);
    auto sums = chunk_sums(src, content.size(), "web1");
    ASSERT_TRUE(sums) << sums.error().message();
    EXPECT_EQ(sums->size(), 3u * 8);
    // What a write-back cut short used to leave: the first chunk punched.
    ASSERT_EQ(::fallocate(src, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                          static_cast<off_t>(ram_chunk)),
              0);
    const std::string damaged = read_all(src, content.size());
    const RamFile f = ram_file(content);
    auto r = rebuild_preserved_file("web1", src, f, me(), *sums);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::verify);
    EXPECT_TRUE(contains(r.error().message(), "chunk 0")) << r.error().message();
    EXPECT_FALSE(exists(f.preserved));
    EXPECT_TRUE(read_all(src, content.size()) == damaged);
    ::close(src);
    // The same RAM whole passes the same check.
    int whole = memfd_with(content);
    auto ok = rebuild_preserved_file("web1", whole, f, me(), *sums);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE(slurp(f.preserved) == content);
    ::close(whole);
}

// Without room on the RAM's filesystem nothing starts: checked up front, the
// source untouched (a real small tmpfs, in a mount namespace of a child).
TEST_F(WriteBack, RefusesWithoutRoomBeforeAByteMoves) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to mount a small tmpfs";
    const std::string content = ram_image(4);
    auto out = run_bounded(
        [&] {
            if (::unshare(CLONE_NEWNS) != 0 ||
                ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                ::mount("vmu-small", backing.c_str(), "tmpfs", 0, "size=4m,mode=0755") != 0)
                return std::string("setup failed: ") + std::strerror(errno);
            int src = memfd_with(content);
            if (src < 0)
                return std::string("setup failed");
            const RamFile f = ram_file(content);
            auto r = rebuild_preserved_file("web1", src, f, me());
            return (r ? std::string("ok") : r.error().message()) + "|" +
                   (read_all(src, content.size()) == content ? "whole" : "DAMAGED") + "|" +
                   (exists(f.preserved) ? "linked" : "none");
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(out);
    EXPECT_TRUE(contains(*out, "No space left on device: it needs")) << *out;
    EXPECT_TRUE(contains(*out, "|whole|none")) << *out;
}

// A saved domain whose RAM was handed over and not written back yet: its
// manifest, the handover record with checksums, and the RAM only in a memfd.
class HeldRam : public ::testing::Test {
protected:
    void SetUp() override {
        backing = tmp / "ram";
        ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
        auto dir = preserved_dir(backing, uuid);
        ASSERT_TRUE(dir);
        paths.state_dir = tmp / "state";
        paths.run_dir = tmp / "run";
        paths.liveupdate_dev = tmp / "no-liveupdate";
        paths.self_exe = VMUPDATE_CLI_BINARY;
        ram = RamFile{"pc.ram", *dir + "/pc.ram", 0, 0, content.size()};
        auto state = StateDir::open(paths.state_dir);
        ASSERT_TRUE(state) << state.error().message();
        Manifest m;
        m.uuid = uuid;
        m.name = "web1";
        m.state = SaveState::saved;
        m.ram = {ram};
        m.image = tmp / "web1.save";
        ASSERT_TRUE(state->store(m));
        src = memfd_with(content);
        ASSERT_GE(src, 0);
        auto sums = chunk_sums(src, content.size(), "web1");
        ASSERT_TRUE(sums);
        handover::Entry e{uuid, "web1", ram, 7, me(), *sums};
        std::ofstream(paths.state_dir + "/handover.json") << handover::format_record("x", {e});
    }
    void TearDown() override {
        // Whatever happened, no holder outlives the test.
        if (auto pid = handover::holder_pid(paths); pid && *pid > 1)
            ::kill(*pid, SIGKILL);
        if (src >= 0)
            ::close(src);
    }

    TempDir tmp;
    std::string backing;
    Paths paths;
    RamFile ram;
    const std::string content = ram_image(3);
    int src = -1;
};

// The write-back fails (a file planted where the RAM goes); the RAM goes to a
// holder, the error says so (exit 1, "still held"); once the cause is gone a
// plain retry writes it back from the holder, which then exits.
TEST_F(HeldRam, AFailedWriteBackIsHeldAndRetried) {
    pid_t holder = 0;
    {
        auto h = handover::keep_held(paths, {{7, src}});
        ASSERT_TRUE(h) << h.error().message();
        holder = *h;
    }
    ::close(src); // from now on only the holder has the RAM
    src = -1;
    // What the QEMU user can do on a fresh tmpfs before the boot's restore:
    // plant <memory_backing_dir>/vmupdate, which root then refuses to use.
    const std::string planted = backing + "/vmupdate";
    ASSERT_EQ(::mkdir(planted.c_str(), 0777), 0);
    if (::geteuid() == 0) {
        ASSERT_EQ(::chown(planted.c_str(), 65534, 65534), 0);
    }
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_FALSE(r) << (*r ? "written back: " + std::to_string((*r)->files) : "nothing to do");
    EXPECT_EQ(r.error().code, Errc::ram_held) << r.error().message();
    EXPECT_EQ(exit_code(r.error()), 1);
    EXPECT_TRUE(contains(r.error().message(),
                         "still held by vmupdate ram-hold (PID " + std::to_string(holder)))
        << r.error().message();
    EXPECT_EQ(::kill(holder, 0), 0) << "the holder is gone";
    // A stray SIGTERM does not end a holder that still holds RAM.
    ASSERT_EQ(::kill(holder, SIGTERM), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(::kill(holder, 0), 0) << "SIGTERM freed RAM not written back";

    ASSERT_EQ(::rmdir(planted.c_str()), 0);
    auto again = reclaim_handed_over_ram(paths);
    ASSERT_TRUE(again) << again.error().message();
    ASSERT_TRUE(*again);
    EXPECT_EQ((*again)->files, 1u);
    EXPECT_TRUE(slurp(ram.preserved) == content);
    EXPECT_FALSE(exists(paths.state_dir + "/handover.json"));
    EXPECT_FALSE(exists(handover::held_record_path(paths)));
    auto state = StateDir::open(paths.state_dir);
    ASSERT_TRUE(state);
    auto m = state->load(uuid);
    ASSERT_TRUE(m && *m);
    EXPECT_TRUE(verify_preserved("web1", (*m)->ram)) << "the manifest does not name the new file";
    // The holder, released, exits (it is not our child: poll).
    for (int i = 0; i < 100 && ::kill(holder, 0) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_NE(::kill(holder, 0), 0) << "the holder did not exit once released";
}

// A holder that died took the RAM with it: said as RAM lost (exit 1), never as
// "nothing changed".
TEST_F(HeldRam, AHolderThatDiedIsRamLost) {
    auto h = handover::keep_held(paths, {{7, src}});
    ASSERT_TRUE(h) << h.error().message();
    ASSERT_EQ(::kill(*h, SIGKILL), 0);
    for (int i = 0; i < 100 && ::kill(*h, 0) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r = reclaim_handed_over_ram(paths);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::ram_lost) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "has ended")) << r.error().message();
}

// While an earlier handover's record is there (its RAM perhaps with a holder),
// host-update's pre-flight refuses a new one, before anything is paused.
TEST_F(HeldRam, ANewHandoverWaitsUntilTheOldOneIsSettled) {
    auto why = handover_offenders(paths, "/nonexistent", "kho=on liveupdate=on");
    bool named = false;
    for (const auto& w : why)
        named = named || contains(w, "an earlier RAM handover is not settled");
    EXPECT_TRUE(named);
    ASSERT_EQ(::unlink((paths.state_dir + "/handover.json").c_str()), 0);
    for (const auto& w : handover_offenders(paths, "/nonexistent", "kho=on liveupdate=on"))
        EXPECT_FALSE(contains(w, "not settled")) << w;
}
