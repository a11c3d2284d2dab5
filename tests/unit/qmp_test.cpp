// The QMP client against a scripted QEMU on a socketpair or a unix socket, replaying
// transcripts recorded from QEMU 10.0, and the helpers reading QEMU's replies.
#include "qmp_peer.hpp"
#include "vmupdate/qmp.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <utility>

using namespace vmupdate;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using vmupdate::testing::bind_unix;
using vmupdate::testing::Peer;
using vmupdate::testing::serve_once;
constexpr std::string_view greeting = vmupdate::testing::qemu_greeting;

// What query-migrate-capabilities returned on QEMU 10.0 with x-ignore-shared on.
constexpr std::string_view capabilities_10_0 =
    R"([{"state": false, "capability": "xbzrle"}, {"state": false, "capability": "rdma-pin-all"}, {"state": false, "capability": "auto-converge"}, {"state": false, "capability": "zero-blocks"}, {"state": true, "capability": "events"}, {"state": false, "capability": "postcopy-ram"}, {"state": false, "capability": "x-colo"}, {"state": false, "capability": "release-ram"}, {"state": false, "capability": "return-path"}, {"state": false, "capability": "pause-before-switchover"}, {"state": false, "capability": "multifd"}, {"state": false, "capability": "dirty-bitmaps"}, {"state": false, "capability": "postcopy-blocktime"}, {"state": false, "capability": "late-block-activate"}, {"state": true, "capability": "x-ignore-shared"}, {"state": false, "capability": "validate-uuid"}, {"state": false, "capability": "background-snapshot"}, {"state": false, "capability": "zero-copy-send"}, {"state": false, "capability": "postcopy-preempt"}, {"state": false, "capability": "switchover-ack"}, {"state": false, "capability": "dirty-limit"}, {"state": false, "capability": "mapped-ram"}])";

constexpr std::string_view migration_completed_event =
    R"({"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "MIGRATION", "data": {"status": "completed"}})";

using Clock = std::chrono::steady_clock;

long long ms_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Plays QEMU with `script` on one end of a socketpair in a thread. Declare it before
// the client, so that the client hangs up first and the script can finish.
class FakeQemu {
public:
    explicit FakeQemu(std::function<void(Peer&)> script) {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
            std::abort();
        client_fd_ = fds[0];
        thread_ = std::thread([script = std::move(script), fd = fds[1]] {
            Peer peer(fd);
            script(peer);
        });
    }
    FakeQemu(const FakeQemu&) = delete;
    FakeQemu& operator=(const FakeQemu&) = delete;
    ~FakeQemu() {
        if (client_fd_ >= 0)
            ::close(client_fd_);
        thread_.join();
    }

    // The client's end, for QmpClient::adopt().
    int take_fd() { return std::exchange(client_fd_, -1); }

private:
    int client_fd_ = -1;
    std::thread thread_;
};

// A fresh directory for sockets, removed afterwards.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/vmupdate-qmp-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr)
            std::abort();
        path_ = tmpl;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// That `r` failed with a timeout, no sooner than `ms` after `start` and well
// within 2 s.
// That `r` failed with a protocol error whose cause contains `cause`.
template <typename T> void expect_qmp_error(const Result<T>& r, std::string_view cause = {}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::qmp);
    EXPECT_NE(r.error().cause.find(cause), std::string::npos) << r.error().cause;
}

template <typename T>
void expect_timed_out(const Result<T>& r, Clock::time_point start, long long ms) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::timeout);
    EXPECT_GE(ms_since(start), ms);
    EXPECT_LT(ms_since(start), 2000);
}

} // namespace

TEST(QmpClient, NegotiatesCapabilities) {
    FakeQemu qemu([](Peer& p) {
        p.send(greeting);
        json req = p.request();
        EXPECT_EQ(req.value("execute", ""), "qmp_capabilities");
        EXPECT_FALSE(req.contains("arguments"));
        ASSERT_TRUE(req.contains("id"));
        p.send(R"({"return": {}, "id": )" + req["id"].dump() + "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_EQ(client->object_name(), "fake.sock");
}

TEST(QmpClient, ExecuteReturnsTheReturnMember) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        EXPECT_EQ(req.value("execute", ""), "query-status");
        p.send(R"({"return": {"status": "inmigrate", "running": false}, "id": )" +
               req["id"].dump() + "}");
        req = p.request();
        EXPECT_EQ(req.value("execute", ""), "query-migrate");
        p.send(R"({"return": {}})"); // QEMU echoes no id when the request had none
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto status = client->execute("query-status");
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(json::parse(*status), json::parse(R"({"status": "inmigrate", "running": false})"));
    auto migrate = client->execute("query-migrate");
    ASSERT_TRUE(migrate) << migrate.error().message();
    EXPECT_EQ(*migrate, "{}");
    EXPECT_EQ(migration_status(*migrate).value(), "none");
}

TEST(QmpClient, ExecuteSendsArguments) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        EXPECT_EQ(req.value("execute", ""), "migrate-set-capabilities");
        EXPECT_EQ(
            req.value("arguments", json()),
            json::parse(R"({"capabilities": [{"capability": "x-ignore-shared", "state": true}]})"));
        p.send(R"({"return": {}, "id": )" + req["id"].dump() + "}");
        req = p.request();
        EXPECT_EQ(req.value("execute", ""), "query-migrate-capabilities");
        p.send(R"({"return": )" + std::string(capabilities_10_0) + R"(, "id": )" +
               req["id"].dump() + "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto set =
        client->execute("migrate-set-capabilities", capability_arguments("x-ignore-shared", true));
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_EQ(*set, "{}");
    auto caps = client->execute("query-migrate-capabilities");
    ASSERT_TRUE(caps) << caps.error().message();
    EXPECT_TRUE(capability_state(*caps, "x-ignore-shared").value());
}

TEST(QmpClient, RefusesBadArgumentsWithoutSending) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        // The next line must be the good request: nothing of the refused ones was sent.
        json req = p.request();
        EXPECT_EQ(req.value("execute", ""), "stop");
        p.send(R"({"return": {}})");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    for (std::string_view args : {"{\"capabilities\": [", "[1, 2]", "\"text\""}) {
        auto r = client->execute("migrate-set-capabilities", args);
        ASSERT_FALSE(r) << args;
        EXPECT_EQ(r.error().code, Errc::invalid_input);
    }
    auto empty = client->execute("");
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, Errc::invalid_input);
    EXPECT_TRUE(client->execute("stop"));
}

TEST(QmpClient, ErrorReplyBecomesQmpError) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        p.send(
            R"({"id": )" + req["id"].dump() +
            R"(, "error": {"class": "GenericError", "desc": "Parameter 'capability' does not accept value 'x-nope'"}})");
        req = p.request();
        p.send(
            R"({"id": )" + req["id"].dump() +
            R"(, "error": {"class": "CommandNotFound", "desc": "The command no-such-cmd has not been found"}})");
        // The connection stays usable after error replies.
        req = p.request();
        p.send(R"({"return": {}, "id": )" + req["id"].dump() + "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "/run/vmupdate/web1.qmp", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("migrate-set-capabilities", capability_arguments("x-nope", true));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::qmp);
    EXPECT_EQ(r.error().object, "/run/vmupdate/web1.qmp");
    EXPECT_EQ(r.error().step, "QMP command migrate-set-capabilities failed");
    EXPECT_EQ(r.error().cause, "Parameter 'capability' does not accept value 'x-nope'");
    auto missing = client->execute("no-such-cmd");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message(), "/run/vmupdate/web1.qmp: QMP command no-such-cmd failed: "
                                         "The command no-such-cmd has not been found");
    EXPECT_TRUE(client->execute("cont"));
}

TEST(QmpClient, QueuesEventsArrivingBeforeTheReply) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        std::string id = req["id"].dump();
        // Several messages in one write, the last one split across writes.
        p.send_raw(
            R"({"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "MIGRATION", "data": {"status": "setup"}})"
            "\r\n"
            R"({"timestamp": {"seconds": 1700000000, "microseconds": 2}, "event": "STOP"})"
            "\r\n"
            R"({"timestamp": {"seconds": 1700000000, "microseconds": 3}, "event": "MIGRATION", "data": {"status": "active"}})"
            "\r\n"
            R"({"timestamp": {"seconds": 1700000000, "microseconds": 4}, "event": "MIGRATION_PASS", "data": {"pass": 1}})"
            "\r\n{\"return\": {\"status\": \"act");
        std::this_thread::sleep_for(30ms);
        p.send_raw(R"(ive"}, "id": )" + id + "}\r\n");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("query-migrate");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(migration_status(*r).value(), "active");

    // Oldest first, per name; events without data give an empty object.
    auto first = client->wait_event("MIGRATION", 200ms);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(migration_status(first->data).value(), "setup");
    EXPECT_EQ(client->wait_event("STOP", 0ms).value().data, "{}");
    auto second = client->wait_event("MIGRATION", 0ms);
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_EQ(migration_status(second->data).value(), "active");
    EXPECT_EQ(second->at_us, 1700000000000003);
    EXPECT_EQ(json::parse(client->wait_event("MIGRATION_PASS", 0ms).value().data),
              json::parse(R"({"pass": 1})"));

    // The queue is empty now and the peer silent.
    auto start = Clock::now();
    auto none = client->wait_event("MIGRATION", 200ms);
    ASSERT_NO_FATAL_FAILURE(expect_timed_out(none, start, 200));
    EXPECT_EQ(none.error().step, "QMP event MIGRATION did not arrive");
}

TEST(QmpClient, WaitEventReadsFromTheSocket) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        std::this_thread::sleep_for(50ms);
        p.send(R"({"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESUME"})");
        p.send(R"({"event": "STOP"})");
        std::string event(migration_completed_event);
        p.send_raw(event.substr(0, 40));
        std::this_thread::sleep_for(30ms);
        p.send_raw(event.substr(40) + "\r\n");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto data = client->wait_event("MIGRATION", 2s);
    ASSERT_TRUE(data) << data.error().message();
    EXPECT_EQ(migration_status(data->data).value(), "completed");
    // RESUME came first and was kept.
    auto resume = client->wait_event("RESUME", 0ms);
    ASSERT_TRUE(resume) << resume.error().message();
    EXPECT_EQ(resume->data, "{}");
    EXPECT_EQ(resume->at_us, 1700000000000005);
    EXPECT_EQ(data->at_us, 1700000000000001);
    // An event without a timestamp has none.
    EXPECT_EQ(client->wait_event("STOP", 0ms).value().at_us, 0);
}

TEST(QmpClient, TimesOutWhenThePeerIsSilent) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        EXPECT_EQ(p.request().value("execute", ""), "query-migrate");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto start = Clock::now();
    auto r = client->execute("query-migrate", {}, 200ms);
    ASSERT_NO_FATAL_FAILURE(expect_timed_out(r, start, 200));
    EXPECT_EQ(r.error().message(),
              "fake.sock: QMP command query-migrate failed: timed out after 200 ms");
}

TEST(QmpClient, DropsTheLateReplyAfterATimeout) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json slow = p.request();
        json next = p.request(); // sent once the client gave up on `slow`
        EXPECT_EQ(next.value("execute", ""), "query-status");
        EXPECT_NE(slow["id"], next["id"]);
        p.send(R"({"return": {"status": "setup"}, "id": )" + slow["id"].dump() + "}");
        p.send(R"({"return": {"status": "running", "running": true}, "id": )" + next["id"].dump() +
               "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto slow = client->execute("query-migrate", {}, 100ms);
    ASSERT_FALSE(slow);
    EXPECT_EQ(slow.error().code, Errc::timeout);
    auto next = client->execute("query-status");
    ASSERT_TRUE(next) << next.error().message();
    EXPECT_EQ(json::parse(*next), json::parse(R"({"status": "running", "running": true})"));
}

TEST(QmpClient, GreetingTimesOut) {
    FakeQemu qemu([](Peer& p) { p.wait_closed(); });
    auto start = Clock::now();
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 200ms);
    ASSERT_NO_FATAL_FAILURE(expect_timed_out(client, start, 200));
    EXPECT_EQ(client.error().step, "cannot read the QMP greeting");
}

TEST(QmpClient, NegotiationTimesOut) {
    FakeQemu qemu([](Peer& p) {
        p.send(greeting);
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 200ms);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, Errc::timeout);
    EXPECT_EQ(client.error().step, "QMP command qmp_capabilities failed");
}

TEST(QmpClient, PeerClosesTheConnection) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send_raw(R"({"return": {"sta)"); // dies mid-reply
        p.close_now();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("query-migrate", {}, 2s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::qmp);
    EXPECT_EQ(r.error().cause, "QEMU closed the connection");
    // Later calls fail at once instead of talking to a dead peer.
    auto start = Clock::now();
    auto again = client->execute("query-migrate", {}, 2s);
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().cause.find("unusable"), std::string::npos) << again.error().cause;
    auto event = client->wait_event("MIGRATION", 2s);
    ASSERT_FALSE(event);
    EXPECT_LT(ms_since(start), 1000);
}

TEST(QmpClient, PeerClosesBeforeTheGreeting) {
    FakeQemu qemu([](Peer& p) { p.close_now(); });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, Errc::qmp);
    EXPECT_EQ(client.error().message(),
              "fake.sock: cannot read the QMP greeting: QEMU closed the connection");
}

TEST(QmpClient, RejectsGarbage) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send(R"({"return": {}, oops})");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("query-migrate");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::qmp);
    EXPECT_EQ(r.error().cause, R"(malformed JSON from QEMU: {"return": {}, oops})");
    EXPECT_FALSE(client->execute("query-migrate"));
}

TEST(QmpClient, RejectsJsonThatIsNotAnObject) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send("[1, 2, 3]");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_NO_FATAL_FAILURE(expect_qmp_error(client->execute("query-migrate")));
}

TEST(QmpClient, RejectsAPeerThatIsNotQmp) {
    FakeQemu qemu([](Peer& p) {
        p.send(R"({"return": {}})");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_NO_FATAL_FAILURE(expect_qmp_error(client, "not a QMP greeting"));
}

TEST(QmpClient, RejectsOverlongMessages) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send_raw(R"({"return": ")");
        p.send_raw(std::string(17 * 1024 * 1024, 'a')); // stops when the client hangs up
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_NO_FATAL_FAILURE(expect_qmp_error(client->execute("query-migrate", {}, 5s), "16 MiB"));
}

TEST(QmpClient, SkipsBlankLines) {
    FakeQemu qemu([](Peer& p) {
        p.send_raw("\r\n\n");
        p.negotiate();
        p.request();
        p.send_raw("\r\n"
                   R"({"return": {"status": "completed"}})"
                   "\n");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("query-migrate");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(migration_status(*r).value(), "completed");
}

TEST(QmpConnect, TimesOutWithNothingListening) {
    TempDir dir;
    auto start = Clock::now();
    auto client = QmpClient::connect(dir.path() + "/qmp.sock", 200ms);
    ASSERT_NO_FATAL_FAILURE(expect_timed_out(client, start, 200));
    EXPECT_EQ(client.error().object, dir.path() + "/qmp.sock");
    EXPECT_EQ(client.error().step, "cannot connect to QMP socket");
    EXPECT_NE(client.error().cause.find("No such file or directory"), std::string::npos)
        << client.error().cause;
}

TEST(QmpConnect, TimesOutWhileTheSocketIsNotListening) {
    TempDir dir;
    std::string path = dir.path() + "/qmp.sock";
    int fd = bind_unix(path, false);
    ASSERT_GE(fd, 0);
    auto client = QmpClient::connect(path, 200ms);
    ::close(fd);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, Errc::timeout);
    EXPECT_NE(client.error().cause.find("Connection refused"), std::string::npos)
        << client.error().cause;
}

TEST(QmpConnect, RefusesAnOverlongPath) {
    auto client = QmpClient::connect("/tmp/" + std::string(200, 'q'), 200ms);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, Errc::invalid_input);
}

TEST(QmpConnect, FailsAtOnceOnOtherErrors) {
    TempDir dir;
    std::string file = dir.path() + "/file";
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    auto start = Clock::now();
    auto client = QmpClient::connect(file + "/qmp.sock", 2s); // ENOTDIR
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, Errc::system);
    EXPECT_LT(ms_since(start), 1000);
}

namespace {

void answer_query_status(Peer& p) {
    p.negotiate();
    json req = p.request();
    EXPECT_EQ(req.value("execute", ""), "query-status");
    p.send(R"({"return": {"status": "inmigrate", "running": false}, "id": )" + req["id"].dump() +
           "}");
    p.wait_closed();
}

} // namespace

TEST(QmpConnect, ConnectsToAListeningSocket) {
    TempDir dir;
    std::string path = dir.path() + "/qmp.sock";
    int listener = bind_unix(path, true);
    ASSERT_GE(listener, 0);
    std::thread server([listener] { serve_once(listener, answer_query_status); });
    {
        auto client = QmpClient::connect(path, 2s);
        ASSERT_TRUE(client) << client.error().message();
        EXPECT_EQ(client->object_name(), path);
        auto status = client->execute("query-status");
        ASSERT_TRUE(status) << status.error().message();
        EXPECT_EQ(json::parse(*status).value("status", ""), "inmigrate");
    }
    server.join();
    ::close(listener);
}

TEST(QmpConnect, WaitsForTheSocketToAppear) {
    TempDir dir;
    std::string path = dir.path() + "/qmp.sock";
    std::thread server([path] {
        std::this_thread::sleep_for(150ms); // QEMU still starting
        int listener = bind_unix(path, true);
        ASSERT_GE(listener, 0);
        serve_once(listener, answer_query_status);
        ::close(listener);
    });
    {
        auto client = QmpClient::connect(path, 5s);
        ASSERT_TRUE(client) << client.error().message();
        EXPECT_TRUE(client->execute("query-status"));
    }
    server.join();
}

TEST(QmpJson, CapabilityArguments) {
    EXPECT_EQ(
        json::parse(capability_arguments("x-ignore-shared", true)),
        json::parse(R"({"capabilities": [{"capability": "x-ignore-shared", "state": true}]})"));
    EXPECT_EQ(json::parse(capability_arguments("events", false)),
              json::parse(R"({"capabilities": [{"capability": "events", "state": false}]})"));
}

TEST(QmpJson, CapabilityState) {
    EXPECT_TRUE(capability_state(capabilities_10_0, "x-ignore-shared").value());
    EXPECT_TRUE(capability_state(capabilities_10_0, "events").value());
    EXPECT_FALSE(capability_state(capabilities_10_0, "xbzrle").value());
    EXPECT_FALSE(capability_state(capabilities_10_0, "mapped-ram").value());
    EXPECT_FALSE(capability_state(R"([{"state": false, "capability": "x-ignore-shared"}])",
                                  "x-ignore-shared")
                     .value());
}

TEST(QmpJson, CapabilityStateUnknownCapability) {
    auto r = capability_state(capabilities_10_0, "x-no-such-capability");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::not_found);
    EXPECT_EQ(r.error().object, "x-no-such-capability");
    EXPECT_EQ(capability_state("[]", "x-ignore-shared").error().code, Errc::not_found);
}

TEST(QmpJson, CapabilityStateMalformed) {
    for (std::string_view text :
         {"", "{}", "[1]", "[{\"capability\": \"x-ignore-shared\"}]",
          "[{\"capability\": \"x-ignore-shared\", \"state\": \"on\"}]", "[{"}) {
        auto r = capability_state(text, "x-ignore-shared");
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, Errc::invalid_input) << text;
    }
}

TEST(QmpJson, MigrationStatus) {
    EXPECT_EQ(migration_status("{}").value(), "none");
    EXPECT_EQ(
        migration_status(
            R"({"status": "setup", "socket-address": [{"path": "/tmp/q-probe-mig.sock", "type": "unix"}]})")
            .value(),
        "setup");
    EXPECT_EQ(migration_status(R"({"status": "completed"})").value(), "completed");
    auto failed =
        R"({"status": "failed", "error-desc": "load of migration failed: Input/output error"})";
    EXPECT_EQ(migration_status(failed).value(), "failed");
    EXPECT_EQ(migration_error(failed).value(), "load of migration failed: Input/output error");
    EXPECT_EQ(migration_error(R"({"status": "completed"})").value(), "");
}

TEST(QmpJson, MigrationStatusMalformed) {
    for (std::string_view text : {"", "[]", "{\"status\": 3}", "{\"status\": "}) {
        auto r = migration_status(text);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, Errc::invalid_input) << text;
    }
}

// Hostile peers: everything QEMU sends is bounded (issue 10, defect 7).

TEST(QmpClient, MessageLimitIsAnOption) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send_raw(R"({"return": ")" + std::string(8192, 'a')); // no newline
        p.wait_closed();
    });
    QmpOptions options;
    options.limits.max_message = 4096;
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s, options);
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_NO_FATAL_FAILURE(
        expect_qmp_error(client->execute("query-migrate", {}, 2s), "longer than 4096 bytes"));
}

TEST(QmpClient, RejectsACompleteLineOverTheLimit) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        p.request();
        p.send(R"({"return": ")" + std::string(8192, 'a') + "\"}");
        p.wait_closed();
    });
    QmpOptions options;
    options.limits.max_message = 4096;
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s, options);
    ASSERT_TRUE(client) << client.error().message();
    auto r = client->execute("query-migrate", {}, 2s);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().cause.find("longer than"), std::string::npos) << r.error().cause;
}

TEST(QmpClient, RejectsDeepNestingBeforeParsing) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        // Brackets inside a string do not count.
        p.send(
            R"({"event": "OK", "data": {"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[["}})");
        constexpr size_t depth = 100000;
        p.send(R"({"event": "DEEP", "data": )" + std::string(depth, '[') + std::string(depth, ']') +
               "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto ok = client->wait_event("OK", 2s);
    ASSERT_TRUE(ok) << ok.error().message();
    ASSERT_NO_FATAL_FAILURE(
        expect_qmp_error(client->wait_event("DEEP", 2s), "nested deeper than 64"));
}

TEST(QmpClient, AcceptsNestingUpToTheLimit) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        // The event object is level 1, its data levels 2 and up.
        p.send(R"({"event": "E", "data": )" + std::string(63, '[') + std::string(63, ']') + "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto e = client->wait_event("E", 2s);
    EXPECT_TRUE(e) << e.error().message();
}

TEST(QmpClient, TimestampsOutOfRangeBecomeZero) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        for (const char* ts :
             {R"({"seconds": 9223372036854775807, "microseconds": 999999})",
              R"({"seconds": 18446744073709551615, "microseconds": 1})",
              R"({"seconds": 9223372036854, "microseconds": 9223372036854775807})",
              R"({"seconds": -1, "microseconds": 5})", R"({"seconds": 5, "microseconds": -5})",
              R"({"seconds": 1.5, "microseconds": 5})",
              R"({"seconds": 1700000000, "microseconds": 250})"})
            p.send(std::string(R"({"event": "T", "data": {}, "timestamp": )") + ts + "}");
        p.wait_closed();
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    for (int i = 0; i < 6; ++i) {
        auto e = client->wait_event("T", 2s);
        ASSERT_TRUE(e) << e.error().message();
        EXPECT_EQ(e->at_us, 0) << "event " << i;
    }
    auto e = client->wait_event("T", 2s);
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(e->at_us, 1700000000000250);
}

TEST(QmpClient, QueuedEventsAreBounded) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        for (int i = 1; i <= 5; ++i)
            p.send(R"({"event": "E)" + std::to_string(i) + R"(", "data": {}})");
        p.send(R"({"event": "BIG", "data": {"x": ")" + std::string(3000, 'x') + "\"}}");
        p.send(R"({"return": {}, "id": )" + req.value("id", json()).dump() + "}");
        p.wait_closed();
    });
    QmpOptions options;
    options.limits.max_queued_events = 3;
    options.limits.max_queued_event_bytes = 2048;
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s, options);
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_TRUE(client->execute("query-status", {}, 2s));
    // Three events fit by count, but BIG alone exceeds the bytes: all dropped,
    // oldest first.
    for (const char* name : {"E1", "E2", "E3", "E4", "E5", "BIG"}) {
        auto e = client->wait_event(name, 0ms);
        EXPECT_FALSE(e) << name;
    }
}

TEST(QmpClient, QueueKeepsTheNewestEvents) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        json req = p.request();
        for (int i = 1; i <= 5; ++i)
            p.send(R"({"event": "E)" + std::to_string(i) + R"(", "data": {}})");
        p.send(R"({"return": {}, "id": )" + req.value("id", json()).dump() + "}");
        p.wait_closed();
    });
    QmpOptions options;
    options.limits.max_queued_events = 2;
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s, options);
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_TRUE(client->execute("query-status", {}, 2s));
    EXPECT_FALSE(client->wait_event("E3", 0ms));
    EXPECT_TRUE(client->wait_event("E4", 0ms));
    EXPECT_TRUE(client->wait_event("E5", 0ms));
}

TEST(QmpClient, AFloodDoesNotOutlastTheDeadline) {
    FakeQemu qemu([](Peer& p) {
        p.negotiate();
        std::string block;
        while (block.size() < 64 * 1024)
            block += R"({"event": "SPAM", "data": {}})"
                     "\n";
        // Until the client hangs up or 20 s pass.
        auto start = Clock::now();
        while (ms_since(start) < 20000 && p.send_raw(block)) {
        }
    });
    auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto start = Clock::now();
    auto e = client->wait_event("MIGRATION", 200ms);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, Errc::timeout);
    EXPECT_LT(ms_since(start), 2000);
}

TEST(QmpClient, ChecksThePeerBeforeAnythingIsSent) {
    std::size_t received = 1;
    QmpPeer seen;
    {
        FakeQemu qemu([&](Peer& p) {
            p.send(greeting);
            p.wait_closed();
            received = p.bytes_received();
        });
        QmpOptions options;
        options.check_peer = [&](const QmpPeer& peer) -> Result<void> {
            seen = peer;
            return fail(Errc::refused, "fake.sock", "refused the QMP peer", "test");
        };
        auto client = QmpClient::adopt(qemu.take_fd(), "fake.sock", 2s, options);
        ASSERT_FALSE(client);
        EXPECT_EQ(client.error().code, Errc::refused);
    }
    EXPECT_EQ(received, 0u) << "nothing is sent to a refused peer";
    // A socketpair's credentials are those of the process that made it.
    EXPECT_EQ(seen.pid, ::getpid());
    EXPECT_EQ(seen.uid, ::getuid());
}
