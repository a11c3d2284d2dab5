// Fuzz target for the /proc/self/mountinfo parser and the filesystem lookup on
// top of it. Besides "never crash": the fields it returns are consistent (the
// unescaped ones aside, none holds a blank or a newline), written back as
// mountinfo lines they parse to the same entries, and every absolute mount point
// is found again by filesystem_from_mountinfo with the kind its entry implies.
#include "mountinfo.hpp"
#include "vmupdate/host.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

// The octal escapes the kernel writes (mangle() in fs/proc_namespace.c), and the
// newline, which would otherwise end the line.
std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
            auto u = static_cast<unsigned char>(c);
            out += '\\';
            out += static_cast<char>('0' + (u >> 6));
            out += static_cast<char>('0' + ((u >> 3) & 7));
            out += static_cast<char>('0' + (u & 7));
        } else {
            out += c;
        }
    }
    return out;
}

bool has_blank(std::string_view s) {
    return s.find_first_of(" \n") != std::string_view::npos;
}

bool same(const vmupdate::MountEntry& a, const vmupdate::MountEntry& b) {
    return a.device == b.device && a.mount_point == b.mount_point && a.options == b.options &&
           a.fstype == b.fstype && a.source == b.source && a.super_options == b.super_options;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto entries = vmupdate::parse_mountinfo(text);

    size_t lines = 1;
    for (char c : text)
        lines += c == '\n';
    if (entries.size() > lines)
        std::abort();

    std::string rewritten;
    for (const auto& e : entries) {
        for (const std::string* field : {&e.device, &e.options, &e.fstype, &e.super_options})
            if (has_blank(*field))
                std::abort();
        rewritten += "1 0 " + e.device + " / " + escape(e.mount_point) + " " + e.options +
                     " shared:1 - " + e.fstype + " " + escape(e.source) + " " + e.super_options +
                     "\n";
    }
    auto reparsed = vmupdate::parse_mountinfo(rewritten);
    if (reparsed.size() != entries.size())
        std::abort();
    for (size_t i = 0; i < entries.size(); ++i)
        if (!same(reparsed[i], entries[i]))
            std::abort();

    // Looking up a mount point finds the mount stacked last on it (the first few
    // entries' points: each lookup parses the whole text again).
    for (size_t i = 0; i < entries.size() && i < 8; ++i) {
        const auto& e = entries[i];
        if (e.mount_point.empty() || e.mount_point[0] != '/')
            continue;
        const vmupdate::MountEntry* top = nullptr;
        for (const auto& other : entries)
            if (other.mount_point == e.mount_point)
                top = &other;
        auto fs = vmupdate::filesystem_from_mountinfo(text, e.mount_point);
        if (!fs || fs->mount_point != top->mount_point || fs->fstype != top->fstype ||
            fs->source != top->source)
            std::abort();
        bool memory = top->fstype == "tmpfs" || top->fstype == "ramfs";
        bool dax =
            vmupdate::has_dax_option(top->options) || vmupdate::has_dax_option(top->super_options);
        auto kind = memory ? vmupdate::FsKind::memory
                    : dax  ? vmupdate::FsKind::dax
                           : vmupdate::FsKind::disk;
        if (fs->kind != kind)
            std::abort();
    }
    return 0;
}
