// The save manifest: format/parse round trips, its schema, and rejected input.
#include "vmupdate/manifest.hpp"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <memory>
#include <string>
#include <tuple>

using namespace vmupdate;

namespace {

constexpr const char* uuid1 = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";

Manifest full_manifest() {
    Manifest m;
    m.uuid = uuid1;
    m.name = "web1";
    m.state = SaveState::saved;
    m.ram = {
        {"pc.ram", "/var/lib/vmupdate/ram/" + std::string(uuid1) + "/pc.ram", 64768, 131,
         4ULL << 30},
        {"ram-node1", "/var/lib/vmupdate/ram/" + std::string(uuid1) + "/ram-node1", 64768,
         18446744073709551615ULL, 0},
    };
    m.image = "/var/lib/libvirt/qemu/save/web1.save";
    m.image_size = 123456789;
    m.image_sha256 = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    m.qemu_version = "8.2.2";
    m.kernel_version = "6.1.0-18-amd64";
    m.machine_type = "pc-q35-8.2";
    m.saved_at_us = 1700000000123456;
    m.paused_at_us = 1699999999000001;
    m.timeline = {{"stopped", 1699999999000100}, {"loaded", 1700000000000200}};
    m.attempt = "restore-20240101-1";
    m.last_error = "web1: cannot restore: QEMU exited";
    return m;
}

Manifest minimal_manifest() {
    Manifest m;
    m.uuid = uuid1;
    m.name = "m";
    return m;
}

Manifest parse_ok(const std::string& text) {
    auto m = parse_manifest(text, "test.xml");
    EXPECT_TRUE(m) << (m ? "" : m.error().message()) << "\n" << text;
    return m ? *m : Manifest{};
}

// A valid document with one line replaced, for rejection tests.
std::string with(std::string_view from, std::string_view to) {
    std::string text = format_manifest(full_manifest());
    auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos)
        text.replace(pos, from.size(), to);
    return text;
}

void expect_rejected(const std::string& text, std::string_view cause_part) {
    auto m = parse_manifest(text, "bad.xml");
    ASSERT_FALSE(m) << text;
    EXPECT_EQ(m.error().code, Errc::invalid_input) << m.error().message();
    EXPECT_EQ(m.error().object, "bad.xml");
    EXPECT_NE(m.error().message().find(cause_part), std::string::npos)
        << m.error().message() << " should mention " << cause_part;
}

struct RngDeleter {
    void operator()(xmlRelaxNG* p) const { xmlRelaxNGFree(p); }
    void operator()(xmlRelaxNGParserCtxt* p) const { xmlRelaxNGFreeParserCtxt(p); }
    void operator()(xmlRelaxNGValidCtxt* p) const { xmlRelaxNGFreeValidCtxt(p); }
    void operator()(xmlDoc* p) const { xmlFreeDoc(p); }
};

class Schema {
public:
    Schema() {
        parser_.reset(xmlRelaxNGNewParserCtxt(VMUPDATE_SCHEMA_DIR "/manifest.rng"));
        schema_.reset(xmlRelaxNGParse(parser_.get()));
        if (schema_)
            valid_.reset(xmlRelaxNGNewValidCtxt(schema_.get()));
        // The broken documents are expected to fail: keep their reports quiet.
        if (valid_)
            xmlRelaxNGSetValidStructuredErrors(valid_.get(), &ignore_error, nullptr);
    }
    [[nodiscard]] bool loaded() const { return valid_ != nullptr; }
    [[nodiscard]] bool validates(const std::string& text) const {
        std::unique_ptr<xmlDoc, RngDeleter> doc(xmlReadMemory(
            text.data(), static_cast<int>(text.size()), nullptr, nullptr, XML_PARSE_NONET));
        return doc && xmlRelaxNGValidateDoc(valid_.get(), doc.get()) == 0;
    }

private:
    static void ignore_error(void*, xmlError*) {}

    std::unique_ptr<xmlRelaxNGParserCtxt, RngDeleter> parser_;
    std::unique_ptr<xmlRelaxNG, RngDeleter> schema_;
    std::unique_ptr<xmlRelaxNGValidCtxt, RngDeleter> valid_;
};

} // namespace

TEST(Manifest, SaveStateNames) {
    for (SaveState s :
         {SaveState::saving, SaveState::saved, SaveState::restoring, SaveState::restored})
        EXPECT_EQ(parse_save_state(to_string(s)), s);
    EXPECT_EQ(to_string(SaveState::restoring), "restoring");
    EXPECT_FALSE(parse_save_state("Saved"));
    EXPECT_FALSE(parse_save_state(""));
}

TEST(Manifest, CanonicalUuid) {
    EXPECT_TRUE(is_canonical_uuid(uuid1));
    EXPECT_TRUE(is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
    EXPECT_FALSE(is_canonical_uuid("C7A5FDBD-CDAF-9455-926A-D65C16DB1809"));
    EXPECT_FALSE(is_canonical_uuid("c7a5fdbdcdaf9455926ad65c16db1809"));
    EXPECT_FALSE(is_canonical_uuid("c7a5fdbd-cdaf-9455-926a-d65c16db180"));
    EXPECT_FALSE(is_canonical_uuid("c7a5fdbd-cdaf-9455-926a-d65c16db18090"));
    EXPECT_FALSE(is_canonical_uuid("c7a5fdbd-cdaf-9455-926a+d65c16db1809"));
    EXPECT_FALSE(is_canonical_uuid("g7a5fdbd-cdaf-9455-926a-d65c16db1809"));
    EXPECT_FALSE(is_canonical_uuid("../../../../../../../../etc/passwd00"));
    EXPECT_FALSE(is_canonical_uuid(""));
}

TEST(Manifest, RoundTripsEveryField) {
    Manifest m = full_manifest();
    EXPECT_EQ(parse_ok(format_manifest(m)), m);
    for (SaveState s :
         {SaveState::saving, SaveState::saved, SaveState::restoring, SaveState::restored}) {
        m.state = s;
        EXPECT_EQ(parse_ok(format_manifest(m)), m);
    }
}

TEST(Manifest, RoundTripsMinimal) {
    Manifest m = minimal_manifest();
    EXPECT_EQ(parse_ok(format_manifest(m)), m);
    m.image_size = 5; // an image size without a path still survives
    EXPECT_EQ(parse_ok(format_manifest(m)), m);
}

TEST(Manifest, RoundTripsAwkwardStrings) {
    Manifest m = full_manifest();
    m.name = " web 'one' & \"two\" <three> ";
    m.ram[0].preserved = "/ram/a'b\"c&d<e>\tf\ng\rh";
    m.ram[0].name = "mem dimm'0";
    m.image = "/save/\xc3\xa9t\xc3\xa9 \xf0\x9f\x92\xbe.save";
    m.last_error = "line one\nline two\r\n\ttabbed & <quoted>";
    m.attempt = "  spaced  ";
    EXPECT_EQ(parse_ok(format_manifest(m)), m);
}

TEST(Manifest, FormatIsStableAndReadable) {
    Manifest m = minimal_manifest();
    m.state = SaveState::saved;
    m.ram = {{"pc.ram", "/p/pc.ram", 1, 2, 3}};
    m.image = "/s/m.save";
    m.image_size = 4;
    m.saved_at_us = 5;
    EXPECT_EQ(format_manifest(m), "<manifest xmlns='urn:vmupdate:manifest:1' version='1'>\n"
                                  "  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>\n"
                                  "  <name>m</name>\n"
                                  "  <state>saved</state>\n"
                                  "  <ram name='pc.ram' preserved='/p/pc.ram' device='1' "
                                  "inode='2' size='3'/>\n"
                                  "  <image path='/s/m.save' size='4'/>\n"
                                  "  <saved-at-us>5</saved-at-us>\n"
                                  "</manifest>\n");
    EXPECT_EQ(format_manifest(m), format_manifest(parse_ok(format_manifest(m))));
}

TEST(Manifest, ReplacesCharactersXmlCannotCarry) {
    Manifest m = full_manifest();
    m.last_error =
        std::string("bell\a nul") + '\0' + " bad\xff utf8 \xc0\xaf surrogate \xed\xa0\x80";
    std::string text = format_manifest(m);
    Manifest back = parse_ok(text);
    EXPECT_EQ(back.last_error, "bell\xEF\xBF\xBD nul\xEF\xBF\xBD bad\xEF\xBF\xBD utf8 "
                               "\xEF\xBF\xBD\xEF\xBF\xBD surrogate \xEF\xBF\xBD\xEF\xBF\xBD"
                               "\xEF\xBF\xBD");
    back.last_error = m.last_error;
    EXPECT_EQ(back, m);
}

TEST(Manifest, MatchesItsSchema) {
    Schema schema;
    ASSERT_TRUE(schema.loaded());
    Manifest awkward = full_manifest();
    awkward.ram[0].preserved = "/ram/with\nnewline";
    awkward.last_error = "multi\nline";
    for (const Manifest& m : {full_manifest(), minimal_manifest(), awkward})
        EXPECT_TRUE(schema.validates(format_manifest(m))) << format_manifest(m);
}

TEST(Manifest, SchemaRejectsBrokenManifests) {
    Schema schema;
    ASSERT_TRUE(schema.loaded());
    // Each of these must fail, or the schema test above proves nothing.
    for (auto [from, to] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
             {"version='1'", "version='2'"},
             {"xmlns='urn:vmupdate:manifest:1'", "xmlns='urn:vmupdate:manifest:2'"},
             {"<uuid>c7a5fdbd", "<uuid>C7A5FDBD"},
             {"<state>saved</state>", "<state>gone</state>"},
             {"<name>web1</name>\n", ""},
             {"device='64768'", "device='-1'"},
             {"size='123456789'", "size='12x'"},
             {"preserved='/var", "preserved='var"},
             {"name='pc.ram'", "name='../pc.ram'"},
             {"<saved-at-us>", "<saved-at-us>-"},
             {"sha256='cdc76e", "sha256='CDC76E"},
             {"<qemu-version>8.2.2</qemu-version>", "<qemu-version/>"},
             {"<machine-type>pc-q35-8.2</machine-type>", "<machine-type>x</machine-type><x/>"},
         }) {
        std::string text = with(from, to);
        EXPECT_FALSE(schema.validates(text)) << text;
    }
    // Order is part of the format: state before name does not validate.
    EXPECT_FALSE(schema.validates(with("<name>web1</name>\n  <state>saved</state>",
                                       "<state>saved</state>\n  <name>web1</name>")));
}

TEST(ManifestParse, AcceptsAnyElementOrder) {
    std::string text = with("<name>web1</name>\n  <state>saved</state>",
                            "<state>saved</state>\n  <name>web1</name>");
    EXPECT_EQ(parse_ok(text), full_manifest());
}

TEST(ManifestParse, RejectsMissingRequiredElements) {
    expect_rejected(with("<uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>", ""),
                    "element <uuid>: missing");
    expect_rejected(with("<name>web1</name>", ""), "element <name>: missing");
    expect_rejected(with("<name>web1</name>", "<name></name>"), "element <name>: empty");
    expect_rejected(with("<state>saved</state>", ""), "element <state>: missing");
}

TEST(ManifestParse, RejectsBadUuid) {
    expect_rejected(with("<uuid>c7a5fdbd", "<uuid>C7A5FDBD"), "not a canonical UUID");
    expect_rejected(with("<uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809",
                         "<uuid>c7a5fdbdcdaf9455926ad65c16db1809"),
                    "not a canonical UUID");
    expect_rejected(with("<uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809", "<uuid>../../etc/passwd"),
                    "not a canonical UUID");
}

TEST(ManifestParse, RejectsBadNumbers) {
    const std::tuple<const char*, const char*, const char*> cases[] = {
        {"device='64768'", "device='-1'", "attribute device: '-1'"},
        {"inode='131'", "inode='13a'", "attribute inode: '13a'"},
        {"size='4294967296'", "size=''", "attribute size: ''"},
        {"size='4294967296'", "size=' 1'", "attribute size: ' 1'"},
        {"size='4294967296'", "size='+1'", "attribute size: '+1'"},
        {"size='4294967296'", "size='18446744073709551616'",
         "not a non-negative decimal number in range"},
        {"size='123456789'", "size='0x10'", "element <image>"},
        {"<saved-at-us>1700000000123456", "<saved-at-us>-1700000000123456",
         "element <saved-at-us>"},
        {"<paused-at-us>1699999999000001", "<paused-at-us>9223372036854775808",
         "element <paused-at-us>"},
        {"<saved-at-us>1700000000123456", "<saved-at-us>soon", "'soon'"},
    };
    for (const auto& [from, to, why] : cases)
        expect_rejected(with(from, to), why);
}

TEST(ManifestParse, RejectsBadRamAndImage) {
    const std::tuple<const char*, const char*, const char*> cases[] = {
        {"name='pc.ram'", "name='../pc.ram'", "not a plain file name"},
        {"name='pc.ram'", "name='..'", "not a plain file name"},
        {"name='pc.ram' ", "", "attribute name is missing"},
        {"preserved='/var", "preserved='var", "not an absolute path"},
        {"path='/var", "path='var", "not an absolute path"},
        {"sha256='cdc76e", "sha256='CDC76E", "64 lowercase hexadecimal"},
        {"sha256='cdc76e", "sha256='cdc7", "64 lowercase hexadecimal"},
    };
    for (const auto& [from, to, why] : cases)
        expect_rejected(with(from, to), why);
}

TEST(ManifestParse, RejectsUnknownState) {
    expect_rejected(with("<state>saved</state>", "<state>paused</state>"),
                    "unknown state 'paused'");
}

TEST(ManifestParse, RejectsWrongRoot) {
    expect_rejected("<domain type='kvm'><name>x</name></domain>", "the root element is <domain>");
    // The right name without the namespace is someone else's document.
    expect_rejected(with("xmlns='urn:vmupdate:manifest:1' ", ""), "the root element is <manifest>");
    expect_rejected(with("version='1'", "version='2'"), "version '2' is not supported");
}

TEST(ManifestParse, RejectsMalformedXml) {
    expect_rejected(with("</manifest>", "</manifes>"), "cannot parse manifest");
    expect_rejected("", "cannot parse manifest");
    expect_rejected("<!DOCTYPE manifest [<!ENTITY x 'y'>]><manifest/>", "DOCTYPE");
}

TEST(ManifestParse, RejectsDuplicateAndUnknownElements) {
    expect_rejected(with("<name>web1</name>", "<name>web1</name><name>web2</name>"),
                    "element <name>: appears more than once");
    expect_rejected(with("<name>web1</name>", "<name>web1</name><colour>red</colour>"),
                    "element <colour>: unknown element");
    expect_rejected(with("<name>web1</name>", "<name>web1</name><n:x xmlns:n='urn:other'/>"),
                    "not in the manifest namespace");
    expect_rejected(with("<name>web1</name>", "<name>web1</name>stray"), "unexpected text");
}
