// The translator over libvirt's own test domains (shared/corpus/libvirt-domains):
// each is translated or refused cleanly, translations are idempotent and valid for
// libvirt's schema, and chosen files match reviewed golden outputs.
#include "vmupdate/domain_xml.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <sstream>
#include <string>
#include <vector>

using namespace vmupdate;
namespace fs = std::filesystem;

namespace {

constexpr const char* libvirt_domain_rng = "/usr/share/libvirt/schemas/domain.rng";

std::vector<std::string> corpus_files() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(VMUPDATE_CORPUS_DIR, ec))
        if (e.path().extension() == ".xml")
            out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    if (out.empty())
        out.push_back("(corpus missing)");
    return out;
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// libvirt's domain schema through libxml2, as virt-xml-validate uses it.
class DomainSchema {
public:
    DomainSchema() {
        if (!fs::exists(libvirt_domain_rng))
            return;
        xmlRelaxNGParserCtxt* p = xmlRelaxNGNewParserCtxt(libvirt_domain_rng);
        schema_ = xmlRelaxNGParse(p);
        xmlRelaxNGFreeParserCtxt(p);
    }
    ~DomainSchema() {
        if (schema_)
            xmlRelaxNGFree(schema_);
    }
    DomainSchema(const DomainSchema&) = delete;
    DomainSchema& operator=(const DomainSchema&) = delete;
    [[nodiscard]] bool available() const { return schema_ != nullptr; }
    [[nodiscard]] bool valid(const std::string& text) const {
        xmlDoc* doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), nullptr, nullptr,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (doc == nullptr)
            return false;
        xmlRelaxNGValidCtxt* v = xmlRelaxNGNewValidCtxt(schema_);
        xmlRelaxNGSetValidStructuredErrors(
            v, [](void*, xmlError*) {}, nullptr);
        bool ok = xmlRelaxNGValidateDoc(v, doc) == 0;
        xmlRelaxNGFreeValidCtxt(v);
        xmlFreeDoc(doc);
        return ok;
    }

private:
    xmlRelaxNG* schema_ = nullptr;
};

const DomainSchema& schema() {
    static DomainSchema s;
    return s;
}

class Corpus : public ::testing::TestWithParam<std::string> {};

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n = info.param;
    if (n.ends_with(".xml"))
        n.resize(n.size() - 4);
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)))
            c = '_';
    return n;
}

} // namespace

TEST_P(Corpus, TranslatesOrRefusesCleanly) {
    fs::path input = fs::path(VMUPDATE_CORPUS_DIR) / GetParam();
    if (!fs::exists(input))
        GTEST_SKIP() << "corpus not found at " << VMUPDATE_CORPUS_DIR;
    std::string text = read(input);
    auto t = translate_domain(text, GetParam());
    fs::path golden = fs::path(VMUPDATE_GOLDEN_DIR) / GetParam();
    fs::path golden_refusal = fs::path(VMUPDATE_GOLDEN_DIR) / (GetParam() + ".refused");

    if (!t) {
        EXPECT_TRUE(t.error().code == Errc::refused || t.error().code == Errc::invalid_input);
        EXPECT_FALSE(t.error().object.empty());
        EXPECT_FALSE(t.error().step.empty());
        EXPECT_FALSE(t.error().cause.empty());
        EXPECT_FALSE(fs::exists(golden))
            << "golden output exists but the file was refused: " << t.error().message();
        if (fs::exists(golden_refusal)) {
            EXPECT_EQ(t.error().message() + "\n", read(golden_refusal));
        }
        return;
    }
    EXPECT_FALSE(fs::exists(golden_refusal)) << "expected a refusal";
    auto again = translate_domain(t->xml, "translated");
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_EQ(again->xml, t->xml) << "translation is not idempotent";
    EXPECT_TRUE(again->changes.empty());

    auto info = inspect_domain(t->xml, "translated");
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->managed);
    EXPECT_TRUE(info->shared_file_ram);
    EXPECT_EQ(t->xml.find("<discard/>"), std::string::npos);
    EXPECT_EQ(t->xml.find("<source type='memfd'"), std::string::npos);

    if (fs::exists(golden)) {
        EXPECT_EQ(t->xml, read(golden)) << "differs from golden " << golden;
    }

    if (!schema().available())
        GTEST_SKIP() << "libvirt's domain.rng is not installed: schema check skipped";
    if (schema().valid(text)) {
        EXPECT_TRUE(schema().valid(t->xml)) << "input valid for libvirt's schema, output not:\n"
                                            << t->xml;
    }
}

INSTANTIATE_TEST_SUITE_P(LibvirtDomains, Corpus, ::testing::ValuesIn(corpus_files()), test_name);

TEST(CorpusGolden, AtLeastTwelveGoldenOutputs) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(VMUPDATE_GOLDEN_DIR))
        if (e.path().extension() == ".xml")
            ++n;
    EXPECT_GE(n, 12);
}
