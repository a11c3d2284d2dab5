// The phase breakdown of a pause: moments from a domain log, and the phases
// between the moments of a save-and-restore timeline.
#include "domain_log.hpp"
#include "vmupdate/orchestrate.hpp"

#include <gtest/gtest.h>

using namespace vmupdate;

namespace {

// Lines as libvirt 11.3 and QEMU 10.0 wrote them for a domain saved and restored by
// vmupdate (command lines shortened).
constexpr std::string_view domain_log =
    "2026-11-22 04:56:24.888+0000: starting up libvirt version: 11.3.0, package: "
    "11.3.0-2~bpo12+1 (Debian), qemu version: 10.0.2Debian 1:10.0.2+ds-2+deb13u1~bpo12+1, "
    "kernel: 6.18.44-fc-v657, hostname: vm\n"
    "LC_ALL=C \\\n"
    "/usr/bin/qemu-system-x86_64 \\\n"
    "-msg timestamp=on\n"
    "2026-11-22 04:56:26.083+0000: Domain id=1 is tainted: custom-monitor\n"
    "2026-11-22 04:56:26.119+0000: shutting down, reason=saved\n"
    "2026-11-22T04:56:26.120341Z qemu-system-x86_64: terminating on signal 15 from pid 15653 "
    "(libvirtd)\n"
    "2026-11-22 04:56:26.431+0000: starting up libvirt version: 11.3.0, package: "
    "11.3.0-2~bpo12+1 (Debian)\n"
    "warning: fd: migration to a file is deprecated. Use file: instead.\n"
    "2026-11-22 04:56:26.869+0000: Domain id=2 is tainted: custom-monitor\n"
    "2026-11-22T04:56:27.088296Z qemu-system-x86_64: terminating on signal 15 from pid 15653 "
    "(libvirtd)\n"
    "2026-11-22 04:56:27.289+0000: shutting down, reason=destroyed";

// 2026-11-22 04:56:00 UTC in microseconds since the epoch.
constexpr std::int64_t minute = 1795323360LL * 1000000;

} // namespace

TEST(DomainLog, FindsLibvirtStartsAndQemuTerminations) {
    auto moments = domain_log_moments(domain_log);
    std::vector<TimePoint> expected{
        {"qemu-starting", minute + 24888000},
        {"qemu-terminating", minute + 26120341},
        {"qemu-starting", minute + 26431000},
        {"qemu-terminating", minute + 27088296},
    };
    EXPECT_EQ(moments, expected);
}

TEST(DomainLog, IgnoresLinesWithoutAStamp) {
    EXPECT_TRUE(domain_log_moments("").empty());
    EXPECT_TRUE(domain_log_moments("starting up libvirt version: 11.3.0\n").empty());
    EXPECT_TRUE(domain_log_moments("2026-11-22 04:56:26+0000: starting up x\n").empty());
    EXPECT_TRUE(domain_log_moments("2026-11-22 04:56:26.431-0500: starting up x\n").empty());
    EXPECT_TRUE(domain_log_moments("2026-11-22X04:56:26.431Z starting up\n").empty());
    // A partial first line, as a tail read leaves it.
    EXPECT_TRUE(
        domain_log_moments("6:26.120341Z qemu-system-x86_64: terminating on signal 15").empty());
}

TEST(DomainLog, FirstMomentNotBefore) {
    auto moments = domain_log_moments(domain_log);
    EXPECT_EQ(first_moment(moments, "qemu-terminating", minute + 26000000), minute + 26120341);
    EXPECT_EQ(first_moment(moments, "qemu-starting", minute + 26300000), minute + 26431000);
    EXPECT_EQ(first_moment(moments, "qemu-starting", minute + 26431000), minute + 26431000);
    EXPECT_FALSE(first_moment(moments, "qemu-starting", minute + 27000000));
    EXPECT_FALSE(first_moment(moments, "no-such-moment", 0));
}

TEST(PausePhases, AllMomentsKnown) {
    std::vector<TimePoint> timeline{
        {"suspended", 1000},        {"stopped", 1250},          {"saved", 1260},
        {"restore-begin", 1300},    {"migration-setup", 1900},  {"loaded", 1910},
        {"restore-command", 1280},  {"helper-connected", 1500}, {"resumed", 1925},
        {"qemu-terminating", 1040}, {"qemu-starting", 1350},
    };
    auto phases = pause_phases(timeline);
    std::vector<std::pair<std::string, std::int64_t>> got;
    for (const auto& p : phases)
        got.emplace_back(p.what, p.us);
    std::vector<std::pair<std::string, std::int64_t>> expected{
        {"device state saved to the image", 40},
        {"QEMU exit (libvirt's 200 ms kill poll), stop hooks", 210},
        {"vmupdate save checks", 10},
        {"between save and restore", 20},
        {"vmupdate restore checks, libvirt reads the image", 20},
        {"libvirt prepares the domain (hooks)", 50},
        {"QEMU launch and initialisation", 150},
        {"libvirt probes and sets up the new QEMU", 400},
        {"device state load", 10},
        {"started hook, resume", 15},
    };
    EXPECT_EQ(got, expected);
    std::int64_t sum = 0;
    for (const auto& p : phases)
        sum += p.us;
    EXPECT_EQ(sum, 925); // suspended to resumed, nothing lost or counted twice
}

TEST(PausePhases, MissingMomentsMergeTheirNeighbours) {
    std::vector<TimePoint> timeline{
        {"suspended", 1000},        {"stopped", 1250}, {"saved", 1260},   {"restore-begin", 1300},
        {"helper-connected", 1500}, {"loaded", 1910},  {"resumed", 1925},
    };
    auto phases = pause_phases(timeline);
    ASSERT_EQ(phases.size(), 6u);
    EXPECT_EQ(
        phases[0].what,
        "device state saved to the image + QEMU exit (libvirt's 200 ms kill poll), stop hooks");
    EXPECT_EQ(phases[0].us, 250);
    EXPECT_EQ(phases[2].what, "between save and restore + vmupdate restore checks, libvirt "
                              "reads the image");
    EXPECT_EQ(phases[2].us, 40);
    EXPECT_EQ(phases[3].what, "libvirt prepares the domain (hooks) + QEMU launch and "
                              "initialisation");
    EXPECT_EQ(phases[4].what, "libvirt probes and sets up the new QEMU + device state load");
    EXPECT_EQ(phases[4].us, 410);
}

TEST(PausePhases, ZeroMomentsAreUnknownAndTheLatestRecordCounts) {
    // A retried restore records its moments again; the last attempt is the one that resumed.
    std::vector<TimePoint> timeline{
        {"suspended", 1000},     {"stopped", 0},    {"restore-begin", 1300},
        {"restore-begin", 5000}, {"resumed", 5100},
    };
    auto phases = pause_phases(timeline);
    ASSERT_EQ(phases.size(), 2u);
    EXPECT_EQ(phases[0].us, 4000);
    EXPECT_EQ(phases[1].what, "libvirt prepares the domain (hooks) + QEMU launch and "
                              "initialisation + libvirt probes and sets up the new QEMU + "
                              "device state load + started hook, resume");
    EXPECT_EQ(phases[1].us, 100);
}
