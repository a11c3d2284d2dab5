// Deterministic pause points for the fault tests (ctest label `fault`). Built in
// only with -DVMUPDATE_TEST_POINTS=ON; in other builds test_point() is empty and
// nothing in the environment or on disk can stop vmupdate. Private header.
#pragma once

#include <string_view>

namespace vmupdate {

/// Test builds: when the environment variable VMUPDATE_TEST_POINT names `name`,
/// prints "vmupdate: test point NAME" on stderr and stops the process with
/// SIGSTOP, so that a test can deliver any signal at exactly this step (then
/// SIGCONT). Other builds: does nothing.
void test_point(std::string_view name);

/// Test builds: when the file <run_dir>/test-points/<name> exists (root's
/// directory), creates <name>.reached beside it and waits up to 120 s for the
/// test to remove <name>; used where libvirt, not the test, starts the process
/// (the hook). Other builds: does nothing.
void test_point_file(std::string_view run_dir, std::string_view name);

/// Whether this build has test points (for a test to skip otherwise).
[[nodiscard]] bool test_points_built();

} // namespace vmupdate
