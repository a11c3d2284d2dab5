// Fuzz target for the domain XML translator. Besides "never crash", it checks
// the translator's own promises on whatever the fuzzer finds: a translation is
// idempotent and marks the domain managed; a failure is a refusal or invalid
// input, with a message.
#include "vmupdate/domain_xml.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto t = vmupdate::translate_domain(text, "fuzz");
    if (!t) {
        const auto& e = t.error();
        if (e.code != vmupdate::Errc::refused && e.code != vmupdate::Errc::invalid_input)
            std::abort();
        if (e.step.empty() || e.cause.empty())
            std::abort();
        return 0;
    }
    auto again = vmupdate::translate_domain(t->xml, "fuzz-again");
    if (!again || again->xml != t->xml || !again->changes.empty())
        std::abort();
    auto info = vmupdate::inspect_domain(t->xml, "fuzz-again");
    if (!info || !info->managed || !info->shared_file_ram)
        std::abort();
    return 0;
}
