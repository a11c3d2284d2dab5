// The state directory and the crash-safe file helpers under it.
#include "fsutil.hpp"
#include "sha256.hpp"
#include "temp_dir.hpp"
#include "vmupdate/state.hpp"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vmupdate;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* uuid1 = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";
constexpr const char* uuid2 = "00000000-0000-0000-0000-000000000001";
constexpr const char* uuid3 = "ffffffff-0000-4000-8000-0123456789ab";

using TempDir = vmupdate::testing::TempDir;

mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Names in `dir`, sorted; temporary files would show up here.
std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::string sha256(std::string_view data, size_t chunk = 0) {
    Sha256 sha;
    if (chunk == 0) {
        sha.update(data);
    } else {
        for (size_t i = 0; i < data.size(); i += chunk)
            sha.update(data.substr(i, chunk));
    }
    return sha.hex_digest();
}

Manifest manifest(const char* uuid, std::string name) {
    Manifest m;
    m.uuid = uuid;
    m.name = std::move(name);
    m.state = SaveState::saved;
    m.ram = {
        {"pc.ram", "/var/lib/vmupdate/ram/" + std::string(uuid) + "/pc.ram", 2049, 77, 1ULL << 30}};
    m.image = "/var/lib/libvirt/qemu/save/" + m.name + ".save";
    m.image_size = 4096;
    m.saved_at_us = 1700000000000000;
    return m;
}

StateDir open_ok(const std::string& path) {
    auto s = StateDir::open(path);
    EXPECT_TRUE(s) << (s ? "" : s.error().message());
    if (!s)
        std::abort();
    return std::move(*s);
}

// The error code of a failed result, nullopt on success (so a wrong success
// fails the expectation instead of reading a missing error).
template <typename T> std::optional<Errc> error_code(const Result<T>& r) {
    return r ? std::nullopt : std::optional<Errc>(r.error().code);
}

// Restores the umask when a test changed it.
struct UmaskGuard {
    mode_t old;
    explicit UmaskGuard(mode_t m) : old(::umask(m)) {}
    ~UmaskGuard() { ::umask(old); }
};

} // namespace

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, PaddingBoundaries) {
    // Lengths around the 56-byte padding limit and the 64-byte block size.
    const std::pair<size_t, const char*> vectors[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
        {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
    };
    for (auto [n, digest] : vectors) {
        std::string data(n, 'a');
        EXPECT_EQ(sha256(data), digest) << n;
        for (size_t chunk : {1, 3, 63, 64, 65})
            EXPECT_EQ(sha256(data, chunk), digest) << n << " in chunks of " << chunk;
    }
}

TEST(Sha256, MillionAsFile) {
    TempDir dir;
    std::string file = dir / "a";
    std::ofstream(file) << std::string(1000000, 'a');
    auto digest = sha256_file(file);
    ASSERT_TRUE(digest) << digest.error().message();
    EXPECT_EQ(*digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    auto missing = sha256_file(dir / "missing");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::system);
}

TEST(FsUtil, ParentDir) {
    EXPECT_EQ(parent_dir("/a/b/c"), "/a/b");
    EXPECT_EQ(parent_dir("/a"), "/");
    EXPECT_EQ(parent_dir("a"), ".");
    EXPECT_EQ(parent_dir("a/b"), "a");
}

TEST(FsUtil, WriteFileAtomicCreatesAndReplaces) {
    TempDir dir;
    std::string file = dir / "f";
    {
        UmaskGuard umask(0077);
        ASSERT_TRUE(write_file_atomic(file, "first", 0644));
    }
    EXPECT_EQ(slurp(file), "first");
    EXPECT_EQ(mode_of(file), 0644u) << "the umask must not change the mode";
    {
        UmaskGuard umask(0);
        ASSERT_TRUE(write_file_atomic(file, std::string(200000, 'x'), 0600));
    }
    EXPECT_EQ(slurp(file), std::string(200000, 'x'));
    EXPECT_EQ(mode_of(file), 0600u);
    ASSERT_TRUE(write_file_atomic(file, "", 0600));
    EXPECT_EQ(slurp(file), "");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"f"});
}

TEST(FsUtil, WriteFileAtomicLeavesNothingOnFailure) {
    TempDir dir;
    // rename() cannot replace a directory with a file: the write succeeds, the
    // rename fails, and the temporary file must go.
    ASSERT_EQ(::mkdir((dir / "d").c_str(), 0700), 0);
    auto r = write_file_atomic(dir / "d", "content", 0600);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::system);
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"d"});
    EXPECT_FALSE(write_file_atomic(dir / "missing/f", "content", 0600));
}

TEST(FsUtil, WriteFileAtomicFromManyThreads) {
    TempDir dir;
    std::string file = dir / "f";
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 20; ++i)
                if (!write_file_atomic(file, std::string(1000, static_cast<char>('a' + t)), 0600))
                    ++failures;
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(failures, 0);
    std::string content = slurp(file);
    ASSERT_EQ(content.size(), 1000u);
    EXPECT_EQ(content, std::string(1000, content[0])) << "a torn write";
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"f"});
}

TEST(FsUtil, ReadFile) {
    TempDir dir;
    std::string file = dir / "f";
    ASSERT_TRUE(write_file_atomic(file, "0123456789", 0600));
    EXPECT_EQ(read_file(file, 10).value(), "0123456789");
    auto big = read_file(file, 9);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code, Errc::invalid_input);
    auto missing = read_file(dir / "missing", 10);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::not_found);
    EXPECT_EQ(missing.error().object, dir / "missing");
}

TEST(FsUtil, ReadFileTail) {
    TempDir dir;
    std::string file = dir / "f";
    ASSERT_TRUE(write_file_atomic(file, "0123456789", 0600));
    EXPECT_EQ(read_file_tail(file, 4).value(), "6789");
    EXPECT_EQ(read_file_tail(file, 10).value(), "0123456789");
    EXPECT_EQ(read_file_tail(file, 100).value(), "0123456789");
    EXPECT_EQ(read_file_tail(file, 0).value(), "");
    auto missing = read_file_tail(dir / "missing", 10);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::not_found);
}

TEST(FsUtil, MakeDirEnforcesModeAndRefusesLinks) {
    TempDir dir;
    std::string sub = dir / "sub";
    {
        UmaskGuard umask(0077);
        ASSERT_TRUE(make_dir(sub, 0750));
    }
    EXPECT_EQ(mode_of(sub), 0750u);
    ASSERT_EQ(::chmod(sub.c_str(), 0777), 0);
    ASSERT_TRUE(make_dir(sub, 0700, Owner{::geteuid(), ::getegid()}));
    EXPECT_EQ(mode_of(sub), 0700u) << "an existing directory's mode must be corrected";

    ASSERT_EQ(::symlink(sub.c_str(), (dir / "link").c_str()), 0);
    auto link = make_dir(dir / "link", 0700);
    ASSERT_FALSE(link);
    EXPECT_EQ(link.error().code, Errc::refused);
    EXPECT_NE(link.error().message().find("symbolic link"), std::string::npos);

    ASSERT_TRUE(write_file_atomic(dir / "file", "", 0600));
    auto file = make_dir(dir / "file", 0700);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().code, Errc::refused);

    EXPECT_FALSE(make_dir(dir / "no/such/parent", 0700));
}

TEST(FsUtil, FsyncPath) {
    TempDir dir;
    ASSERT_TRUE(write_file_atomic(dir / "f", "x", 0600));
    EXPECT_TRUE(fsync_path(dir / "f"));
    EXPECT_TRUE(fsync_path(dir.path()));
    EXPECT_FALSE(fsync_path(dir / "missing"));
}

TEST(StateDir, OpenCreatesLayoutWithSafeModes) {
    TempDir dir;
    std::string root = dir / "state";
    {
        UmaskGuard umask(0);
        StateDir state = open_ok(root);
        EXPECT_EQ(state.path(), root);
    }
    for (const char* sub : {"", "/manifests", "/locks", "/pause"})
        EXPECT_EQ(mode_of(root + sub), 0700u) << sub;
    ASSERT_EQ(::chmod((root + "/manifests").c_str(), 0755), 0);
    open_ok(root);
    EXPECT_EQ(mode_of(root + "/manifests"), 0700u);

    ASSERT_EQ(::symlink(root.c_str(), (dir / "link").c_str()), 0);
    auto linked = StateDir::open(dir / "link");
    ASSERT_FALSE(linked);
    EXPECT_EQ(linked.error().code, Errc::refused);

    ASSERT_EQ(::rename((root + "/pause").c_str(), (root + "/pause.real").c_str()), 0);
    ASSERT_EQ(::symlink("/tmp", (root + "/pause").c_str()), 0);
    auto sub_linked = StateDir::open(root);
    ASSERT_FALSE(sub_linked);
    EXPECT_EQ(sub_linked.error().code, Errc::refused);

    EXPECT_FALSE(StateDir::open(""));
}

TEST(StateDir, StoreLoadRemove) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    EXPECT_EQ(state.load(uuid1).value(), std::nullopt);

    Manifest m = manifest(uuid1, "web1");
    ASSERT_TRUE(state.store(m));
    std::string file = dir / "manifests/" + std::string(uuid1) + ".xml";
    EXPECT_EQ(slurp(file), format_manifest(m));
    EXPECT_EQ(mode_of(file), 0600u);
    EXPECT_EQ(state.load(uuid1).value(), m);

    m.state = SaveState::restoring;
    m.attempt = "a1";
    ASSERT_TRUE(state.store(m));
    EXPECT_EQ(state.load(uuid1).value(), m);
    EXPECT_EQ(entries(dir / "manifests"), std::vector<std::string>{std::string(uuid1) + ".xml"});

    ASSERT_TRUE(state.remove(uuid1));
    EXPECT_EQ(state.load(uuid1).value(), std::nullopt);
    EXPECT_TRUE(state.remove(uuid1)) << "removing an absent manifest succeeds";
    EXPECT_TRUE(entries(dir / "manifests").empty());
}

TEST(StateDir, ListSkipsTemporaryAndForeignFiles) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    EXPECT_TRUE(state.list().value().empty());
    for (const char* u : {uuid3, uuid1, uuid2})
        ASSERT_TRUE(state.store(manifest(u, std::string("vm-") + u[0])));
    // What a crash during write_file_atomic leaves, and files that are not manifests.
    std::ofstream(dir / "manifests/." + std::string(uuid1) + ".xml.tmp.123.0") << "<half";
    std::ofstream(dir / "manifests/notes.xml") << "not a manifest";
    std::ofstream(dir / "manifests/" + std::string(uuid2) + ".xml.bak") << "old";

    auto all = state.list();
    ASSERT_TRUE(all) << all.error().message();
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ((*all)[0], manifest(uuid2, "vm-0"));
    EXPECT_EQ((*all)[1], manifest(uuid1, "vm-c"));
    EXPECT_EQ((*all)[2], manifest(uuid3, "vm-f"));
}

TEST(StateDir, CorruptManifestIsAnErrorNamingTheFile) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    ASSERT_TRUE(state.store(manifest(uuid1, "web1")));
    std::string file = dir / "manifests/" + std::string(uuid2) + ".xml";
    std::ofstream(file) << "<manifest xmlns='urn:vmupdate:manifest:1' version='1'><uuid>";
    auto all = state.list();
    ASSERT_FALSE(all);
    EXPECT_EQ(all.error().code, Errc::invalid_input);
    EXPECT_EQ(all.error().object, file);
    auto one = state.load(uuid2);
    ASSERT_FALSE(one);
    EXPECT_EQ(one.error().object, file);

    // A valid manifest filed under another domain's UUID is just as wrong.
    fs::copy_file(dir / "manifests/" + std::string(uuid1) + ".xml", file,
                  fs::copy_options::overwrite_existing);
    auto moved = state.load(uuid2);
    ASSERT_FALSE(moved);
    EXPECT_EQ(moved.error().code, Errc::invalid_input);
    EXPECT_NE(moved.error().message().find("describes domain"), std::string::npos);
}

TEST(StateDir, StoreRefusesWhatWouldNotReadBack) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    Manifest m = manifest(uuid1, "web1");
    m.name = "bad\x01name";
    EXPECT_EQ(error_code(state.store(m)), Errc::invalid_input);
    m = manifest(uuid1, "web1");
    m.saved_at_us = -1;
    EXPECT_EQ(error_code(state.store(m)), Errc::invalid_input);
    m = manifest(uuid1, "web1");
    m.ram[0].name = "../escape";
    EXPECT_EQ(error_code(state.store(m)), Errc::invalid_input);
    EXPECT_TRUE(entries(dir / "manifests").empty());

    // Operator prose may lose a stray byte without losing the guest.
    m = manifest(uuid1, "web1");
    m.last_error = "QEMU said \x1b[1mbold\x1b[0m";
    ASSERT_TRUE(state.store(m));
    EXPECT_EQ(state.load(uuid1).value()->last_error,
              "QEMU said \xEF\xBF\xBD[1mbold\xEF\xBF\xBD[0m");
}

TEST(StateDir, RejectsInvalidUuids) {
    TempDir dir;
    StateDir state = open_ok(dir / "state");
    for (std::string_view bad :
         {"../../../../../../tmp/x", "C7A5FDBD-CDAF-9455-926A-D65C16DB1809", "",
          "c7a5fdbd-cdaf-9455-926a-d65c16db1809/", "c7a5fdbd-cdaf-9455-926a-d65c16db180\n"}) {
        Manifest m = manifest(uuid1, "web1");
        m.uuid = bad;
        EXPECT_EQ(error_code(state.load(bad)), Errc::invalid_input) << bad;
        EXPECT_EQ(error_code(state.store(m)), Errc::invalid_input) << bad;
        EXPECT_EQ(error_code(state.remove(bad)), Errc::invalid_input) << bad;
        EXPECT_EQ(error_code(state.lock(bad, 0ms)), Errc::invalid_input) << bad;
        EXPECT_EQ(error_code(state.record_pause(bad, 1)), Errc::invalid_input) << bad;
        EXPECT_EQ(error_code(state.last_pause(bad)), Errc::invalid_input) << bad;
    }
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"state"});
    for (const char* sub : {"manifests", "locks", "pause"})
        EXPECT_TRUE(entries(dir / "state/" + sub).empty()) << sub;
}

TEST(StateDir, LockContentionWithinAProcess) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    auto first = state.lock(uuid1, 0ms);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->uuid(), uuid1);
    EXPECT_EQ(mode_of(dir / "locks/" + std::string(uuid1) + ".lock"), 0600u);

    auto second = state.lock(uuid1, 0ms);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, Errc::busy);
    EXPECT_NE(
        second.error().message().find("another vmupdate run holds domain " + std::string(uuid1)),
        std::string::npos)
        << second.error().message();
    EXPECT_TRUE(state.lock(uuid2, 0ms)) << "other domains are not affected";

    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(error_code(state.lock(uuid1, 50ms)), Errc::busy);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);

    // Moving the lock keeps it held.
    DomainLock moved = std::move(*first);
    EXPECT_FALSE(state.lock(uuid1, 0ms));

    std::thread releaser([lock = std::move(moved)]() mutable {
        std::this_thread::sleep_for(100ms);
        DomainLock gone = std::move(lock);
    });
    auto waited = state.lock(uuid1, 300ms);
    releaser.join();
    ASSERT_TRUE(waited) << waited.error().message();
}

TEST(StateDir, LockConflictsAcrossProcesses) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    {
        auto held = state.lock(uuid1, 0ms);
        ASSERT_TRUE(held);
        pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            auto r = state.lock(uuid1, 0ms);
            ::_exit(!r && r.error().code == Errc::busy ? 0 : 1);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << "a child process must not get a lock its parent holds";
    }

    // The other way round: the child holds the lock until told to exit.
    int ready[2], done[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(done), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto r = state.lock(uuid1, 0ms);
        char c = r ? 'y' : 'n';
        if (::write(ready[1], &c, 1) != 1)
            ::_exit(2);
        ssize_t n = ::read(done[0], &c, 1);
        ::_exit(r && n == 1 ? 0 : 1);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    EXPECT_EQ(c, 'y');
    auto busy = state.lock(uuid1, 0ms);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, Errc::busy);
    ASSERT_EQ(::write(done[1], "x", 1), 1);
    // The child's exit releases its lock.
    auto after = state.lock(uuid1, 2000ms);
    EXPECT_TRUE(after) << after.error().message();
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int fd : {ready[0], ready[1], done[0], done[1]})
        ::close(fd);
}

TEST(StateDir, PauseRecordRoundTrip) {
    TempDir dir;
    StateDir state = open_ok(dir.path());
    EXPECT_EQ(state.last_pause(uuid1).value(), std::nullopt);
    ASSERT_TRUE(state.record_pause(uuid1, 123456));
    EXPECT_EQ(state.last_pause(uuid1).value(), 123456);
    std::string file = dir / "pause/" + std::string(uuid1);
    EXPECT_EQ(slurp(file), "123456\n");
    EXPECT_EQ(mode_of(file), 0600u);
    ASSERT_TRUE(state.record_pause(uuid1, 0));
    EXPECT_EQ(state.last_pause(uuid1).value(), 0);
    ASSERT_TRUE(state.record_pause(uuid1, INT64_MAX));
    EXPECT_EQ(state.last_pause(uuid1).value(), INT64_MAX);
    EXPECT_EQ(error_code(state.record_pause(uuid1, -1)), Errc::invalid_input);
    EXPECT_EQ(entries(dir / "pause"), std::vector<std::string>{uuid1});

    for (const char* garbage : {"", "abc\n", "-5\n", "12 34\n", "99999999999999999999\n"}) {
        std::ofstream(file, std::ios::trunc) << garbage;
        auto bad = state.last_pause(uuid1);
        ASSERT_FALSE(bad) << garbage;
        EXPECT_EQ(bad.error().code, Errc::invalid_input);
        EXPECT_EQ(bad.error().object, file);
    }
}

// The hook, the restore helper and the CLI change one manifest from separate
// processes; each change is a load, a check and a store. Without a lock around
// the three, changes are lost (seen: a helper's `restored` overwrote a
// `release end`'s `saved`, leaving a stopped domain whose manifest said it ran).
TEST(StateDir, UpdatesFromManyProcessesAreNeverLost) {
    TempDir tmp;
    StateDir dir = open_ok(tmp / "state");
    const char* uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
    Manifest m = manifest(uuid, "web1");
    m.timeline.clear();
    ASSERT_TRUE(dir.store(m));
    constexpr int children = 4, rounds = 25;
    std::vector<pid_t> pids;
    for (int c = 0; c < children; ++c) {
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto s = StateDir::open(tmp / "state");
            if (!s)
                ::_exit(1);
            for (int i = 0; i < rounds; ++i) {
                auto r = s->update(uuid, [&](Manifest& cur) {
                    cur.timeline.push_back({"tick", static_cast<std::int64_t>(c * 1000 + i)});
                    return true;
                });
                if (!r || !*r)
                    ::_exit(2);
            }
            ::_exit(0);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    auto after = dir.load(uuid);
    ASSERT_TRUE(after && *after);
    EXPECT_EQ((*after)->timeline.size(), static_cast<size_t>(children * rounds));
    // A change that declines leaves the manifest as it is; none stored: nullopt.
    auto same = dir.update(uuid, [](Manifest& cur) {
        cur.name = "changed";
        return false;
    });
    ASSERT_TRUE(same && *same);
    EXPECT_EQ((*dir.load(uuid))->name, "web1");
    auto none = dir.update("00000000-0000-0000-0000-000000000000", [](Manifest&) { return true; });
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_value());
}
