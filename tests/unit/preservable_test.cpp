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

TEST(Preservable, DiscardIsNoReason) {
    // The save switches discard-data off in the running QEMU; the restoring one
    // starts without it.
    auto info = preservable_info();
    info.discard = "<memoryBacking><discard/>";
    EXPECT_EQ(preservability(info), Unpreservable::none);
    EXPECT_TRUE(ram_outlives_qemu(info));
}

TEST(Preservable, ReasonsInOrder) {
    auto info = preservable_info();
    // Not managed comes before not in a shared file.
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
