#include "vmupdate/manifest.hpp"

#include "xml.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <libxml/tree.h>
#include <limits>
#include <set>

namespace vmupdate {
namespace {

constexpr std::string_view manifest_version = "1";

const xmlChar* x(const char* s) {
    return reinterpret_cast<const xmlChar*>(s);
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// XML 1.0 cannot carry most control characters, not even as character
// references, and libxml2 rejects invalid UTF-8: either would make the stored
// manifest unreadable, which is worse than a replaced character.
std::string xml_safe(std::string_view s) {
    constexpr std::string_view replacement = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                out += static_cast<char>(c);
            else
                out += replacement;
            ++i;
            continue;
        }
        size_t len = c >= 0xF8 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        bool valid = len != 0 && i + len <= s.size();
        char32_t cp = valid ? c & (0x7F >> len) : 0;
        for (size_t k = 1; valid && k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            valid = (cc & 0xC0) == 0x80;
            cp = (cp << 6) | (cc & 0x3F);
        }
        constexpr std::array<char32_t, 5> min_for_len{0, 0, 0x80, 0x800, 0x10000};
        valid = valid && cp >= min_for_len[len] && cp <= 0x10FFFF &&
                !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE && cp != 0xFFFF;
        if (valid) {
            out += s.substr(i, len);
            i += len;
        } else {
            out += replacement;
            ++i;
        }
    }
    return out;
}

// Strict decimal: no sign, no spaces, no leading '+', no overflow.
template <typename T> std::optional<T> parse_number(std::string_view s) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    T value{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return value;
}

bool in_manifest_ns(const xmlNode* n) {
    return n != nullptr && n->type == XML_ELEMENT_NODE && n->ns != nullptr &&
           n->ns->href != nullptr &&
           reinterpret_cast<const char*>(n->ns->href) == manifest_namespace;
}

// The element's text exactly as written: names and paths may legitimately
// begin or end with spaces, so unlike xml::text nothing is trimmed.
std::string raw_text(const xmlNode* n) {
    xmlChar* c = xmlNodeGetContent(n);
    std::string s = c ? reinterpret_cast<const char*>(c) : "";
    xmlFree(c);
    return s;
}

struct Reader {
    std::string source;
    Manifest m;

    std::unexpected<Error> bad(std::string_view element, std::string cause) const {
        return fail(Errc::invalid_input, source, "element <" + std::string(element) + ">",
                    std::move(cause));
    }

    template <typename T>
    Result<T> number(std::string_view element, std::string_view attribute, std::string_view text) {
        if (auto v = parse_number<T>(text))
            return *v;
        std::string where = attribute.empty() ? "" : "attribute " + std::string(attribute) + ": ";
        return bad(element, where + "'" + std::string(text) +
                                "' is not a non-negative decimal number in range");
    }

    Result<void> ram(const xmlNode* n) {
        RamFile r;
        for (std::string_view a : {"name", "preserved", "device", "inode", "size"})
            if (!xml::has_attr(n, a))
                return bad("ram", "attribute " + std::string(a) + " is missing");
        r.name = xml::attr(n, "name");
        // The name is joined to libvirt's RAM directory later: it must stay a
        // single path component.
        if (r.name.empty() || r.name == "." || r.name == ".." ||
            r.name.find('/') != std::string::npos)
            return bad("ram", "attribute name: '" + r.name + "' is not a plain file name");
        r.preserved = xml::attr(n, "preserved");
        if (r.preserved.empty() || r.preserved[0] != '/')
            return bad("ram", "attribute preserved: '" + r.preserved + "' is not an absolute path");
        auto device = number<std::uint64_t>("ram", "device", xml::attr(n, "device"));
        auto inode = number<std::uint64_t>("ram", "inode", xml::attr(n, "inode"));
        auto size = number<std::uint64_t>("ram", "size", xml::attr(n, "size"));
        for (const auto* v : {&device, &inode, &size})
            if (!*v)
                return std::unexpected(v->error());
        r.device = *device;
        r.inode = *inode;
        r.size = *size;
        m.ram.push_back(std::move(r));
        return {};
    }

    Result<void> event(const xmlNode* n) {
        TimePoint t;
        t.name = xml::attr(n, "name");
        if (t.name.empty() ||
            t.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz-") != std::string::npos)
            return bad("event",
                       "attribute name: '" + t.name + "' is not lowercase letters and dashes");
        auto at = number<std::int64_t>("event", "at-us", xml::attr(n, "at-us"));
        if (!at)
            return std::unexpected(at.error());
        t.at_us = *at;
        m.timeline.push_back(std::move(t));
        return {};
    }

    Result<void> image(const xmlNode* n) {
        if (!xml::has_attr(n, "path"))
            return bad("image", "attribute path is missing");
        m.image = xml::attr(n, "path");
        if (!m.image.empty() && m.image[0] != '/')
            return bad("image", "attribute path: '" + m.image + "' is not an absolute path");
        if (xml::has_attr(n, "size")) {
            auto size = number<std::uint64_t>("image", "size", xml::attr(n, "size"));
            if (!size)
                return std::unexpected(size.error());
            m.image_size = *size;
        }
        m.image_sha256 = xml::attr(n, "sha256");
        if (!m.image_sha256.empty() &&
            (m.image_sha256.size() != 64 ||
             !std::all_of(m.image_sha256.begin(), m.image_sha256.end(), is_hex)))
            return bad("image", "attribute sha256: '" + m.image_sha256 +
                                    "' is not 64 lowercase hexadecimal digits");
        return {};
    }

    Result<void> element(const xmlNode* n) {
        std::string_view el = xml::name(n);
        if (el == "ram")
            return ram(n);
        if (el == "event")
            return event(n);
        if (el == "image")
            return image(n);
        if (el == "uuid") {
            m.uuid = xml::text(n);
            if (!is_canonical_uuid(m.uuid))
                return bad(el, "'" + m.uuid +
                                   "' is not a canonical UUID (lowercase, 8-4-4-4-12 hex digits)");
            return {};
        }
        if (el == "state") {
            auto state = parse_save_state(xml::text(n));
            if (!state)
                return bad(el, "unknown state '" + xml::text(n) +
                                   "' (expected saving, saved, restoring or restored)");
            m.state = *state;
            return {};
        }
        if (el == "saved-at-us" || el == "paused-at-us") {
            auto v = number<std::int64_t>(el, {}, xml::text(n));
            if (!v)
                return std::unexpected(v.error());
            (el == "saved-at-us" ? m.saved_at_us : m.paused_at_us) = *v;
            return {};
        }
        std::string* field = el == "name"             ? &m.name
                             : el == "qemu-version"   ? &m.qemu_version
                             : el == "kernel-version" ? &m.kernel_version
                             : el == "machine-type"   ? &m.machine_type
                             : el == "attempt"        ? &m.attempt
                             : el == "last-error"     ? &m.last_error
                                                      : nullptr;
        if (field == nullptr)
            return bad(el, "unknown element in a version 1 manifest");
        *field = raw_text(n);
        return {};
    }

    Result<void> read(xmlNode* root) {
        if (!in_manifest_ns(root) || xml::name(root) != "manifest")
            return fail(Errc::invalid_input, source, "cannot read manifest",
                        "the root element is <" + std::string(xml::name(root)) +
                            ">, expected <manifest xmlns='" + std::string(manifest_namespace) +
                            "'>");
        if (xml::attr(root, "version") != manifest_version)
            return bad("manifest", "version '" + xml::attr(root, "version") +
                                       "' is not supported (expected " +
                                       std::string(manifest_version) + ")");
        std::set<std::string, std::less<>> seen;
        for (xmlNode* c = root->children; c != nullptr; c = c->next) {
            if (c->type == XML_TEXT_NODE && !xml::text(c).empty())
                return bad("manifest", "unexpected text '" + xml::text(c) + "'");
            if (c->type != XML_ELEMENT_NODE)
                continue;
            if (!in_manifest_ns(c))
                return bad(xml::name(c), "not in the manifest namespace");
            std::string el(xml::name(c));
            if (el != "ram" && el != "event" && !seen.insert(el).second)
                return bad(el, "appears more than once");
            if (auto r = element(c); !r)
                return r;
        }
        for (std::string_view required : {"uuid", "name", "state"})
            if (!seen.contains(required))
                return bad(required, "missing");
        if (m.name.empty())
            return bad("name", "empty");
        return {};
    }
};

void add_text(xmlNode* parent, xmlNs* ns, std::string_view element, std::string_view value) {
    xmlNode* n = xml::add_child(parent, element);
    xmlSetNs(n, ns);
    xmlNodeAddContent(n, x(xml_safe(value).c_str()));
}

void set_safe_attr(xmlNode* n, std::string_view name, std::string_view value) {
    xml::set_attr(n, name, xml_safe(value));
}

} // namespace

std::string_view to_string(SaveState state) {
    switch (state) {
    case SaveState::saving:
        return "saving";
    case SaveState::saved:
        return "saved";
    case SaveState::restoring:
        return "restoring";
    case SaveState::restored:
        return "restored";
    }
    return "unknown";
}

std::optional<SaveState> parse_save_state(std::string_view text) {
    for (SaveState s :
         {SaveState::saving, SaveState::saved, SaveState::restoring, SaveState::restored})
        if (to_string(s) == text)
            return s;
    return std::nullopt;
}

bool is_canonical_uuid(std::string_view uuid) {
    if (uuid.size() != 36)
        return false;
    for (size_t i = 0; i < uuid.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? uuid[i] != '-' : !is_hex(uuid[i]))
            return false;
    }
    return true;
}

Result<Manifest> parse_manifest(std::string_view text, std::string_view source) {
    auto doc = xml::parse(text, source);
    if (!doc) {
        doc.error().step = "cannot parse manifest";
        return std::unexpected(doc.error());
    }
    Reader reader{std::string(source), {}};
    if (auto r = reader.read(xmlDocGetRootElement(doc->get())); !r)
        return std::unexpected(r.error());
    return std::move(reader.m);
}

std::string format_manifest(const Manifest& m) {
    xml::Doc doc(xmlNewDoc(x("1.0")));
    xmlNode* root = xmlNewDocNode(doc.get(), nullptr, x("manifest"), nullptr);
    xmlDocSetRootElement(doc.get(), root);
    xmlNs* ns = xmlNewNs(root, x(std::string(manifest_namespace).c_str()), nullptr);
    xmlSetNs(root, ns);
    xml::set_attr(root, "version", manifest_version);

    add_text(root, ns, "uuid", m.uuid);
    add_text(root, ns, "name", m.name);
    add_text(root, ns, "state", to_string(m.state));
    for (const RamFile& r : m.ram) {
        xmlNode* n = xml::add_child(root, "ram");
        xmlSetNs(n, ns);
        set_safe_attr(n, "name", r.name);
        set_safe_attr(n, "preserved", r.preserved);
        xml::set_attr(n, "device", std::to_string(r.device));
        xml::set_attr(n, "inode", std::to_string(r.inode));
        xml::set_attr(n, "size", std::to_string(r.size));
    }
    if (!m.image.empty() || m.image_size != 0 || !m.image_sha256.empty()) {
        xmlNode* n = xml::add_child(root, "image");
        xmlSetNs(n, ns);
        set_safe_attr(n, "path", m.image);
        xml::set_attr(n, "size", std::to_string(m.image_size));
        if (!m.image_sha256.empty())
            set_safe_attr(n, "sha256", m.image_sha256);
    }
    const std::pair<std::string_view, const std::string*> optional_text[] = {
        {"qemu-version", &m.qemu_version},
        {"kernel-version", &m.kernel_version},
        {"machine-type", &m.machine_type},
    };
    for (const auto& [element, value] : optional_text)
        if (!value->empty())
            add_text(root, ns, element, *value);
    if (m.saved_at_us != 0)
        add_text(root, ns, "saved-at-us", std::to_string(m.saved_at_us));
    if (m.paused_at_us != 0)
        add_text(root, ns, "paused-at-us", std::to_string(m.paused_at_us));
    for (const TimePoint& t : m.timeline) {
        xmlNode* n = xml::add_child(root, "event");
        xmlSetNs(n, ns);
        set_safe_attr(n, "name", t.name);
        xml::set_attr(n, "at-us", std::to_string(t.at_us));
    }
    if (!m.attempt.empty())
        add_text(root, ns, "attempt", m.attempt);
    if (!m.last_error.empty())
        add_text(root, ns, "last-error", m.last_error);
    return xml::serialize(doc.get());
}

} // namespace vmupdate
