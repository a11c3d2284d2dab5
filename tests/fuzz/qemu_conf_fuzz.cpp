// Fuzz target for the qemu.conf reader (conf_string). Besides "never crash": a
// failure is invalid input with a message; a value never spans lines; a later
// assignment overrides, so appending `key = "value"` yields that value (and
// appending the value just read changes nothing); commented out, the text sets
// nothing.
#include "vmupdate/host.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view keys[] = {"memory_backing_dir", "user", "security_driver"};

// `key = "value"` with a quote that `value` does not contain; nothing when it
// contains both or a newline.
std::string assignment(std::string_view key, std::string_view value, std::string_view spacing) {
    char quote = value.find('"') == std::string_view::npos ? '"' : '\'';
    if (value.find(quote) != std::string_view::npos || value.find('\n') != std::string_view::npos)
        return {};
    return std::string(key) + std::string(spacing) + "=" + std::string(spacing) + quote +
           std::string(value) + quote;
}

void check_error(const vmupdate::Error& e) {
    if (e.code != vmupdate::Errc::invalid_input || e.step.empty() || e.cause.empty())
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    std::string commented;
    for (size_t start = 0; start <= text.size();) {
        size_t nl = text.find('\n', start);
        size_t end = nl == std::string_view::npos ? text.size() : nl;
        commented += "#" + std::string(text.substr(start, end - start)) + "\n";
        start = end + 1;
    }

    for (std::string_view key : keys) {
        auto value = vmupdate::conf_string(text, key);
        if (!value) {
            check_error(value.error());
            continue;
        }
        if (value->find('\n') != std::string::npos)
            std::abort();

        // Read back after the text: the same value, however it is spaced.
        std::string again = assignment(key, *value, " \t");
        if (!again.empty()) {
            auto v = vmupdate::conf_string(std::string(text) + "\n" + again + "\n", key);
            if (!v || *v != *value)
                std::abort();
        }
        // A later assignment wins.
        auto last = vmupdate::conf_string(
            std::string(text) + "\n" + std::string(key) + " = \"/fuzz/override\"", key);
        if (!last || *last != "/fuzz/override")
            std::abort();
        // Comments set nothing.
        auto none = vmupdate::conf_string(commented, key);
        if (!none || !none->empty())
            std::abort();
    }

    // Any single-line value reads back from an assignment of its own.
    std::string line(text.substr(0, text.find('\n')));
    if (std::string a = assignment("memory_backing_dir", line, ""); !a.empty()) {
        auto v = vmupdate::conf_string(a, "memory_backing_dir");
        if (!v || *v != line)
            std::abort();
    }
    return 0;
}
