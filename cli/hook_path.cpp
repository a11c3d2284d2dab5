#include "hook_path.hpp"

#include <filesystem>
#include <unistd.h>

namespace vmupdate::cli {

std::vector<std::string> hook_candidates(std::string_view self, std::string_view bin_to_hookdir,
                                         std::string_view hookdir) {
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    if (!self.empty()) {
        fs::path dir = fs::path(self).parent_path();
        out.push_back((dir / bin_to_hookdir / "vmupdate-hook").lexically_normal().string());
        out.push_back((dir / ".." / "hooks" / "vmupdate-hook").lexically_normal().string());
    }
    out.push_back((fs::path(hookdir) / "vmupdate-hook").lexically_normal().string());
    return out;
}

std::string find_hook(const std::vector<std::string>& candidates) {
    for (const auto& c : candidates)
        if (access(c.c_str(), X_OK) == 0)
            return c;
    return candidates.empty() ? std::string{} : candidates.back();
}

std::string hook_link_path(const Paths& paths) {
    return paths.hooks_dir + "/50-vmupdate";
}

std::string self_exe() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
}

} // namespace vmupdate::cli
