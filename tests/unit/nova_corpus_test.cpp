// Domain XML as OpenStack Nova's libvirt driver writes it (tests/corpus/nova/,
// provenance in its README.md): what `vmupdate prepare` does to each, and which
// ones `manage = file-backed` counts as vmupdate's without the mark Nova drops.
#include "vmupdate/config.hpp"
#include "vmupdate/domain_xml.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace vmupdate;

namespace {

namespace fs = std::filesystem;

constexpr const char* nova_ns = "http://openstack.org/xmlns/libvirt/nova/1.1";

std::string corpus_file(const std::string& name) {
    std::ifstream in(fs::path(VMUPDATE_NOVA_CORPUS_DIR) / name, std::ios::binary);
    EXPECT_TRUE(in) << "cannot read " << name;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Number of nodes an XPath expression (prefixes nova, vmupdate) selects.
int count(const std::string& xml, const std::string& xpath) {
    std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
        xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "nova.xml", nullptr,
                      XML_PARSE_NONET),
        xmlFreeDoc);
    if (!doc)
        return -1;
    std::unique_ptr<xmlXPathContext, decltype(&xmlXPathFreeContext)> ctx(
        xmlXPathNewContext(doc.get()), xmlXPathFreeContext);
    auto ns = [](const char* s) {
        return reinterpret_cast<const xmlChar*>(s);
    };
    xmlXPathRegisterNs(ctx.get(), ns("nova"), ns(nova_ns));
    xmlXPathRegisterNs(ctx.get(), ns("vmupdate"), ns("urn:vmupdate:domain:1"));
    std::unique_ptr<xmlXPathObject, decltype(&xmlXPathFreeObject)> res(
        xmlXPathEvalExpression(ns(xpath.c_str()), ctx.get()), xmlXPathFreeObject);
    if (!res || res->type != XPATH_NODESET)
        return -1;
    return res->nodesetval == nullptr ? 0 : res->nodesetval->nodeNr;
}

std::multiset<std::string> as_set(const std::vector<std::string>& v) {
    return {v.begin(), v.end()};
}

// What translate_domain must do with one corpus file.
struct Expectation {
    std::string file;
    std::vector<std::string> changes; ///< when accepted: every change, the mark included
    std::string refused_step;         ///< when refused: the element it names
    bool managed_file_backed = false; ///< inspect_domain under ManagePolicy::file_backed
};

const std::vector<Expectation>& expectations() {
    static const std::vector<Expectation> e = {
        {"instance-plain.xml",
         {"added <memoryBacking>", "RAM source set to file", "RAM access set to shared",
          "marked as managed by vmupdate"},
         "",
         false},
        {"instance-file-backed.xml", {"marked as managed by vmupdate"}, "", true},
        // Nova's <discard/> is switched off at save time: managed as it is.
        {"instance-file-backed-discard.xml",
         {"removed <discard/>", "marked as managed by vmupdate"},
         "",
         true},
        // Nova leaves memAccess unset on the cells of a file-backed guest (it
        // sets it only with hugepages); prepare writes shared on each.
        {"instance-file-backed-numa.xml",
         {"removed <discard/>", "NUMA cell 0 memAccess set to shared",
          "NUMA cell 1 memAccess set to shared", "marked as managed by vmupdate"},
         "",
         false},
        {"instance-hugepages-numa.xml", {}, "element <memoryBacking><hugepages>", false},
        {"fake-kvm-guest-hugepages.xml", {}, "element <memoryBacking><hugepages>", false},
        {"guest-hostdev-pci.xml", {}, "element <hostdev type='pci'>", false},
    };
    return e;
}

class NovaCorpus : public ::testing::TestWithParam<Expectation> {};

TEST_P(NovaCorpus, TranslateAcceptsWithTheseChangesOrRefusesWithThisReason) {
    const auto& want = GetParam();
    auto t = translate_domain(corpus_file(want.file), want.file);
    if (!want.refused_step.empty()) {
        ASSERT_FALSE(t) << want.file << " was accepted";
        EXPECT_EQ(t.error().code, Errc::refused);
        EXPECT_EQ(t.error().step, want.refused_step) << t.error().message();
        return;
    }
    ASSERT_TRUE(t) << t.error().message();
    EXPECT_EQ(as_set(t->changes), as_set(want.changes));
    // The result is what vmupdate keeps: shared file RAM that survives QEMU.
    EXPECT_EQ(count(t->xml, "/domain/memoryBacking/source[@type='file']"), 1);
    EXPECT_EQ(count(t->xml, "/domain/memoryBacking/access[@mode='shared']"), 1);
    EXPECT_EQ(count(t->xml, "//discard"), 0);
    EXPECT_EQ(count(t->xml, "/domain/cpu/numa/cell[not(@memAccess='shared')]"), 0);
}

TEST_P(NovaCorpus, FileBackedPolicyManagesOnlyWhatIsPreservableAsIs) {
    const auto& want = GetParam();
    std::string xml = corpus_file(want.file);
    auto info = inspect_domain(xml, want.file, ManagePolicy::file_backed);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_FALSE(info->marked);
    EXPECT_EQ(info->managed, want.managed_file_backed);
    std::string why = why_unmanaged(xml, *info, ManagePolicy::file_backed);
    if (want.managed_file_backed)
        EXPECT_EQ(why, "");
    else if (!want.refused_step.empty())
        EXPECT_NE(why.find("cannot be preserved"), std::string::npos) << why;
    else
        EXPECT_NE(why.find("vmupdate prepare " + info->name), std::string::npos) << why;
}

TEST_P(NovaCorpus, MarkedPolicyManagesNoneOfNovasDefinitions) {
    const auto& want = GetParam();
    auto info = inspect_domain(corpus_file(want.file), want.file, ManagePolicy::marked);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_FALSE(info->marked);
    EXPECT_FALSE(info->managed);
}

TEST_P(NovaCorpus, PreparedDefinitionIsManagedAndKeepsNovasMetadata) {
    const auto& want = GetParam();
    std::string xml = corpus_file(want.file);
    auto t = translate_domain(xml, want.file);
    if (!want.refused_step.empty()) {
        ASSERT_FALSE(t) << "refused domains have no prepared definition";
        return;
    }
    ASSERT_TRUE(t) << t.error().message();
    for (auto policy : {ManagePolicy::marked, ManagePolicy::file_backed}) {
        auto info = inspect_domain(t->xml, want.file, policy);
        ASSERT_TRUE(info) << info.error().message();
        EXPECT_TRUE(info->marked);
        EXPECT_TRUE(info->managed);
        EXPECT_TRUE(info->shared_file_ram);
        EXPECT_EQ(info->discard, "");
        EXPECT_EQ(why_unmanaged(t->xml, *info, policy), "");
    }
    // One <metadata>: Nova's element, whole, next to vmupdate's mark.
    EXPECT_EQ(count(t->xml, "/domain/metadata"), 1);
    EXPECT_EQ(count(t->xml, "/domain/metadata/vmupdate:managed[@version='1']"), 1);
    EXPECT_EQ(count(t->xml, "/domain/metadata/nova:instance"), 1);
    for (const char* path :
         {"//nova:name", "//nova:flavor/nova:extraSpecs/nova:extraSpec", "//nova:owner/nova:user",
          "//nova:root", "//nova:ports/nova:port/nova:ip", "/domain/metadata/nova:instance/*"}) {
        EXPECT_GT(count(xml, path), 0) << path;
        EXPECT_EQ(count(t->xml, path), count(xml, path)) << path;
    }
    EXPECT_EQ(count(t->xml, "/domain/metadata/nova:instance/nova:name[.='moonbuggy']"), 1);
    // And the rest of what Nova wrote is still there.
    for (const char* path : {"/domain/sysinfo/system/entry", "/domain/numatune/memnode",
                             "/domain/memtune/*", "/domain/devices/*", "/domain/cputune/*"}) {
        EXPECT_GT(count(xml, path), 0) << path;
        EXPECT_EQ(count(t->xml, path), count(xml, path)) << path;
    }
    // Preparing again changes nothing.
    auto again = translate_domain(t->xml, want.file);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_TRUE(again->changes.empty());
}

INSTANTIATE_TEST_SUITE_P(Nova, NovaCorpus, ::testing::ValuesIn(expectations()), [](const auto& p) {
    std::string n;
    for (char c : p.param.file.substr(0, p.param.file.size() - 4))
        n += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return n;
});

// Every file of the corpus has an expectation above, and every expectation a file.
TEST(NovaCorpusFiles, EachFileIsChecked) {
    std::set<std::string> files, expected;
    for (const auto& e : fs::directory_iterator(VMUPDATE_NOVA_CORPUS_DIR))
        if (e.path().extension() == ".xml")
            files.insert(e.path().filename().string());
    for (const auto& e : expectations())
        expected.insert(e.file);
    EXPECT_EQ(files, expected);
    EXPECT_GE(files.size(), 6u);
}

// Nova writes <discard/> next to the shared file RAM (since Nova 23.0.0 always):
// the save switches discard-data off in the running QEMU and the restoring QEMU
// starts without it, so the policy takes the domain as Nova wrote it, and
// `vmupdate status` never tells the operator to prepare it for its discard.
TEST(NovaCorpusFiles, DiscardIsNoReasonToPrepare) {
    for (const char* file : {"instance-file-backed-discard.xml", "instance-file-backed-numa.xml"}) {
        std::string xml = corpus_file(file);
        auto info = inspect_domain(xml, file, ManagePolicy::file_backed);
        ASSERT_TRUE(info) << info.error().message();
        EXPECT_TRUE(info->shared_file_ram) << file;
        EXPECT_EQ(info->discard, "<memoryBacking><discard/>") << file;
        std::string why = why_unmanaged(xml, *info, ManagePolicy::file_backed);
        EXPECT_EQ(why.find("discard"), std::string::npos) << why;
    }
    EXPECT_TRUE(inspect_domain(corpus_file("instance-file-backed-discard.xml"), "d",
                               ManagePolicy::file_backed)
                    ->managed);
}

// The two Nova layouts without discard differ only in what RAM they have:
// anonymous RAM is not vmupdate's under either policy, shared file RAM without
// discard is under file-backed.
TEST(NovaCorpusFiles, AnonymousRamIsNotManagedSharedFileRamIs) {
    std::string plain = corpus_file("instance-plain.xml");
    auto p = inspect_domain(plain, "plain", ManagePolicy::file_backed);
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_FALSE(p->shared_file_ram);
    EXPECT_EQ(p->discard, "");
    EXPECT_FALSE(p->managed);
    EXPECT_EQ(p->name, "demo");
    EXPECT_EQ(p->uuid, "b38a3f43-4be2-4046-897f-b67c2f5e0147");
    std::string why = why_unmanaged(plain, *p, ManagePolicy::file_backed);
    EXPECT_NE(why.find("added <memoryBacking>"), std::string::npos) << why;
    EXPECT_NE(why.find("run 'vmupdate prepare demo' and cold-start it"), std::string::npos) << why;

    std::string fb = corpus_file("instance-file-backed.xml");
    auto f = inspect_domain(fb, "fb", ManagePolicy::file_backed);
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_TRUE(f->shared_file_ram);
    EXPECT_EQ(f->discard, "");
    EXPECT_TRUE(f->managed);
    EXPECT_FALSE(f->marked);
    // Under marked the same definition needs the mark only.
    auto m = inspect_domain(fb, "fb", ManagePolicy::marked);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_FALSE(m->managed);
    why = why_unmanaged(fb, *m, ManagePolicy::marked);
    EXPECT_NE(why.find("not marked for vmupdate (manage = marked)"), std::string::npos) << why;
}

} // namespace

// The restoring QEMU of a Nova instance (restore begin): no discard, which a
// failed restore's SIGTERM would turn into the loss of the preserved RAM, and
// no preallocation of RAM that is already in its file; all else as Nova wrote it.
TEST(NovaCorpusFiles, RestoringQemuNeitherDiscardsNorPreallocates) {
    for (const char* file : {"instance-file-backed-discard.xml", "instance-file-backed-numa.xml"}) {
        std::string xml = corpus_file(file);
        ASSERT_EQ(count(xml, "//discard"), 1) << file;
        ASSERT_EQ(count(xml, "/domain/memoryBacking/allocation[@mode='immediate']"), 1) << file;
        auto r = restoring_qemu_xml(xml);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(count(r->xml, "//discard"), 0) << r->xml;
        EXPECT_EQ(count(r->xml, "//@discard"), 0) << r->xml;
        EXPECT_EQ(count(r->xml, "/domain/memoryBacking/allocation"), 0) << r->xml;
        EXPECT_EQ(r->changes, (std::vector<std::string>{
                                  "<memoryBacking><discard/> removed",
                                  "<memoryBacking><allocation mode='immediate'/> removed"}));
        // Only those two elements went.
        EXPECT_EQ(count(r->xml, "//*"), count(xml, "//*") - 2) << file;
        EXPECT_EQ(count(r->xml, "/domain/memoryBacking/source[@type='file']"), 1);
        EXPECT_EQ(count(r->xml, "/domain/memoryBacking/access[@mode='shared']"), 1);
        EXPECT_EQ(count(r->xml, "/domain/metadata/nova:instance"), 1);
    }
    // Without discard: the preallocation alone goes.
    std::string plain = corpus_file("instance-file-backed.xml");
    auto r = restoring_qemu_xml(plain);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->changes,
              std::vector<std::string>{"<memoryBacking><allocation mode='immediate'/> removed"});
    EXPECT_EQ(count(r->xml, "//*"), count(plain, "//*") - 1);
}
