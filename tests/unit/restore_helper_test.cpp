// The restore helper against a fake QEMU: a thread of this test connecting to
// the attempt's socket (on which the helper listens) and speaking QMP, with this
// process's pid in a fake libvirt pidfile. QEMU is untrusted, so most cases are
// hostile ones.
#include "qmp_peer.hpp"
#include "temp_dir.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/restore_helper.hpp"
#include "vmupdate/state.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vmupdate;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

constexpr const char* uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
constexpr const char* attempt = "libvirt-c7a5fdbd-edaf-9455-926a-d65c16db1809.0123456789abcdef";
// Another domain on the same host, with a restore under way.
constexpr const char* other_uuid = "0f2c8a4e-1d3b-4c5a-9e6f-7a8b9c0d1e2f";
constexpr const char* other_attempt =
    "libvirt-0f2c8a4e-1d3b-4c5a-9e6f-7a8b9c0d1e2f.fedcba9876543210";
using vmupdate::testing::Peer;
constexpr std::string_view greeting = vmupdate::testing::qemu_greeting;

using Clock = std::chrono::steady_clock;

// Connects to the helper's socket at `path` (as QEMU does at its start, from
// construction on) and plays QEMU with `script` on that connection, in a thread.
class FakeQemu {
public:
    FakeQemu(const std::string& path, std::function<void(Peer&)> script) {
        thread_ = std::thread([this, path, script = std::move(script)] {
            int fd = vmupdate::testing::connect_unix(path);
            if (fd < 0)
                return;
            Peer peer(fd);
            script(peer);
            received_ = peer.bytes_received();
        });
    }
    FakeQemu(const FakeQemu&) = delete;
    FakeQemu& operator=(const FakeQemu&) = delete;
    ~FakeQemu() { join(); }
    void join() {
        if (thread_.joinable())
            thread_.join();
    }
    // What the helper sent; after join().
    size_t received() const { return received_; }

private:
    std::thread thread_;
    size_t received_ = 0;
};

// How the fake QEMU behaves once the helper has turned x-ignore-shared on.
struct Behaviour {
    std::function<void(Peer&)> after_capability_on; // e.g. the MIGRATION events
    std::string query_status = "completed";         // what query-migrate says
};

// QEMU's side of the conversation: greeting, negotiation and the helper's commands.
void serve(Peer& p, const Behaviour& b) {
    if (!p.send(std::string(greeting)))
        return;
    bool on = false;
    for (;;) {
        json req = p.request();
        if (req.is_discarded())
            return;
        std::string command = req.value("execute", "");
        json id = req.value("id", json());
        auto reply = [&](const json& ret) {
            return p.send(json{{"return", ret}, {"id", id}}.dump());
        };
        if (command == "qmp_capabilities") {
            reply(json::object());
        } else if (command == "migrate-set-capabilities") {
            on = req["arguments"]["capabilities"][0]["state"].get<bool>();
            reply(json::object());
            if (on && b.after_capability_on)
                b.after_capability_on(p);
        } else if (command == "query-migrate") {
            reply(json{{"status", b.query_status}});
        } else if (command == "query-migrate-capabilities") {
            json entry = {{"capability", "x-ignore-shared"}, {"state", on}};
            reply(json::array({entry}));
        } else {
            p.send(
                json{{"error", {{"class", "CommandNotFound"}, {"desc", "no"}}}, {"id", id}}.dump());
        }
    }
}

std::string event(const std::string& status, std::int64_t seconds = 1700000000) {
    return json{{"timestamp", {{"seconds", seconds}, {"microseconds", 5}}},
                {"event", "MIGRATION"},
                {"data", {{"status", status}}}}
        .dump();
}

void migration_events(Peer& p) {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    p.send(event("setup", now));
    p.send(event("active", now));
    p.send(event("completed", now));
}

long max_rss_kib() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

class RestoreHelper : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(tmp.path().empty());
        paths.state_dir = tmp / "state";
        paths.run_dir = tmp / "run";
        paths.qemu_pid_dir = tmp / "pid";
        std::filesystem::create_directories(paths.run_dir + "/qmp/" + attempt);
        std::filesystem::create_directories(paths.qemu_pid_dir);
        write_pidfile(::getpid());
        auto s = StateDir::open(paths.state_dir);
        ASSERT_TRUE(s) << s.error().message();
        state.emplace(std::move(*s));
        Manifest m;
        m.uuid = uuid;
        m.name = "web1";
        m.state = SaveState::restoring;
        m.attempt = attempt;
        m.ram = {{"pc.ram", "/var/lib/vmupdate/ram/" + std::string(uuid) + "/pc.ram", 2049, 77,
                  1ULL << 30}};
        m.image = "/var/lib/libvirt/qemu/save/web1.save";
        m.image_size = 4096;
        m.saved_at_us = 1700000000000000;
        ASSERT_TRUE(state->store(m));
        // What the hook passes the helper: root's socket, already listening.
        listener = vmupdate::testing::bind_unix(socket(), true);
        ASSERT_GE(listener, 0) << std::strerror(errno);
        args = {uuid, attempt, socket(), "web1", listener};
        options.connect_timeout = 2s;
        options.migration_timeout = 1s;
        options.command_timeout = 500ms;
        options.poll_interval = 50ms;
    }

    void write_pidfile(long pid) {
        std::ofstream(paths.qemu_pid_dir + "/web1.pid", std::ios::trunc) << pid << '\n';
    }
    std::string socket() const { return paths.run_dir + "/qmp/" + attempt + "/qmp.sock"; }
    Manifest manifest() const {
        auto m = state->load(uuid);
        EXPECT_TRUE(m && *m);
        return m && *m ? **m : Manifest{};
    }
    Result<void> run() { return run_restore_helper(paths, args, log, options); }

    // The failure left the manifest restoring, with the helper's error recorded.
    void expect_failure_recorded(const std::string& cause) {
        Manifest m = manifest();
        EXPECT_EQ(m.state, SaveState::restoring);
        EXPECT_NE(m.last_error.find("restore helper"), std::string::npos) << m.last_error;
        EXPECT_NE(m.last_error.find(cause), std::string::npos) << m.last_error;
    }

    // Runs the helper, which must fail with `code` and record `cause`.
    void expect_run_fails(Errc code, const std::string& cause) {
        auto ok = run();
        ASSERT_FALSE(ok);
        EXPECT_EQ(ok.error().code, code) << ok.error().message();
        expect_failure_recorded(cause);
    }

    void TearDown() override {
        if (listener >= 0)
            ::close(listener);
    }

    vmupdate::testing::TempDir tmp{"helper"};
    int listener = -1;
    Paths paths;
    std::optional<StateDir> state;
    RestoreHelperArgs args;
    RestoreHelperOptions options;
    std::vector<std::string> log;
};

} // namespace

TEST_F(RestoreHelper, RecordsACompletedRestore) {
    FakeQemu qemu(socket(), [](Peer& p) { serve(p, {migration_events}); });
    auto ok = run();
    ASSERT_TRUE(ok) << ok.error().message();
    qemu.join();
    Manifest m = manifest();
    EXPECT_EQ(m.state, SaveState::restored);
    EXPECT_EQ(m.last_error, "");
    std::vector<std::string> names;
    for (const auto& t : m.timeline)
        names.push_back(t.name);
    EXPECT_EQ(names, (std::vector<std::string>{"helper-connected", "migration-setup", "loaded"}));
    struct stat st {};
    EXPECT_NE(::lstat((paths.run_dir + "/qmp/" + attempt).c_str(), &st), 0)
        << "the socket directory is removed";
    bool peer_logged = false;
    for (const auto& l : log)
        peer_logged |= l.find("peer pid " + std::to_string(::getpid()) + ", uid ") == 0;
    EXPECT_TRUE(peer_logged);
}

// libvirt 11.3 writes the pidfile of a domain named q'x"y&z as
// q&apos;x&quot;y&amp;z.pid (seen in /run/libvirt/qemu).
TEST_F(RestoreHelper, FindsThePidfileOfANameLibvirtEscapes) {
    const std::string name = "q'x\"y&z";
    ASSERT_EQ(::unlink((paths.qemu_pid_dir + "/web1.pid").c_str()), 0);
    std::ofstream(paths.qemu_pid_dir + "/q&apos;x&quot;y&amp;z.pid") << ::getpid() << '\n';
    args.domain = name;
    FakeQemu qemu(socket(), [](Peer& p) { serve(p, {migration_events}); });
    auto ok = run();
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_EQ(manifest().state, SaveState::restored);
}

TEST_F(RestoreHelper, WorksWithoutEventsThroughQueryMigrate) {
    FakeQemu qemu(socket(), [](Peer& p) { serve(p, {}); });
    auto ok = run();
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_EQ(manifest().state, SaveState::restored);
}

TEST_F(RestoreHelper, SilentPeerTimesOut) {
    options.connect_timeout = 300ms;
    FakeQemu qemu(socket(), [](Peer& p) { p.wait_closed(); });
    auto start = Clock::now();
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::timeout) << ok.error().message();
    EXPECT_LT(Clock::now() - start, 3s);
    expect_failure_recorded("timed out");
}

TEST_F(RestoreHelper, QemuNeverConnectingTimesOut) {
    options.connect_timeout = 200ms;
    expect_run_fails(Errc::timeout, "QEMU did not connect");
}

TEST_F(RestoreHelper, FloodWithoutNewlineIsBounded) {
    long before = max_rss_kib();
    FakeQemu qemu(socket(), [](Peer& p) {
        std::string chunk(64 * 1024, 'a');
        if (!p.send_raw(R"({"event": "SPAM", "data": ")"))
            return;
        for (size_t sent = 0; sent < 100u * 1024 * 1024; sent += chunk.size())
            if (!p.send_raw(chunk))
                return;
    });
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::qmp) << ok.error().message();
    qemu.join();
    EXPECT_LT(max_rss_kib() - before, 64 * 1024) << "KiB of peak RSS growth";
    expect_failure_recorded("longer than");
}

TEST_F(RestoreHelper, FloodOfEventsIsBounded) {
    long before = max_rss_kib();
    FakeQemu qemu(socket(), [](Peer& p) {
        serve(p, {[](Peer& q) {
                  std::string line =
                      R"({"event": "SPAM", "data": {"x": ")" + std::string(1000, 'b') + "\"}}\n";
                  std::string block;
                  while (block.size() < 64 * 1024)
                      block += line;
                  for (size_t sent = 0; sent < 100u * 1024 * 1024; sent += block.size())
                      if (!q.send_raw(block))
                          return;
              }});
    });
    auto start = Clock::now();
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_LT(Clock::now() - start, 10s);
    qemu.join();
    EXPECT_LT(max_rss_kib() - before, 64 * 1024) << "KiB of peak RSS growth";
    EXPECT_NE(manifest().state, SaveState::restored);
    EXPECT_NE(manifest().last_error, "");
}

TEST_F(RestoreHelper, DeeplyNestedEventIsAProtocolError) {
    FakeQemu qemu(socket(), [](Peer& p) {
        serve(p, {[](Peer& q) {
                  constexpr size_t depth = 100000;
                  q.send(R"({"event": "MIGRATION", "data": )" + std::string(depth, '[') +
                         std::string(depth, ']') + "}");
              }});
    });
    expect_run_fails(Errc::qmp, "nested deeper");
}

TEST_F(RestoreHelper, CompletedEventNeedsQueryMigrateToAgree) {
    FakeQemu qemu(socket(), [](Peer& p) {
        Behaviour b{[](Peer& q) { q.send(event("completed")); }, "active"};
        serve(p, b);
    });
    expect_run_fails(Errc::verify, "incoming migration active");
}

TEST_F(RestoreHelper, FailedMigrationIsRecorded) {
    FakeQemu qemu(socket(), [](Peer& p) {
        serve(p, {[](Peer& q) { q.send(event("failed")); }, "failed"});
    });
    auto ok = run();
    ASSERT_FALSE(ok);
    expect_failure_recorded("incoming migration failed");
}

TEST_F(RestoreHelper, RefusesAPeerThatIsNotTheDomainsQemu) {
    write_pidfile(1);
    FakeQemu qemu(socket(), [](Peer& p) {
        p.send(std::string(greeting));
        p.wait_closed();
    });
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::refused) << ok.error().message();
    qemu.join();
    EXPECT_EQ(qemu.received(), 0u) << "nothing is sent to an unidentified peer";
    expect_failure_recorded("is not the domain's QEMU");
}

TEST_F(RestoreHelper, RefusesWithoutAPidfile) {
    ASSERT_EQ(::unlink((paths.qemu_pid_dir + "/web1.pid").c_str()), 0);
    FakeQemu qemu(socket(), [](Peer& p) { p.wait_closed(); });
    auto ok = run();
    ASSERT_FALSE(ok);
    qemu.join();
    EXPECT_EQ(qemu.received(), 0u);
    expect_failure_recorded("pidfile");
}

TEST_F(RestoreHelper, RefusesAPidfileThatIsALink) {
    std::string pidfile = paths.qemu_pid_dir + "/web1.pid";
    std::string elsewhere = tmp / "elsewhere.pid";
    ASSERT_EQ(::rename(pidfile.c_str(), elsewhere.c_str()), 0);
    ASSERT_EQ(::symlink(elsewhere.c_str(), pidfile.c_str()), 0);
    FakeQemu qemu(socket(), [](Peer& p) { p.wait_closed(); });
    auto ok = run();
    ASSERT_FALSE(ok);
    expect_failure_recorded("pidfile");
}

TEST_F(RestoreHelper, LeavesAnotherAttemptsManifestAlone) {
    ASSERT_TRUE(state->update(uuid, [](Manifest& m) {
        m.attempt = "libvirt-c7a5fdbd-edaf-9455-926a-d65c16db1809.fedcba9876543210";
        return true;
    }));
    FakeQemu qemu(socket(), [](Peer& p) { serve(p, {migration_events}); });
    auto ok = run();
    ASSERT_TRUE(ok) << ok.error().message();
    Manifest m = manifest();
    EXPECT_EQ(m.state, SaveState::restoring);
    EXPECT_TRUE(m.timeline.empty());
}

TEST_F(RestoreHelper, RefusesASocketOutsideTheAttempt) {
    args.socket = tmp / "elsewhere.sock";
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::invalid_input);
}

// A helper pointed at another domain's attempt (its socket would be that
// domain's QEMU) refuses before it connects, and records nothing anywhere.
TEST_F(RestoreHelper, RefusesAnAttemptOfAnotherDomain) {
    std::string dir = paths.run_dir + "/qmp/" + other_attempt;
    std::filesystem::create_directories(dir);
    int other = vmupdate::testing::bind_unix(dir + "/qmp.sock", true);
    ASSERT_GE(other, 0) << std::strerror(errno);
    args.attempt = other_attempt;
    args.socket = dir + "/qmp.sock";
    args.listen_fd = other;
    auto ok = run();
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::invalid_input);
    EXPECT_NE(ok.error().message().find(uuid), std::string::npos) << ok.error().message();
    ::close(other);
    EXPECT_TRUE(std::filesystem::exists(dir + "/qmp.sock"));
    EXPECT_EQ(manifest().last_error, "");
    EXPECT_EQ(manifest().state, SaveState::restoring);
}

// The descriptor the helper accepts on must be the attempt's socket, listening.
TEST_F(RestoreHelper, RefusesADescriptorThatIsNotTheAttemptsListener) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    args.listen_fd = p[0];
    expect_run_fails(Errc::invalid_input, "no listening monitor socket");
    ::close(p[0]);
    ::close(p[1]);
}

// Issue 21, item 9: another domain's QEMU (any process of the QEMU user that
// read this domain's command line) connects first. It is hung up on before a
// byte is sent to it, and the domain's own QEMU, connecting after it, is served.
TEST_F(RestoreHelper, AnotherQemuConnectingFirstIsHungUpOn) {
    int report[2];
    ASSERT_EQ(::pipe(report), 0);
    pid_t intruder = ::fork();
    if (intruder == 0) {
        ::close(report[0]);
        int fd = vmupdate::testing::connect_unix(socket());
        char got = fd >= 0 ? 'c' : 'e';
        (void)!::write(report[1], &got, 1); // connected, first in the queue
        if (fd >= 0) {
            // Plays QEMU, hoping for the helper's commands.
            std::string hello = std::string(greeting) + "\r\n";
            bool sent = ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) > 0;
            char buf[256];
            // Hung up on with nothing sent: EOF, or a reset as its own greeting
            // was left unread, or (already) a broken pipe.
            ssize_t n = sent ? ::read(fd, buf, sizeof buf) : 0;
            got = n == 0 || (n < 0 && errno == ECONNRESET) ? '0' : n > 0 ? 'd' : 'e';
        }
        (void)!::write(report[1], &got, 1);
        ::_exit(0);
    }
    ::close(report[1]);
    char got = '?';
    ASSERT_EQ(::read(report[0], &got, 1), 1);
    ASSERT_EQ(got, 'c');
    FakeQemu qemu(socket(), [](Peer& p) { serve(p, {migration_events}); });
    auto ok = run();
    EXPECT_TRUE(ok) << ok.error().message();
    EXPECT_EQ(::read(report[0], &got, 1), 1);
    ::close(report[0]);
    ::waitpid(intruder, nullptr, 0);
    EXPECT_EQ(got, '0') << "the intruder was not hung up on without data";
    EXPECT_EQ(manifest().state, SaveState::restored);
    bool refused_logged = false;
    for (const auto& l : log)
        refused_logged = refused_logged || l.find("is not the domain's QEMU") != std::string::npos;
    EXPECT_TRUE(refused_logged);
}

TEST(RestoreHelperArgs, ParsesTheHooksCommandLine) {
    auto a = parse_restore_helper_args({uuid, attempt, "/run/vmupdate/qmp/x/qmp.sock", "web1"});
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->uuid, uuid);
    EXPECT_EQ(a->attempt, attempt);
    EXPECT_EQ(a->domain, "web1");
    // A domain may have any safe name, options included: arguments are positional.
    EXPECT_TRUE(parse_restore_helper_args({uuid, attempt, "s", "--restore-helper"}));
    EXPECT_FALSE(parse_restore_helper_args({uuid, attempt, "s"}));
    EXPECT_FALSE(parse_restore_helper_args({"not-a-uuid", attempt, "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args({uuid, "../x", "s", "web1"}));
    // The attempt must be this domain's: libvirt-<uuid>.<16 hex digits>.
    EXPECT_FALSE(parse_restore_helper_args({uuid, other_attempt, "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args({other_uuid, attempt, "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args({uuid, "0123456789abcdef", "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args(
        {uuid, "libvirt-c7a5fdbd-edaf-9455-926a-d65c16db1809.0123456789ABCDEF", "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args(
        {uuid, "libvirt-c7a5fdbd-edaf-9455-926a-d65c16db1809.0123456789abcde", "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args(
        {uuid, "libvirt-c7a5fdbd-edaf-9455-926a-d65c16db1809.0123456789abcdef/..", "s", "web1"}));
    EXPECT_FALSE(parse_restore_helper_args({uuid, attempt, "s", "../../etc/x"}));
    EXPECT_FALSE(parse_restore_helper_args({uuid, attempt, "s", ""}));
}
