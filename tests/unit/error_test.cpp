#include "vmupdate/error.hpp"

#include <cerrno>
#include <gtest/gtest.h>

using namespace vmupdate;

TEST(Error, MessageJoinsNonEmptyParts) {
    EXPECT_EQ(fail_errno(EEXIST, "web1", "cannot link RAM file /x/pc.ram").error().message(),
              "web1: cannot link RAM file /x/pc.ram: File exists");
    EXPECT_EQ((Error{Errc::refused, "", "step", ""}.message()), "step");
}

TEST(Error, ExitCodes) {
    EXPECT_EQ(exit_code(Error{Errc::refused, "", "", ""}), 2);
    EXPECT_EQ(exit_code(Error{Errc::invalid_input, "", "", ""}), 2);
    EXPECT_EQ(exit_code(Error{Errc::libvirt, "", "", ""}), 1);
    EXPECT_EQ(exit_code(Error{Errc::system, "", "", ""}), 1);
    // Something changed: never 2.
    EXPECT_EQ(exit_code(Error{Errc::ram_held, "", "", ""}), 1);
    EXPECT_EQ(exit_code(Error{Errc::ram_lost, "", "", ""}), 1);
}
