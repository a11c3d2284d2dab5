// keep_ram_on_exit against QMP replies as QEMU 10.0 gives them through libvirt's
// monitor passthrough (the "return" member), and what it does when QEMU will
// not switch.
#include "ram_discard.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>

namespace vmupdate {
namespace {

// `qom-list /objects` of a libvirt-started QEMU with two NUMA cells (trimmed).
constexpr const char* numa_objects =
    R"([{"name":"type","type":"string"},{"name":"ram-node0","type":"child<memory-backend-file>"},)"
    R"({"name":"ram-node1","type":"child<memory-backend-file>"},)"
    R"({"name":"rng0","type":"child<rng-random>"},{"name":"memdimm0","type":"child<memory-backend-memfd>"}])";

// A fake QEMU: discard-data per backend, and what it does wrong on request.
struct FakeQemu {
    std::map<std::string, bool> discard{
        {"/objects/ram-node0", true}, {"/objects/ram-node1", true}, {"/objects/memdimm0", false}};
    std::string objects = numa_objects;
    std::string refuse_set; ///< qom-set on this path is a QMP error
    std::string ignore_set; ///< qom-set on this path succeeds but changes nothing
    std::vector<std::string> log;

    QmpCall call() {
        return [this](std::string_view cmd, std::string_view args) -> Result<std::string> {
            auto a = nlohmann::json::parse(args.empty() ? "{}" : args);
            std::string path = a.value("path", "");
            log.push_back(std::string(cmd) + " " + path +
                          (a.contains("value") ? a["value"].dump() : std::string()));
            if (cmd == "qom-list")
                return objects;
            if (!discard.contains(path))
                return fail(Errc::qmp, "web1", "QMP " + std::string(cmd) + " failed",
                            "Device '" + path + "' not found");
            if (cmd == "qom-get")
                return discard.at(path) ? std::string("true") : std::string("false");
            if (cmd == "qom-set") {
                if (path == refuse_set)
                    return fail(Errc::qmp, "web1", "QMP qom-set failed",
                                "Property 'discard-data' can no longer be set");
                if (path != ignore_set)
                    discard.at(path) = a["value"].get<bool>();
                return std::string("{}");
            }
            return fail(Errc::qmp, "web1", "unexpected command");
        };
    }
};

TEST(RamDiscard, ListsOnlyMemoryBackends) {
    auto b = memory_backends(numa_objects);
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_EQ(*b, (std::vector<std::string>{"/objects/ram-node0", "/objects/ram-node1",
                                            "/objects/memdimm0"}));
    EXPECT_FALSE(memory_backends("{}"));
    EXPECT_TRUE(memory_backends("[]")->empty());
}

TEST(RamDiscard, SwitchesOffWhatDiscardsAndReadsItBack) {
    FakeQemu q;
    auto done = keep_ram_on_exit(q.call(), "web1");
    ASSERT_TRUE(done) << done.error().message();
    EXPECT_EQ(done->switched,
              (std::vector<std::string>{"/objects/ram-node0", "/objects/ram-node1"}));
    EXPECT_FALSE(q.discard["/objects/ram-node0"]);
    EXPECT_FALSE(q.discard["/objects/ram-node1"]);
    EXPECT_FALSE(q.discard["/objects/memdimm0"]);
    // The backend that did not discard is only read.
    EXPECT_EQ(std::count(q.log.begin(), q.log.end(), "qom-set /objects/memdimm0false"), 0);
    // Each switched one read back after its qom-set.
    auto set = std::find(q.log.begin(), q.log.end(), "qom-set /objects/ram-node1false");
    ASSERT_NE(set, q.log.end());
    EXPECT_EQ(*(set + 1), "qom-get /objects/ram-node1");
    // A QEMU without discard: nothing switched, nothing to undo.
    FakeQemu none;
    none.discard = {
        {"/objects/ram-node0", false}, {"/objects/ram-node1", false}, {"/objects/memdimm0", false}};
    auto nothing = keep_ram_on_exit(none.call(), "web1");
    ASSERT_TRUE(nothing);
    EXPECT_TRUE(nothing->switched.empty());
}

TEST(RamDiscard, AQmpErrorIsARefusalAndUndoesTheOthers) {
    FakeQemu q;
    q.refuse_set = "/objects/ram-node1";
    auto done = keep_ram_on_exit(q.call(), "web1");
    ASSERT_FALSE(done);
    EXPECT_EQ(done.error().code, Errc::refused);
    EXPECT_EQ(exit_code(done.error()), 2);
    EXPECT_NE(done.error().message().find("can no longer be set"), std::string::npos)
        << done.error().message();
    EXPECT_NE(done.error().message().find("still running"), std::string::npos);
    // ram-node0 was switched before: back on, as the guest found it.
    EXPECT_TRUE(q.discard["/objects/ram-node0"]);
    EXPECT_TRUE(q.discard["/objects/ram-node1"]);
}

TEST(RamDiscard, ASetThatDoesNotTakeIsARefusal) {
    FakeQemu q;
    q.ignore_set = "/objects/ram-node0";
    auto done = keep_ram_on_exit(q.call(), "web1");
    ASSERT_FALSE(done);
    EXPECT_EQ(done.error().code, Errc::refused);
    EXPECT_NE(done.error().message().find("still reports it on"), std::string::npos)
        << done.error().message();
    EXPECT_TRUE(q.discard["/objects/ram-node0"]);
    EXPECT_TRUE(q.discard["/objects/ram-node1"]);
}

TEST(RamDiscard, AnUnreadableListingOrValueIsARefusal) {
    FakeQemu q;
    q.objects = "\"no\"";
    auto done = keep_ram_on_exit(q.call(), "web1");
    ASSERT_FALSE(done);
    EXPECT_EQ(done.error().code, Errc::refused);
    // A backend QEMU lists but cannot read (a QMP error on qom-get).
    FakeQemu gone;
    gone.objects = R"([{"name":"pc.ram","type":"child<memory-backend-file>"}])";
    auto refused = keep_ram_on_exit(gone.call(), "web1");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::refused);
}

} // namespace
} // namespace vmupdate
