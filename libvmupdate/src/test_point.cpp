#include "test_point.hpp"

#ifdef VMUPDATE_TEST_POINTS
#include "fd.hpp"
#include "vmupdate/paths.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <thread>
#endif

namespace vmupdate {

#ifdef VMUPDATE_TEST_POINTS

void test_point(TestPoint point) {
    std::string_view name = point.name();
    const char* wanted = std::getenv("VMUPDATE_TEST_POINT");
    if (wanted == nullptr || name != wanted) {
        // libvirt starts the hook, and the hook the restore helper, with an
        // environment of libvirt's: for them the test arms the point by a file.
        test_point_file(Paths{}.run_dir, name);
        return;
    }
    // The line tells the test that the process has reached the point; the stop
    // keeps it there until the test has delivered its signal.
    std::fprintf(stderr, "vmupdate: test point %.*s\n", static_cast<int>(name.size()), name.data());
    std::fflush(stderr);
    std::raise(SIGSTOP);
}

void test_point_file(std::string_view run_dir, std::string_view name) {
    using namespace std::chrono_literals;
    if (!is_test_point(name))
        return;
    std::string trigger = std::string(run_dir) + "/test-points/" + std::string(name);
    struct stat st {};
    if (lstat(trigger.c_str(), &st) != 0)
        return;
    std::string reached = trigger + ".reached";
    Fd(::open(reached.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    // Bounded: a test that dies must not leave libvirt's hook hanging for good.
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (lstat(trigger.c_str(), &st) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
}

bool test_points_built() {
    return true;
}

#else

void test_point(TestPoint) {}

void test_point_file(std::string_view, std::string_view) {}

bool test_points_built() {
    return false;
}

#endif

} // namespace vmupdate
