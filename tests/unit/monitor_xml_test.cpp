// vmupdate's private QMP monitor in a domain XML: add_private_monitor and
// strip_private_monitor.
#include "vmupdate/domain_xml.hpp"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <memory>
#include <string>
#include <vector>

using namespace vmupdate;

namespace {

constexpr const char* qemu_ns = "http://libvirt.org/schemas/domain/qemu/1.0";
constexpr const char* socket1 = "/run/vmupdate/qmp/0123456789abcdef/qmp.sock";
constexpr const char* socket2 = "/run/vmupdate/qmp/fedcba9876543210/qmp.sock";

// A small domain; `root_attrs` go into <domain ...> (before type, where the
// serialiser writes namespace declarations), `tail` after </devices>.
std::string domain(const std::string& root_attrs = "", const std::string& tail = "") {
    return "<domain" + root_attrs + R"( type='kvm'>
  <name>web1</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='KiB'>219136</memory>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
)" + tail + "</domain>\n";
}

constexpr const char* qemu_xmlns = " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'";

// A domain whose owner passes QEMU's -s (gdb server) through <qemu:commandline>.
std::string domain_with_user_args(const std::string& extra_args = "") {
    return domain(qemu_xmlns, "  <qemu:commandline>\n    <qemu:arg value='-s'/>\n" + extra_args +
                                  "  </qemu:commandline>\n");
}

std::vector<std::string> our_args(const std::string& path) {
    return {"-chardev", "socket,id=vmupdate-qmp,path=" + path + ",server=off", "-mon",
            "chardev=vmupdate-qmp,mode=control"};
}

struct DocFree {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};

bool in_qemu_ns(const xmlNode* n, const char* local) {
    return n->type == XML_ELEMENT_NODE && n->ns != nullptr && n->ns->href != nullptr &&
           std::string(reinterpret_cast<const char*>(n->ns->href)) == qemu_ns &&
           std::string(reinterpret_cast<const char*>(n->name)) == local;
}

// What a domain XML passes to QEMU: the value of every <arg> of every
// <commandline> in libvirt's qemu namespace, and how many such <commandline>s
// there are. Elements named commandline/arg outside the namespace (which
// libvirt would ignore) are counted apart.
struct CommandLine {
    int commandlines = 0;
    int foreign_elements = 0;
    std::vector<std::string> args;
};

CommandLine command_line(const std::string& xml) {
    CommandLine out;
    std::unique_ptr<xmlDoc, DocFree> doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()),
                                                       "test.xml", nullptr, XML_PARSE_NONET));
    EXPECT_NE(doc, nullptr) << xml;
    if (!doc)
        return out;
    xmlNode* root = xmlDocGetRootElement(doc.get());
    for (xmlNode* c = root->children; c != nullptr; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        std::string name = reinterpret_cast<const char*>(c->name);
        if (!in_qemu_ns(c, "commandline")) {
            if (name == "commandline")
                ++out.foreign_elements;
            continue;
        }
        ++out.commandlines;
        for (xmlNode* a = c->children; a != nullptr; a = a->next) {
            if (a->type != XML_ELEMENT_NODE)
                continue;
            if (!in_qemu_ns(a, "arg")) {
                ++out.foreign_elements;
                continue;
            }
            xmlChar* v = xmlGetProp(a, reinterpret_cast<const xmlChar*>("value"));
            out.args.emplace_back(v ? reinterpret_cast<const char*>(v) : "");
            xmlFree(v);
        }
    }
    return out;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::string add_ok(const std::string& xml, const std::string& socket) {
    auto out = add_private_monitor(xml, socket);
    EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().message());
    return out ? *out : std::string();
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace

TEST(PrivateMonitor, AddsExactlyFourArgsInTheQemuNamespace) {
    std::string out = add_ok(domain(), socket1);
    CommandLine cl = command_line(out);
    EXPECT_EQ(cl.commandlines, 1) << out;
    EXPECT_EQ(cl.foreign_elements, 0) << out;
    EXPECT_EQ(cl.args, our_args(socket1)) << out;
    // The rest of the domain is untouched.
    auto info = inspect_domain(out, "out");
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->name, "web1");
    EXPECT_EQ(info->uuid, "c7a5fdbd-edaf-9455-926a-d65c16db1809");
    EXPECT_EQ(info->memory_kib, 219136u);
    EXPECT_TRUE(contains(out, "<emulator>/usr/bin/qemu-system-x86_64</emulator>")) << out;
}

TEST(PrivateMonitor, UsesTheDomainsQemuPrefixWhateverItIs) {
    // libvirt does not care about the prefix, only about the namespace URI.
    std::string xml = domain(" xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'",
                             "  <q:commandline>\n    <q:arg value='-s'/>\n  </q:commandline>\n");
    std::string out = add_ok(xml, socket1);
    CommandLine cl = command_line(out);
    EXPECT_EQ(cl.commandlines, 1) << out;
    EXPECT_EQ(cl.foreign_elements, 0) << out;
    EXPECT_EQ(cl.args, concat({"-s"}, our_args(socket1))) << out;
}

TEST(PrivateMonitor, ReplacesAnEarlierMonitorInsteadOfAddingASecond) {
    std::string once = add_ok(domain(), socket1);
    std::string twice = add_ok(once, socket2);
    CommandLine cl = command_line(twice);
    EXPECT_EQ(cl.commandlines, 1) << twice;
    EXPECT_EQ(cl.args, our_args(socket2)) << twice;
    EXPECT_FALSE(contains(twice, socket1)) << twice;
    // Adding the same monitor again changes nothing.
    EXPECT_EQ(add_ok(twice, socket2), twice);
}

TEST(PrivateMonitor, KeepsForeignQemuArgs) {
    std::string out = add_ok(domain_with_user_args(), socket1);
    CommandLine cl = command_line(out);
    EXPECT_EQ(cl.commandlines, 1) << out;
    EXPECT_EQ(cl.args, concat({"-s"}, our_args(socket1))) << out;

    std::string replaced = add_ok(out, socket2);
    EXPECT_EQ(command_line(replaced).args, concat({"-s"}, our_args(socket2))) << replaced;
}

TEST(PrivateMonitor, RefusesASocketPathWithAComma) {
    // QEMU would read what follows the ',' as another option of the chardev.
    auto out = add_private_monitor(domain(), "/run/vmupdate/qmp/a,server=off/qmp.sock");
    ASSERT_FALSE(out.has_value());
    EXPECT_EQ(out.error().code, Errc::invalid_input);
    EXPECT_TRUE(contains(out.error().message(), "','")) << out.error().message();
}

TEST(PrivateMonitor, RefusesWhatIsNotADomain) {
    auto added = add_private_monitor("<network><name>n</name></network>", socket1);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code, Errc::invalid_input);
    auto stripped = strip_private_monitor("<domain");
    ASSERT_FALSE(stripped.has_value());
    EXPECT_EQ(stripped.error().code, Errc::invalid_input);
}

TEST(StripPrivateMonitor, RemovesOnlyOurArgs) {
    std::string with = add_ok(domain_with_user_args(), socket1);
    auto stripped = strip_private_monitor(with);
    ASSERT_TRUE(stripped) << stripped.error().message();
    ASSERT_TRUE(stripped->has_value());
    CommandLine cl = command_line(**stripped);
    EXPECT_EQ(cl.commandlines, 1) << **stripped;
    EXPECT_EQ(cl.args, std::vector<std::string>{"-s"}) << **stripped;
    EXPECT_FALSE(contains(**stripped, "vmupdate-qmp")) << **stripped;
    // Back to the user's own definition.
    EXPECT_EQ(**stripped, domain_with_user_args());
}

TEST(StripPrivateMonitor, RemovesACommandlineItEmptied) {
    std::string with = add_ok(domain(), socket1);
    auto stripped = strip_private_monitor(with);
    ASSERT_TRUE(stripped) << stripped.error().message();
    ASSERT_TRUE(stripped->has_value());
    CommandLine cl = command_line(**stripped);
    EXPECT_EQ(cl.commandlines, 0) << **stripped;
    EXPECT_TRUE(cl.args.empty());
    EXPECT_FALSE(contains(**stripped, "commandline")) << **stripped;
    EXPECT_FALSE(contains(**stripped, "vmupdate-qmp")) << **stripped;
    EXPECT_TRUE(contains(**stripped, "  </devices>\n</domain>")) << **stripped;
    auto info = inspect_domain(**stripped, "stripped");
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->name, "web1");
}

TEST(StripPrivateMonitor, ReturnsNulloptWhenThereIsNothingToStrip) {
    for (const std::string& xml : {domain(), domain_with_user_args(), domain(qemu_xmlns)}) {
        auto stripped = strip_private_monitor(xml);
        ASSERT_TRUE(stripped) << stripped.error().message();
        EXPECT_FALSE(stripped->has_value()) << **stripped;
    }
}

TEST(StripPrivateMonitor, KeepsAUserChardevThatMentionsOurId) {
    // A user's own chardev whose socket path happens to contain "vmupdate-qmp,"
    // is not ours: only the exact option values vmupdate writes are.
    std::vector<std::string> user = {"-chardev",
                                     "socket,id=mine,path=/run/vmupdate-qmp,server=on,wait=off",
                                     "-mon", "chardev=mine,mode=control"};
    std::string xml = domain_with_user_args(
        "    <qemu:arg value='" + user[0] + "'/>\n    <qemu:arg value='" + user[1] +
        "'/>\n    <qemu:arg value='" + user[2] + "'/>\n    <qemu:arg value='" + user[3] + "'/>\n");
    auto stripped = strip_private_monitor(xml);
    ASSERT_TRUE(stripped) << stripped.error().message();
    EXPECT_FALSE(stripped->has_value()) << **stripped;

    std::string with = add_ok(xml, socket1);
    EXPECT_EQ(command_line(with).args, concat(concat({"-s"}, user), our_args(socket1))) << with;
    auto again = strip_private_monitor(with);
    ASSERT_TRUE(again && again->has_value());
    EXPECT_EQ(command_line(**again).args, concat({"-s"}, user)) << **again;
}

TEST(StripPrivateMonitor, SurvivesAMonitorWithoutItsMonOption) {
    // A hand-edited definition: our -chardev pair followed directly by the -mon
    // value, whose "-mon" was deleted. Each argument must be removed at most once.
    std::string xml =
        domain(qemu_xmlns, "  <qemu:commandline>\n"
                           "    <qemu:arg value='-chardev'/>\n"
                           "    <qemu:arg value='socket,id=vmupdate-qmp,path=" +
                               std::string(socket1) +
                               ",server=on,wait=off'/>\n"
                               "    <qemu:arg value='chardev=vmupdate-qmp,mode=control'/>\n"
                               "    <qemu:arg value='-s'/>\n"
                               "  </qemu:commandline>\n");
    auto stripped = strip_private_monitor(xml);
    ASSERT_TRUE(stripped) << stripped.error().message();
    ASSERT_TRUE(stripped->has_value());
    CommandLine cl = command_line(**stripped);
    EXPECT_FALSE(contains(**stripped, "socket,id=vmupdate-qmp")) << **stripped;
    ASSERT_FALSE(cl.args.empty());
    EXPECT_EQ(cl.args.back(), "-s") << **stripped;
}

// restoring_qemu_xml: every place libvirt turns into discard-data=on goes, a
// cell's or device's discard='no' and on-demand allocation stay.
TEST(RestoringQemuXml, DropsEveryDiscardAndOnlyImmediateAllocation) {
    std::string xml = domain("", "");
    const std::string cpu = "  <cpu>\n    <numa>\n"
                            "      <cell id='0' cpus='0' memory='109568' unit='KiB' "
                            "memAccess='shared' discard='yes'/>\n"
                            "      <cell id='1' cpus='1' memory='109568' unit='KiB' "
                            "memAccess='shared' discard='no'/>\n    </numa>\n  </cpu>\n";
    const std::string mem = "    <memory model='dimm' access='shared' discard='yes'>\n"
                            "      <target><size unit='KiB'>131072</size><node>0</node></target>\n"
                            "    </memory>\n";
    xml.replace(xml.find("  <os>"), 0,
                "  <memoryBacking>\n    <source type='file'/>\n    <access mode='shared'/>\n"
                "    <allocation mode='immediate' threads='4'/>\n  </memoryBacking>\n" +
                    cpu);
    xml.replace(xml.find("  </devices>"), 0, mem);
    auto r = restoring_qemu_xml(xml);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->xml.find("discard='yes'"), std::string::npos) << r->xml;
    EXPECT_NE(r->xml.find("discard='no'"), std::string::npos) << r->xml;
    EXPECT_EQ(r->xml.find("<allocation"), std::string::npos) << r->xml;
    EXPECT_NE(r->xml.find("<access mode='shared'/>"), std::string::npos) << r->xml;
    EXPECT_EQ(r->changes, (std::vector<std::string>{
                              "NUMA cell 0 discard removed", "memory device dimm discard removed",
                              "<memoryBacking><allocation mode='immediate'/> removed"}));

    std::string ondemand = domain("", "");
    ondemand.replace(ondemand.find("  <os>"), 0,
                     "  <memoryBacking>\n    <allocation mode='ondemand'/>\n  </memoryBacking>\n");
    auto kept = restoring_qemu_xml(ondemand);
    ASSERT_TRUE(kept) << kept.error().message();
    EXPECT_TRUE(kept->changes.empty());
    EXPECT_NE(kept->xml.find("<allocation mode='ondemand'/>"), std::string::npos) << kept->xml;
    EXPECT_FALSE(restoring_qemu_xml("<notadomain/>"));
}
