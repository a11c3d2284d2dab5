// Deterministic pause points for the fault tests (ctest label `fault`). Built in
// only with -DVMUPDATE_TEST_POINTS=ON; in other builds test_point() is empty and
// nothing in the environment or on disk can stop vmupdate. Private header.
// The points are listed once, in test_points.def.
#pragma once

#include <string_view>

namespace vmupdate {

/// Every test point's name, in the order of test_points.def.
inline constexpr std::string_view test_point_names[] = {
#define VMUPDATE_TEST_POINT(id, name, doc) name,
#include "test_points.def"
#undef VMUPDATE_TEST_POINT
};

/// Whether `name` is listed in test_points.def.
constexpr bool is_test_point(std::string_view name) {
    for (auto known : test_point_names)
        if (known == name)
            return true;
    return false;
}

namespace detail {
// Never defined and not constexpr: calling it in TestPoint's consteval
// constructor turns an unknown name into a compile error that names the list.
void unknown_test_point_add_it_to_test_points_def();
} // namespace detail

/// The name of a test point, checked against test_points.def at compile time
/// (`test_point("save:locked")` compiles; a misspelt or unlisted name does not).
class TestPoint {
public:
    /// Only from a constant: a string literal at the call site.
    consteval TestPoint(const char* name) : name_(name) { // NOLINT: implicit on purpose
        if (!is_test_point(name_))
            detail::unknown_test_point_add_it_to_test_points_def();
    }

    /// The point's name as listed.
    [[nodiscard]] constexpr std::string_view name() const { return name_; }

private:
    std::string_view name_;
};

/// Test builds: when the environment variable VMUPDATE_TEST_POINT names `point`,
/// prints "vmupdate: test point NAME" on stderr and stops the process with
/// SIGSTOP, so that a test can deliver any signal at exactly this step (then
/// SIGCONT); otherwise, for processes libvirt starts (the restore helper gets no
/// environment of the test's), holds it as test_point_file() does under
/// Paths{}.run_dir. Other builds: does nothing.
void test_point(TestPoint point);

/// Test builds: when `name` is listed in test_points.def and the file
/// <run_dir>/test-points/<name> exists (root's directory), creates
/// <name>.reached beside it and waits up to 120 s for the test to remove <name>;
/// used where libvirt, not the test, starts the process (the hook, whose names
/// are made at run time: unlisted ones are never held). Other builds: does nothing.
void test_point_file(std::string_view run_dir, std::string_view name);

/// Whether this build has test points (for a test to skip otherwise).
[[nodiscard]] bool test_points_built();

} // namespace vmupdate
