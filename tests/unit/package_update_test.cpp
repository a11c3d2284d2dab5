// Reading apt-get's simulation for `vmupdate host-update --packages`.
#include "package_plan.hpp"
#include "process.hpp"
#include "vmupdate/package_update.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vmupdate;
using namespace std::chrono_literals;

// `apt-get install --simulate -y ./qemu-system-x86_...deb ./qemu-system-common_...deb`
// on Debian 12 + bookworm-backports, and a libvirt upgrade from the archive.
constexpr std::string_view simulation = R"(NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
The following packages will be upgraded:
  qemu-system-common qemu-system-x86
2 upgraded, 0 newly installed, 0 to remove and 117 not upgraded.
Inst qemu-system-x86 [1:10.0.2+ds-2+deb13u1~bpo12+1] (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64]) []
Inst qemu-system-common [1:10.0.2+ds-2+deb13u1~bpo12+1] (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
Inst libvirt0 [11.3.0-2~bpo12+1] (11.3.0-3~bpo12+1 Debian Backports:bookworm-backports [amd64])
Inst libslirp0 (4.7.0-1 Debian:12.12/stable [amd64])
Conf qemu-system-x86 (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
Conf qemu-system-common (1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1 local-deb [amd64])
)";

TEST(PackageUpdate, ReadsEveryInstLine) {
    auto c = parse_apt_simulation(simulation);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_EQ(c[0].name, "qemu-system-x86");
    EXPECT_EQ(c[0].from, "1:10.0.2+ds-2+deb13u1~bpo12+1");
    EXPECT_EQ(c[0].to, "1:10.0.2+ds-2+deb13u1~bpo12+1+vmutest1");
    EXPECT_EQ(c[2].name, "libvirt0");
    EXPECT_EQ(c[2].to, "11.3.0-3~bpo12+1");
    EXPECT_EQ(c[3].name, "libslirp0");
    EXPECT_EQ(c[3].from, "");
    EXPECT_EQ(c[3].to, "4.7.0-1");
}

TEST(PackageUpdate, NothingToDoAndGarbageGiveNoChanges) {
    EXPECT_TRUE(parse_apt_simulation("0 upgraded, 0 newly installed, 0 to remove\n").empty());
    EXPECT_TRUE(parse_apt_simulation("Inst\nInst x [1\nInst y\n").empty());
    EXPECT_TRUE(parse_apt_simulation("").empty());
}

TEST(PackageUpdate, KnowsWhichPackagesNeedALibvirtRestart) {
    for (auto p : {"libvirt0", "libvirt-daemon", "libvirt-daemon-system",
                   "libvirt-daemon-driver-qemu", "libvirt0:amd64"})
        EXPECT_TRUE(is_libvirt_package(p)) << p;
    for (auto p : {"qemu-system-x86", "qemu-system-common", "libvirt-dev", "python3-libvirt"})
        EXPECT_FALSE(is_libvirt_package(p)) << p;
}

// `apt-get -s install sysvinit-core` on Debian 12 with libvirt 11.3 (bookworm-backports):
// the actions only. It removes 21 packages, 10 of them libvirt's.
constexpr std::string_view sysvinit_core =
    R"(0 upgraded, 15 newly installed, 21 to remove and 124 not upgraded.
Remv at-spi2-core [2.46.0-5]
Remv gsettings-desktop-schemas [43.0-1]
Remv dconf-gsettings-backend [0.40.0-4]
Remv dconf-service [0.40.0-4]
Remv dbus-user-session [1.14.10-1~deb12u1]
Remv software-properties-common [0.99.30-4.1~deb12u1]
Remv packagekit-tools [1.2.6-5+deb12u1]
Remv packagekit [1.2.6-5+deb12u1]
Remv libvirt-daemon-system [11.3.0-2~bpo12+1]
Remv polkitd [122-3] [libvirt-daemon-common:amd64 ]
Remv libpam-systemd [254.26-1~bpo12+1] [libvirt-daemon-common:amd64 ]
Remv libvirt-daemon-driver-storage [11.3.0-2~bpo12+1] [libvirt-daemon-common:amd64 ]
Remv libvirt-daemon [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nodedev:amd64 libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-common:amd64 libvirt-daemon-driver-secret:amd64 libvirt-daemon-driver-network:amd64 ]
Remv libvirt-daemon-common [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nodedev:amd64 libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-driver-secret:amd64 libvirt-daemon-driver-network:amd64 ]
Remv libvirt-daemon-config-network [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nodedev:amd64 libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-driver-secret:amd64 libvirt-daemon-driver-network:amd64 ]
Remv libvirt-daemon-config-nwfilter [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nodedev:amd64 libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-driver-secret:amd64 libvirt-daemon-driver-network:amd64 ]
Remv libvirt-daemon-driver-network [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nodedev:amd64 libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-driver-secret:amd64 ]
Remv libvirt-daemon-driver-nodedev [11.3.0-2~bpo12+1] [libvirt-daemon-driver-nwfilter:amd64 libvirt-daemon-driver-secret:amd64 ]
Remv libvirt-daemon-driver-nwfilter [11.3.0-2~bpo12+1] [libvirt-daemon-driver-secret:amd64 ]
Remv libvirt-daemon-driver-secret [11.3.0-2~bpo12+1]
Inst cron-daemon-common (3.0pl1-162 Debian:12.15/oldstable [all])
Conf cron-daemon-common (3.0pl1-162 Debian:12.15/oldstable [all])
Inst cron (3.0pl1-162 Debian:12.15/oldstable [amd64])
Remv systemd-sysv [254.26-1~bpo12+1]
Inst liblockfile-bin (1.17-1+b1 Debian:12.15/oldstable [amd64])
Inst exim4-config (4.96-15+deb12u11 Debian-Security:12/oldstable-security [all])
Inst exim4-base (4.96-15+deb12u11 Debian-Security:12/oldstable-security [amd64])
Inst libidn12 (1.41-1 Debian:12.15/oldstable [amd64])
Inst exim4-daemon-light (4.96-15+deb12u11 Debian-Security:12/oldstable-security [amd64])
Inst liblockfile1 (1.17-1+b1 Debian:12.15/oldstable [amd64])
Inst bsd-mailx (8.1.2-0.20220412cvs-1 Debian:12.15/oldstable [amd64])
Inst insserv (1.24.0-1 Debian:12.15/oldstable [amd64])
Inst startpar (0.65-1+b1 Debian:12.15/oldstable [amd64])
Inst sysv-rc (3.06-4 Debian:12.15/oldstable [all])
Inst initscripts (3.06-4 Debian:12.15/oldstable [all])
Inst orphan-sysvinit-scripts (0.14 Debian:12.15/oldstable [all])
Inst sysvinit-core (3.06-4 Debian:12.15/oldstable [amd64])
Conf cron (3.0pl1-162 Debian:12.15/oldstable [amd64])
Conf liblockfile-bin (1.17-1+b1 Debian:12.15/oldstable [amd64])
Conf exim4-config (4.96-15+deb12u11 Debian-Security:12/oldstable-security [all])
Conf exim4-base (4.96-15+deb12u11 Debian-Security:12/oldstable-security [amd64])
Conf libidn12 (1.41-1 Debian:12.15/oldstable [amd64])
Conf exim4-daemon-light (4.96-15+deb12u11 Debian-Security:12/oldstable-security [amd64])
Conf liblockfile1 (1.17-1+b1 Debian:12.15/oldstable [amd64])
Conf bsd-mailx (8.1.2-0.20220412cvs-1 Debian:12.15/oldstable [amd64])
Conf insserv (1.24.0-1 Debian:12.15/oldstable [amd64])
Conf startpar (0.65-1+b1 Debian:12.15/oldstable [amd64])
Conf sysv-rc (3.06-4 Debian:12.15/oldstable [all])
Conf initscripts (3.06-4 Debian:12.15/oldstable [all])
Conf orphan-sysvinit-scripts (0.14 Debian:12.15/oldstable [all])
Conf sysvinit-core (3.06-4 Debian:12.15/oldstable [amd64])
)";

// `apt-get -s purge libvirt-daemon-system`, the actions only.
constexpr std::string_view purge_libvirt =
    R"(0 upgraded, 0 newly installed, 1 to remove and 124 not upgraded.
Purg libvirt-daemon-system [11.3.0-2~bpo12+1]
)";

namespace {

std::size_t count(const std::vector<PackageChange>& changes, ChangeKind kind) {
    return static_cast<std::size_t>(std::count_if(changes.begin(), changes.end(),
                                                  [&](const auto& c) { return c.kind == kind; }));
}

const PackageChange* find(const std::vector<PackageChange>& changes, std::string_view name) {
    auto it =
        std::find_if(changes.begin(), changes.end(), [&](const auto& c) { return c.name == name; });
    return it == changes.end() ? nullptr : &*it;
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST(PackageUpdate, TellsUpgradesFromInstalls) {
    auto c = parse_apt_simulation(simulation);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_EQ(c[0].kind, ChangeKind::upgrade);
    EXPECT_EQ(c[2].kind, ChangeKind::upgrade);
    EXPECT_EQ(c[3].kind, ChangeKind::install);
}

TEST(PackageUpdate, ReadsRemovals) {
    auto c = parse_apt_simulation(sysvinit_core);
    EXPECT_EQ(count(c, ChangeKind::install), 15u);
    EXPECT_EQ(count(c, ChangeKind::remove), 21u);
    EXPECT_EQ(count(c, ChangeKind::upgrade), 0u);
    EXPECT_EQ(count(c, ChangeKind::configure), 0u) << "the Conf of an Inst is no change of its own";
    EXPECT_EQ(c.size(), 36u);
    auto* daemon = find(c, "libvirt-daemon");
    ASSERT_TRUE(daemon);
    EXPECT_EQ(daemon->kind, ChangeKind::remove);
    EXPECT_EQ(daemon->from, "11.3.0-2~bpo12+1");
    EXPECT_EQ(daemon->to, "");
    auto* polkitd = find(c, "polkitd"); // "Remv polkitd [122-3] [libvirt-daemon-common:amd64 ]"
    ASSERT_TRUE(polkitd);
    EXPECT_EQ(polkitd->from, "122-3");
    EXPECT_EQ(std::count_if(c.begin(), c.end(),
                            [](const auto& x) {
                                return x.kind == ChangeKind::remove &&
                                       x.name.starts_with("libvirt");
                            }),
              10);
}

TEST(PackageUpdate, ReadsPurgesAndLoneConfigures) {
    auto c = parse_apt_simulation(purge_libvirt);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].kind, ChangeKind::purge);
    EXPECT_EQ(c[0].name, "libvirt-daemon-system");
    EXPECT_EQ(c[0].from, "11.3.0-2~bpo12+1");
    c = parse_apt_simulation("Remv foo [1.0]\nPurg foo [1.0]\n"
                             "Conf bar (2.0 Debian:12.15/oldstable [amd64])\n");
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].kind, ChangeKind::purge);
    EXPECT_EQ(c[1].kind, ChangeKind::configure);
    EXPECT_EQ(c[1].to, "2.0");
    EXPECT_TRUE(parse_apt_simulation("Remv\nPurg\nConf x\nRemv y (1.0)\n").empty());
}

TEST(PackageUpdate, KnowsWhatIsNeverRemoved) {
    for (auto p : {"libvirt0", "libvirt-daemon-system", "libvirt-clients", "libvirt-dev",
                   "qemu-system-x86", "qemu-utils", "qemu", "vmupdate", "libvirt0:amd64"})
        EXPECT_TRUE(is_protected_package(p)) << p;
    for (auto p : {"polkitd", "python3-libvirt", "systemd-sysv", "qemubox", "libqemu"})
        EXPECT_FALSE(is_protected_package(p)) << p;
}

TEST(PackageUpdate, RefusesToRemoveLibvirtEvenWhenRemovalsAreAllowed) {
    PackageUpdatePlan plan;
    plan.changes = parse_apt_simulation(sysvinit_core);
    review_removals(plan, true);
    ASSERT_EQ(plan.offenders.size(), 1u);
    const auto& o = plan.offenders[0];
    EXPECT_TRUE(contains(o, "libvirt-daemon-system")) << o;
    EXPECT_TRUE(contains(o, "libvirt-daemon-common")) << o;
    EXPECT_FALSE(contains(o, "polkitd")) << o;
    EXPECT_TRUE(contains(o, "never removes libvirt, QEMU or itself")) << o;

    plan.offenders.clear();
    plan.changes = parse_apt_simulation(purge_libvirt);
    review_removals(plan, true);
    ASSERT_EQ(plan.offenders.size(), 1u);
    EXPECT_TRUE(contains(plan.offenders[0], "libvirt-daemon-system")) << plan.offenders[0];
}

TEST(PackageUpdate, OtherRemovalsNeedAllowRemovals) {
    PackageUpdatePlan plan;
    plan.changes = parse_apt_simulation(sysvinit_core);
    review_removals(plan, false);
    ASSERT_EQ(plan.offenders.size(), 2u);
    EXPECT_TRUE(contains(plan.offenders[1], "polkitd")) << plan.offenders[1];
    EXPECT_TRUE(contains(plan.offenders[1], "systemd-sysv")) << plan.offenders[1];
    EXPECT_TRUE(contains(plan.offenders[1], "--allow-removals")) << plan.offenders[1];
    EXPECT_FALSE(contains(plan.offenders[1], "libvirt")) << plan.offenders[1];

    plan = {};
    plan.changes = parse_apt_simulation("Remv systemd-sysv [254.26-1~bpo12+1]\n");
    review_removals(plan, true);
    EXPECT_TRUE(plan.offenders.empty());
    plan.changes = parse_apt_simulation(simulation);
    review_removals(plan, false);
    EXPECT_TRUE(plan.offenders.empty()) << "installs and upgrades need no option";
}

namespace {

// A stand-in for run_process: records each command, answers apt-get's simulation.
struct FakeApt {
    std::string simulation;
    std::vector<std::vector<std::string>> ran;

    Result<ProcessResult> operator()(const std::vector<std::string>& argv,
                                     std::chrono::milliseconds) {
        ran.push_back(argv);
        bool simulate = std::find(argv.begin(), argv.end(), "--simulate") != argv.end();
        return ProcessResult{0, simulate ? simulation : "", ""};
    }

    bool downloaded() const {
        return std::any_of(ran.begin(), ran.end(), [](const auto& argv) {
            return std::find(argv.begin(), argv.end(), "--download-only") != argv.end();
        });
    }
};

// A QEMU upgrade: no libvirt package, so no systemd question.
constexpr std::string_view qemu_upgrade =
    "Inst qemu-system-x86 [1:10.0.2+ds-2] (1:10.0.2+ds-3 Debian:12/stable [amd64])\n"
    "Conf qemu-system-x86 (1:10.0.2+ds-3 Debian:12/stable [amd64])\n";

} // namespace

TEST(PackageUpdate, DryRunSimulatesOnlyAndDownloadsNothing) {
    FakeApt apt{std::string(qemu_upgrade), {}};
    PackageUpdatePlan plan;
    plan.packages = {"qemu-system-x86"};
    auto ok =
        simulate_and_download(plan, {.allow_removals = false, .download = false}, std::ref(apt));
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE(plan.offenders.empty());
    ASSERT_EQ(plan.changes.size(), 1u);
    EXPECT_FALSE(apt.downloaded());
    EXPECT_FALSE(plan.downloaded);
    ASSERT_EQ(apt.ran.size(), 1u);

    FakeApt real{std::string(qemu_upgrade), {}};
    ok = simulate_and_download(plan, {}, std::ref(real));
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE(real.downloaded());
    EXPECT_TRUE(plan.downloaded);
}

TEST(PackageUpdate, ARefusedRemovalDownloadsNothing) {
    FakeApt apt{std::string(sysvinit_core), {}};
    PackageUpdatePlan plan;
    plan.packages = {"sysvinit-core"};
    auto ok =
        simulate_and_download(plan, {.allow_removals = true, .download = true}, std::ref(apt));
    ASSERT_TRUE(ok) << ok.error().message();
    ASSERT_FALSE(plan.offenders.empty());
    EXPECT_TRUE(contains(plan.offenders[0], "libvirt-daemon-system")) << plan.offenders[0];
    EXPECT_FALSE(apt.downloaded());
    EXPECT_FALSE(plan.downloaded);
}

// vmupdate killed mid-install: apt-get and dpkg write on, into a file that
// outlives it; on a pipe, their next write would raise SIGPIPE and cut dpkg off.
TEST(PackageUpdate, TheInstallOutlivesVmupdate) {
    char tmpl[] = "/tmp/vmupdate-install-XXXXXX";
    ASSERT_TRUE(::mkdtemp(tmpl));
    const std::string dir = tmpl, log = dir + "/packages.log", marker = dir + "/done";
    // Writes far more than a pipe holds, after its parent is gone, then leaves the marker.
    const std::string script = "sleep 1; i=0; while [ $i -lt 5000 ]; do "
                               "echo 'Unpacking qemu-system-x86 ...............................'; "
                               "i=$((i+1)); done; echo 'E: the last line' >&2; touch " +
                               marker;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) { // vmupdate, running the install
        (void)run_process_logged({"setsid", "--wait", "sh", "-c", script}, 60s, log);
        ::_exit(0);
    }
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    for (int i = 0; i < 200 && !std::filesystem::exists(marker); ++i)
        std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(std::filesystem::exists(marker)) << "the install was cut off";
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_TRUE(contains(text.str(), "E: the last line"));
    std::filesystem::remove_all(dir);
}

TEST(PackageUpdate, TheInstallLogIsReadBack) {
    char tmpl[] = "/tmp/vmupdate-install-XXXXXX";
    ASSERT_TRUE(::mkdtemp(tmpl));
    const std::string log = std::string(tmpl) + "/packages.log";
    std::ofstream(log) << "an earlier run\n";
    auto r = run_process_logged({"sh", "-c", "echo out; echo 'E: failed' >&2; exit 3"}, 10s, log);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->exit_code, 3);
    EXPECT_EQ(r->out, "out\nE: failed\n") << "only this run's output";
    std::filesystem::remove_all(tmpl);
}
