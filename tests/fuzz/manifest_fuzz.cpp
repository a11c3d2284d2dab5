// Fuzz target for the save manifest reader. Besides "never crash": a failure is
// invalid input with a message; a manifest that parses is written back by
// format_manifest to a document that parses again to an equal Manifest, and
// writing that one gives the same text (the format is stable).
#include "vmupdate/manifest.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

// Whether XML 1.0 can carry `s` unchanged: valid UTF-8 without the control
// characters, surrogates and non-characters format_manifest replaces.
bool xml_can_carry(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return false;
            ++i;
            continue;
        }
        size_t len = c >= 0xF8 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (len == 0 || i + len > s.size())
            return false;
        char32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        constexpr char32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            cp == 0xFFFE || cp == 0xFFFF)
            return false;
        i += len;
    }
    return true;
}

bool xml_can_carry(const vmupdate::Manifest& m) {
    for (const std::string* s : {&m.uuid, &m.name, &m.image, &m.image_sha256, &m.qemu_version,
                                 &m.kernel_version, &m.machine_type, &m.attempt, &m.last_error})
        if (!xml_can_carry(*s))
            return false;
    for (const auto& r : m.ram)
        if (!xml_can_carry(r.name) || !xml_can_carry(r.preserved))
            return false;
    for (const auto& t : m.timeline)
        if (!xml_can_carry(t.name))
            return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto m = vmupdate::parse_manifest(text, "fuzz");
    if (!m) {
        const auto& e = m.error();
        if (e.code != vmupdate::Errc::invalid_input || e.step.empty() || e.cause.empty())
            std::abort();
        return 0;
    }
    // What the reader promises about a manifest it accepts.
    if (!vmupdate::is_canonical_uuid(m->uuid) || m->name.empty())
        std::abort();
    for (const auto& r : m->ram)
        if (r.name.empty() || r.name == "." || r.name == ".." ||
            r.name.find('/') != std::string::npos || r.preserved.empty() || r.preserved[0] != '/')
            std::abort();
    if (!m->image.empty() && m->image[0] != '/')
        std::abort();

    std::string written = vmupdate::format_manifest(*m);
    auto again = vmupdate::parse_manifest(written, "fuzz-again");
    if (!again)
        std::abort();
    if (xml_can_carry(*m) && *again != *m)
        std::abort();
    if (vmupdate::format_manifest(*again) != written)
        std::abort();
    return 0;
}
