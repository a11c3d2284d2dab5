// /etc/vmupdate/vmupdate.conf and the `manage` policy it selects.
#include "temp_dir.hpp"
#include "vmupdate/config.hpp"
#include "vmupdate/domain_xml.hpp"

#include <fstream>
#include <gtest/gtest.h>

using namespace vmupdate;
using vmupdate::testing::TempDir;

namespace {

// A domain as OpenStack Nova writes it with [libvirt] file_backed_memory: shared
// file RAM, no vmupdate mark; `extra` goes into <memoryBacking>.
std::string nova_like(const std::string& extra = "", const std::string& memory_backing_more = "") {
    return R"(<domain type='kvm'>
  <name>instance-00000001</name>
  <uuid>a2cbc2b5-8d4d-4d8b-9a4b-7c1f1e0f3f11</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>vm1</nova:name>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>131072</memory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
)" + extra +
           memory_backing_more +
           R"(  </memoryBacking>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-10.0'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>
)";
}

} // namespace

TEST(Config, DefaultsToMarked) {
    auto c = parse_config("", "t.conf");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->manage, ManagePolicy::marked);
}

TEST(Config, ReadsManageWithCommentsAndSpaces) {
    auto c = parse_config("# vmupdate\n\n  manage =  file-backed   # for Nova\n", "t.conf");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->manage, ManagePolicy::file_backed);
    c = parse_config("manage=marked\r\n", "t.conf");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->manage, ManagePolicy::marked);
}

TEST(Config, RefusesUnknownKeysAndValuesNamingTheLine) {
    auto c =
        parse_config("manage = marked\nmanaged = file-backed\n", "/etc/vmupdate/vmupdate.conf");
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, Errc::invalid_input);
    EXPECT_EQ(c.error().object, "/etc/vmupdate/vmupdate.conf:2");
    c = parse_config("manage = everything\n", "t.conf");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find("expected marked or file-backed"), std::string::npos);
    c = parse_config("manage\n", "t.conf");
    ASSERT_FALSE(c);
}

TEST(Config, MissingFileGivesDefaultsAndAFileIsRead) {
    TempDir dir;
    auto c = load_config(dir.path() + "/none.conf");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->manage, ManagePolicy::marked);
    std::ofstream(dir.path() + "/vmupdate.conf") << "manage = file-backed\n";
    c = load_config(dir.path() + "/vmupdate.conf");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->manage, ManagePolicy::file_backed);
}

TEST(ManagePolicy, FileBackedTakesUnmarkedSharedFileDomains) {
    auto marked_only = inspect_domain(nova_like(), "t", ManagePolicy::marked);
    ASSERT_TRUE(marked_only);
    EXPECT_FALSE(marked_only->managed);
    EXPECT_FALSE(marked_only->marked);
    auto file_backed = inspect_domain(nova_like(), "t", ManagePolicy::file_backed);
    ASSERT_TRUE(file_backed);
    EXPECT_TRUE(file_backed->managed);
    EXPECT_FALSE(file_backed->marked);
    EXPECT_EQ(why_unmanaged(nova_like(), *file_backed, ManagePolicy::file_backed), "");
    EXPECT_NE(why_unmanaged(nova_like(), *marked_only, ManagePolicy::marked)
                  .find("not marked for vmupdate (manage = marked)"),
              std::string::npos);
}

// The save switches discard-data off in the running QEMU: discard is no reason.
TEST(ManagePolicy, FileBackedTakesDiscardingDomains) {
    std::string xml = nova_like("    <discard/>\n");
    auto info = inspect_domain(xml, "t", ManagePolicy::file_backed);
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->managed);
    EXPECT_EQ(info->discard, "<memoryBacking><discard/>");
    EXPECT_EQ(why_unmanaged(xml, *info, ManagePolicy::file_backed), "");
    // Under marked it needs the mark only, whatever prepare would also remove.
    auto marked = inspect_domain(xml, "t", ManagePolicy::marked);
    ASSERT_TRUE(marked);
    EXPECT_FALSE(marked->managed);
    std::string why = why_unmanaged(xml, *marked, ManagePolicy::marked);
    EXPECT_NE(why.find("not marked for vmupdate"), std::string::npos) << why;
}

TEST(ManagePolicy, FileBackedRefusesWhatPrepareRefuses) {
    std::string xml = nova_like("", "    <hugepages/>\n");
    auto info = inspect_domain(xml, "t", ManagePolicy::file_backed);
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->managed);
    EXPECT_NE(why_unmanaged(xml, *info, ManagePolicy::file_backed).find("cannot be preserved"),
              std::string::npos);
}

TEST(ManagePolicy, FileBackedDoesNotTakeAnonymousOrPrivateRam) {
    std::string anonymous = R"(<domain type='kvm'><name>a</name>
  <uuid>a2cbc2b5-8d4d-4d8b-9a4b-7c1f1e0f3f12</uuid><memory>131072</memory>
  <os><type arch='x86_64'>hvm</type></os></domain>)";
    auto info = inspect_domain(anonymous, "t", ManagePolicy::file_backed);
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->managed);
    std::string priv = nova_like();
    priv.replace(priv.find("mode='shared'"), 13, "mode='private'");
    info = inspect_domain(priv, "t", ManagePolicy::file_backed);
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->managed);
    EXPECT_NE(why_unmanaged(priv, *info, ManagePolicy::file_backed).find("needs: RAM access"),
              std::string::npos);
}
