// The translation rules of `vmupdate translate`, one test (or more) per rule.
#include "vmupdate/domain_xml.hpp"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <string>

using namespace vmupdate;

namespace {

// A small domain; `memory_extra` goes after <currentMemory>, `devices` inside
// <devices>, `cpu` after <os>.
std::string domain(const std::string& memory_extra = "", const std::string& devices = "",
                   const std::string& cpu = "", const std::string& type = "kvm") {
    return "<domain type='" + type + R"('>
  <name>web1</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='KiB'>219136</memory>
  <currentMemory unit='KiB'>219136</currentMemory>
)" + memory_extra +
           R"(  <vcpu placement='static'>4</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
)" + cpu + R"(  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
)" + devices +
           R"(  </devices>
</domain>
)";
}

std::string translate_ok(const std::string& xml) {
    auto t = translate_domain(xml, "test.xml");
    EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message());
    return t ? t->xml : std::string();
}

Error translate_err(const std::string& xml) {
    auto t = translate_domain(xml, "test.xml");
    EXPECT_FALSE(t.has_value()) << "unexpectedly translated:\n" << (t ? t->xml : "");
    return t ? Error{} : t.error();
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace

TEST(Translate, AddsFileBackedSharedMemory) {
    std::string out = translate_ok(domain());
    EXPECT_TRUE(contains(out, "  <memoryBacking>\n    <source type='file'/>\n    <access "
                              "mode='shared'/>\n  </memoryBacking>\n"))
        << out;
    // Placed after the memory size elements, where libvirt puts it.
    EXPECT_LT(out.find("<currentMemory"), out.find("<memoryBacking>"));
}

TEST(Translate, MemfdSourceBecomesFile) {
    std::string out = translate_ok(domain("  <memoryBacking>\n    <source type='memfd'/>\n    "
                                          "<access mode='shared'/>\n  </memoryBacking>\n"));
    EXPECT_TRUE(contains(out, "<source type='file'/>")) << out;
    EXPECT_FALSE(contains(out, "memfd"));
}

TEST(Translate, AnonymousSourceBecomesFile) {
    std::string out = translate_ok(
        domain("  <memoryBacking>\n    <source type='anonymous'/>\n  </memoryBacking>\n"));
    EXPECT_TRUE(contains(out, "<source type='file'/>")) << out;
    EXPECT_TRUE(contains(out, "<access mode='shared'/>")) << out;
}

TEST(Translate, PrivateAccessBecomesShared) {
    std::string out = translate_ok(domain("  <memoryBacking>\n    <source type='file'/>\n    "
                                          "<access mode='private'/>\n  </memoryBacking>\n"));
    EXPECT_TRUE(contains(out, "<access mode='shared'/>")) << out;
    EXPECT_FALSE(contains(out, "private"));
}

TEST(Translate, DiscardIsRemoved) {
    std::string out =
        translate_ok(domain("  <memoryBacking>\n    <discard/>\n  </memoryBacking>\n"));
    EXPECT_FALSE(contains(out, "discard")) << out;
    EXPECT_TRUE(contains(out, "<source type='file'/>"));
}

TEST(Translate, KeepsOtherMemoryBackingSettings) {
    std::string out = translate_ok(domain("  <memoryBacking>\n    <locked/>\n    <allocation "
                                          "mode='immediate'/>\n  </memoryBacking>\n"));
    EXPECT_TRUE(contains(out, "<locked/>"));
    EXPECT_TRUE(contains(out, "<allocation mode='immediate'/>"));
}

TEST(Translate, NumaCellsBecomeSharedAndLoseDiscard) {
    std::string cpu = R"(  <cpu>
    <numa>
      <cell id='0' cpus='0-1' memory='109568' unit='KiB' discard='yes'/>
      <cell id='1' cpus='2-3' memory='109568' unit='KiB' memAccess='private' discard='no'/>
    </numa>
  </cpu>
)";
    std::string out = translate_ok(domain("", "", cpu));
    EXPECT_TRUE(
        contains(out, "<cell id='0' cpus='0-1' memory='109568' unit='KiB' memAccess='shared'/>"))
        << out;
    EXPECT_TRUE(contains(
        out,
        "<cell id='1' cpus='2-3' memory='109568' unit='KiB' memAccess='shared' discard='no'/>"))
        << out;
}

TEST(Translate, RefusesHugepages) {
    Error e = translate_err(domain("  <memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n"));
    EXPECT_EQ(e.code, Errc::refused);
    EXPECT_EQ(e.object, "web1");
    EXPECT_TRUE(contains(e.step, "<hugepages>")) << e.message();
    EXPECT_TRUE(contains(e.cause, "hugepages cannot be preserved")) << e.message();
    EXPECT_TRUE(contains(e.cause, "unlinks")) << e.message();
}

TEST(Translate, RefusesHugepageBackedDimm) {
    std::string dimm = R"(    <memory model='dimm'>
      <source>
        <pagesize unit='KiB'>2048</pagesize>
      </source>
      <target>
        <size unit='KiB'>524288</size>
        <node>0</node>
      </target>
    </memory>
)";
    Error e = translate_err(domain("", dimm));
    EXPECT_EQ(e.code, Errc::refused);
    EXPECT_TRUE(contains(e.message(), "hugepages")) << e.message();
}

TEST(Translate, DimmAndVirtioMemFollowTheRam) {
    std::string devs = R"(    <memory model='dimm' access='private' discard='yes'>
      <source>
        <pagesize unit='KiB'>4</pagesize>
      </source>
      <target>
        <size unit='KiB'>524288</size>
        <node>0</node>
      </target>
    </memory>
    <memory model='virtio-mem' discard='yes'>
      <target>
        <size unit='KiB'>1048576</size>
        <node>0</node>
        <block unit='KiB'>2048</block>
        <requested unit='KiB'>524288</requested>
      </target>
    </memory>
)";
    std::string out = translate_ok(domain("", devs));
    EXPECT_TRUE(contains(out, "<memory model='dimm' access='shared'>")) << out;
    EXPECT_TRUE(contains(out, "<memory model='virtio-mem'>")) << out;
}

TEST(Translate, NvdimmIsKeptAsIs) {
    std::string nv = R"(    <memory model='nvdimm' access='private'>
      <source>
        <path>/tmp/nvdimm</path>
      </source>
      <target>
        <size unit='KiB'>523264</size>
        <node>0</node>
      </target>
    </memory>
)";
    std::string out = translate_ok(domain("", nv));
    EXPECT_TRUE(contains(out, nv)) << out;
}

TEST(Translate, KeepsVhostUser) {
    std::string net = R"(    <interface type='vhostuser'>
      <mac address='52:54:00:ee:96:6b'/>
      <source type='unix' path='/tmp/vhost.sock' mode='server'/>
      <model type='virtio'/>
    </interface>
)";
    std::string out = translate_ok(domain("  <memoryBacking>\n    <source type='memfd'/>\n    "
                                          "<access mode='shared'/>\n  </memoryBacking>\n",
                                          net));
    EXPECT_TRUE(contains(out, net)) << out;
    EXPECT_TRUE(contains(out, "<source type='file'/>"));
}

TEST(Translate, RefusesPciPassthrough) {
    std::string hostdev = R"(    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>
      </source>
    </hostdev>
)";
    Error e = translate_err(domain("", hostdev));
    EXPECT_EQ(e.code, Errc::refused);
    EXPECT_TRUE(contains(e.message(), "<hostdev type='pci'>")) << e.message();
    EXPECT_TRUE(contains(e.message(), "vfio")) << e.message();

    Error e2 = translate_err(domain(
        "", "    <interface type='hostdev'>\n      <source>\n        <address type='pci' "
            "domain='0' bus='6' slot='0' function='0'/>\n      </source>\n    </interface>\n"));
    EXPECT_EQ(e2.code, Errc::refused);
    Error e3 = translate_err(
        domain("", "    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>\n      <source>\n  "
                   "      <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/>\n      "
                   "</source>\n    </hostdev>\n"));
    EXPECT_EQ(e3.code, Errc::refused);
}

TEST(Translate, KeepsUsbHostdev) {
    std::string usb =
        "    <hostdev mode='subsystem' type='usb'>\n      <source>\n        <vendor "
        "id='0x1234'/>\n        <product id='0xbeef'/>\n      </source>\n    </hostdev>\n";
    EXPECT_TRUE(contains(translate_ok(domain("", usb)), usb));
}

TEST(Translate, RefusesNonQemuTypes) {
    for (const char* type : {"xen", "hvf", "lxc", "test"}) {
        Error e = translate_err(domain("", "", "", type));
        EXPECT_EQ(e.code, Errc::refused) << type;
        EXPECT_TRUE(contains(e.message(), std::string("type='") + type + "'")) << e.message();
    }
    translate_ok(domain("", "", "", "qemu"));
}

TEST(Translate, RefusesConfidentialGuests) {
    std::string xml = domain();
    xml.replace(xml.find("</domain>"), 9,
                "  <launchSecurity type='sev'>\n    <policy>0x0003</policy>\n  "
                "</launchSecurity>\n</domain>");
    EXPECT_EQ(translate_err(xml).code, Errc::refused);
}

TEST(Translate, RejectsInvalidInput) {
    for (const char* bad : {"", "<dom", "not xml", "<domain type='kvm'><name>x</name>",
                            "<network><name>default</name></network>",
                            "<x:domain xmlns:x='urn:x' type='kvm'><x:name>a</x:name></x:domain>",
                            "<domain type='kvm'><memory>1024</memory></domain>"}) {
        auto t = translate_domain(bad, "bad.xml");
        ASSERT_FALSE(t.has_value()) << bad;
        EXPECT_EQ(t.error().code, Errc::invalid_input) << bad;
        EXPECT_EQ(t.error().object, "bad.xml") << bad;
        EXPECT_FALSE(t.error().cause.empty()) << bad;
    }
    Error wrong_root = translate_domain("<network/>", "f.xml").error();
    EXPECT_EQ(wrong_root.message(),
              "f.xml: not a libvirt domain: root element is <network>, expected <domain>");
}

TEST(Translate, RejectsDoctype) {
    auto t = translate_domain("<!DOCTYPE domain [<!ENTITY a 'aaaa'>]>\n<domain "
                              "type='kvm'><name>&a;</name><memory>1</memory></domain>",
                              "x.xml");
    ASSERT_FALSE(t.has_value());
    EXPECT_TRUE(contains(t.error().cause, "DOCTYPE"));
}

TEST(Translate, RejectsMissingMemory) {
    std::string xml = domain();
    xml.erase(xml.find("  <memory unit='KiB'>219136</memory>\n"), 37);
    Error e = translate_err(xml);
    EXPECT_EQ(e.code, Errc::invalid_input);
    EXPECT_TRUE(contains(e.message(), "<memory>")) << e.message();
}

TEST(Translate, PreservesNamesUuidCommentsAndForeignMetadata) {
    std::string xml = R"(<domain type='kvm'>
  <name>instance-00000001</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web &amp; db</nova:name>
    </nova:instance>
  </metadata>
  <!-- keep me -->
  <memory unit='KiB'>219136</memory>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
</domain>
)";
    std::string out = translate_ok(xml);
    EXPECT_TRUE(contains(out, "<name>instance-00000001</name>"));
    EXPECT_TRUE(contains(out, "<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>"));
    EXPECT_TRUE(contains(out, "<!-- keep me -->"));
    EXPECT_TRUE(contains(
        out, "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>\n      "
             "<nova:name>web &amp; db</nova:name>\n    </nova:instance>\n    <vmupdate:managed"))
        << out;
}

TEST(Translate, IsIdempotent) {
    std::string once = translate_ok(domain(
        "  <memoryBacking>\n    <source type='memfd'/>\n    <discard/>\n  </memoryBacking>\n"));
    auto twice = translate_domain(once, "once.xml");
    ASSERT_TRUE(twice.has_value());
    EXPECT_EQ(twice->xml, once);
    EXPECT_TRUE(twice->changes.empty());
}

TEST(Translate, RecognisesItsMetadataUnderAnyPrefix) {
    std::string xml = domain();
    xml.replace(xml.find("  <memory "), 0,
                "  <metadata>\n    <vu:managed xmlns:vu='urn:vmupdate:domain:1' version='1'/>\n  "
                "</metadata>\n");
    std::string out = translate_ok(xml);
    EXPECT_EQ(out.find("urn:vmupdate:domain:1"), out.rfind("urn:vmupdate:domain:1")) << out;
}

TEST(Translate, ReportsChanges) {
    auto t = translate_domain(domain(), "x");
    ASSERT_TRUE(t.has_value());
    EXPECT_FALSE(t->changes.empty());
    EXPECT_EQ(t->name, "web1");
}

TEST(Translate, MetadataMatchesItsSchema) {
    std::string out = translate_ok(domain());
    xmlDoc* doc =
        xmlReadMemory(out.data(), static_cast<int>(out.size()), nullptr, nullptr, XML_PARSE_NONET);
    ASSERT_NE(doc, nullptr);
    xmlNode* mark = nullptr;
    for (xmlNode* n = xmlDocGetRootElement(doc)->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE &&
            std::string(reinterpret_cast<const char*>(n->name)) == "metadata")
            for (xmlNode* c = n->children; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && c->ns)
                    mark = c;
    ASSERT_NE(mark, nullptr);
    xmlDoc* sub = xmlNewDoc(reinterpret_cast<const xmlChar*>("1.0"));
    xmlDocSetRootElement(sub, xmlDocCopyNode(mark, sub, 1));

    xmlRelaxNGParserCtxt* pctxt =
        xmlRelaxNGNewParserCtxt(VMUPDATE_SCHEMA_DIR "/domain-metadata.rng");
    xmlRelaxNG* schema = xmlRelaxNGParse(pctxt);
    ASSERT_NE(schema, nullptr);
    xmlRelaxNGValidCtxt* vctxt = xmlRelaxNGNewValidCtxt(schema);
    EXPECT_EQ(xmlRelaxNGValidateDoc(vctxt, sub), 0);

    // A wrong version must not validate, or this test proves nothing.
    xmlSetProp(xmlDocGetRootElement(sub), reinterpret_cast<const xmlChar*>("version"),
               reinterpret_cast<const xmlChar*>("2"));
    EXPECT_NE(xmlRelaxNGValidateDoc(vctxt, sub), 0);

    xmlRelaxNGFreeValidCtxt(vctxt);
    xmlRelaxNGFree(schema);
    xmlRelaxNGFreeParserCtxt(pctxt);
    xmlFreeDoc(sub);
    xmlFreeDoc(doc);
}

TEST(Inspect, ReadsWhatVmupdateNeeds) {
    auto before = inspect_domain(domain(), "x");
    ASSERT_TRUE(before.has_value());
    EXPECT_EQ(before->name, "web1");
    EXPECT_EQ(before->uuid, "c7a5fdbd-edaf-9455-926a-d65c16db1809");
    EXPECT_EQ(before->memory_kib, 219136u);
    EXPECT_FALSE(before->managed);
    EXPECT_FALSE(before->shared_file_ram);
    auto after = inspect_domain(translate_ok(domain()), "x");
    ASSERT_TRUE(after.has_value());
    EXPECT_TRUE(after->managed);
    EXPECT_TRUE(after->shared_file_ram);
}

// Each place libvirt lets QEMU punch RAM out of its file, as a management layer
// (Nova) may add it back after `prepare`: save must see every one.
TEST(Inspect, FindsEveryDiscard) {
    auto none = inspect_domain(translate_ok(domain()), "x");
    ASSERT_TRUE(none.has_value());
    EXPECT_EQ(none->discard, "");
    std::string prepared = translate_ok(domain());
    auto with = [&](const std::string& from, const std::string& to) {
        std::string xml = prepared;
        auto at = xml.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        xml.replace(at, from.size(), to);
        auto info = inspect_domain(xml, "x");
        EXPECT_TRUE(info.has_value());
        return info ? info->discard : std::string();
    };
    EXPECT_EQ(with("<access mode='shared'/>", "<access mode='shared'/><discard/>"),
              "<memoryBacking><discard/>");
    EXPECT_EQ(with("</os>", "</os><cpu><numa><cell id='0' cpus='0' memory='219136' "
                            "discard='yes'/></numa></cpu>"),
              "NUMA cell 0 discard='yes'");
    EXPECT_EQ(with("</devices>", "<memory model='dimm' discard='yes'><target><size "
                                 "unit='KiB'>131072</size><node>0</node></target></memory>"
                                 "</devices>"),
              "memory device dimm discard='yes'");
}

// The names libvirt gives QEMU's memory backends, and so their files in the
// domain's RAM directory: the only files preserve_ram holds.
TEST(Inspect, NamesTheRamFilesLikeLibvirt) {
    auto plain = inspect_domain(translate_ok(domain()), "x");
    ASSERT_TRUE(plain.has_value());
    EXPECT_EQ(plain->ram_files, std::vector<std::string>{"pc.ram"});
    auto numa = inspect_domain(domain("", "",
                                      "<cpu><numa><cell id='0' cpus='0-1' memory='109568'/>"
                                      "<cell id='1' cpus='2-3' memory='109568'/></numa></cpu>\n"),
                               "x");
    ASSERT_TRUE(numa.has_value());
    EXPECT_EQ(numa->ram_files, (std::vector<std::string>{"ram-node0", "ram-node1"}));
    // A running domain's DIMMs carry their alias; nvdimm and virtio-pmem name their
    // own file elsewhere; an inactive DIMM gets the alias libvirt will assign.
    auto devices = inspect_domain(
        domain("", R"(<memory model='dimm'><target><size unit='KiB'>131072</size></target>
<alias name='dimm0'/></memory>
<memory model='nvdimm'><source><path>/srv/nv0</path></source><target><size unit='KiB'>131072</size></target>
<alias name='nvdimm1'/></memory>
<memory model='virtio-mem'><target><size unit='KiB'>131072</size></target><alias name='virtiomem2'/></memory>
<memory model='dimm'><target><size unit='KiB'>131072</size></target></memory>
)"),
        "x");
    ASSERT_TRUE(devices.has_value());
    EXPECT_EQ(devices->ram_files,
              (std::vector<std::string>{"pc.ram", "memdimm0", "memvirtiomem2", "memdimm1"}));
}

TEST(Units, ConvertLikeLibvirt) {
    EXPECT_EQ(to_kib("1024", ""), 1024u);
    EXPECT_EQ(to_kib("1", "MiB"), 1024u);
    EXPECT_EQ(to_kib("1", "m"), 1024u);
    EXPECT_EQ(to_kib("2", "G"), 2u * 1024 * 1024);
    EXPECT_EQ(to_kib("1", "GB"), 976563u); // 10^9 bytes, rounded up
    EXPECT_EQ(to_kib("2048", "b"), 2u);
    EXPECT_EQ(to_kib("1", "bytes"), 1u);
    EXPECT_EQ(to_kib("4", "KiB"), 4u);
    EXPECT_EQ(to_kib("9007199254740991", "KiB"), 9007199254740991u);
    EXPECT_FALSE(to_kib("1", "parsecs"));
    EXPECT_FALSE(to_kib("-1", ""));
    EXPECT_FALSE(to_kib("12x", ""));
    EXPECT_FALSE(to_kib("99999999999999999999", ""));
    EXPECT_FALSE(to_kib("20000000", "EiB"));
}

TEST(DomainName, RejectsNamesUnsafeInPaths) {
    EXPECT_TRUE(check_domain_name("web-1.example_com"));
    for (const char* bad : {"", ".", "..", "a/b", "../etc", "a\nb"})
        EXPECT_FALSE(check_domain_name(bad)) << bad;
    EXPECT_FALSE(check_domain_name(std::string(201, 'a')));
}
