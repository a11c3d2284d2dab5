#include "vmupdate/preservable.hpp"

#include <gtest/gtest.h>

namespace vmupdate {
namespace {

DomainInfo preservable_info() {
    DomainInfo info;
    info.name = "web1";
    info.managed = true;
    info.marked = true;
    info.shared_file_ram = true;
    return info;
}

TEST(Preservable, ManagedSharedWithoutDiscard) {
    auto info = preservable_info();
    EXPECT_EQ(preservability(info), Unpreservable::none);
    EXPECT_TRUE(ram_outlives_qemu(info));
    EXPECT_EQ(reason_text(Unpreservable::none, info), "");
}

TEST(Preservable, ReasonsInOrder) {
    auto info = preservable_info();
    info.discard = "<memoryBacking><discard/>";
    EXPECT_EQ(preservability(info), Unpreservable::discards);
    EXPECT_EQ(reason_text(preservability(info), info),
              "its running QEMU discards its RAM on exit (<memoryBacking><discard/>)");
    EXPECT_FALSE(ram_outlives_qemu(info));
    // Not in a shared file comes before a discard, not managed before both.
    info.shared_file_ram = false;
    EXPECT_EQ(preservability(info), Unpreservable::not_shared);
    info.managed = false;
    EXPECT_EQ(preservability(info), Unpreservable::not_managed);
    EXPECT_EQ(reason_text(Unpreservable::not_managed, info), "not managed by vmupdate");
}

TEST(Preservable, UnmanagedRamMayStillOutliveQemu) {
    // Nova's file-backed domains under manage = marked: shared RAM, no mark.
    auto info = preservable_info();
    info.managed = false;
    info.marked = false;
    EXPECT_EQ(preservability(info), Unpreservable::not_managed);
    EXPECT_TRUE(ram_outlives_qemu(info));
}

} // namespace
} // namespace vmupdate
