// A pool's capacity and the check that a domain's RAM fits, apart from the rest
// of the pool module: the hook needs only these, and keeping libndctl and Boost
// out of its binary saves a few milliseconds on each of its runs, which libvirt
// makes in the middle of a guest's pause.
#include "vmupdate/pool_usage.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <sys/statvfs.h>

namespace vmupdate {

std::string format_size(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    std::ostringstream os;
    os << std::fixed << std::setprecision(u == 0 ? 0 : 1) << v << ' ' << units[u];
    return os.str();
}

Result<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data())
        return fail(Errc::invalid_input, std::string(text), "cannot read size",
                    "expected a number with an optional K, M, G or T suffix");
    std::string suffix(end, text.data() + text.size());
    std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    unsigned shift = 0;
    if (suffix.empty() || suffix == "B")
        shift = 0;
    else if (suffix == "K" || suffix == "KB" || suffix == "KIB")
        shift = 10;
    else if (suffix == "M" || suffix == "MB" || suffix == "MIB")
        shift = 20;
    else if (suffix == "G" || suffix == "GB" || suffix == "GIB")
        shift = 30;
    else if (suffix == "T" || suffix == "TB" || suffix == "TIB")
        shift = 40;
    else
        return fail(Errc::invalid_input, std::string(text), "cannot read size",
                    "unknown suffix '" + suffix + "' (use K, M, G or T)");
    if (shift && value > (UINT64_MAX >> shift))
        return fail(Errc::invalid_input, std::string(text), "cannot read size", "too large");
    return value << shift;
}

Result<PoolUsage> pool_usage(const std::string& backing_dir) {
    auto info = filesystem_of(backing_dir);
    if (!info)
        return std::unexpected(info.error());
    struct statvfs sv {};
    if (::statvfs(info->mount_point.c_str(), &sv) != 0)
        return fail_errno(errno, info->mount_point, "cannot read the pool's capacity");
    PoolUsage u;
    u.mount_point = info->mount_point;
    u.fstype = info->fstype;
    u.kind = info->kind;
    u.total = static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize;
    u.free = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
    return u;
}

std::optional<std::string> would_not_fit(std::uint64_t free_bytes, std::uint64_t need_bytes,
                                         std::string_view pool) {
    if (need_bytes <= free_bytes)
        return std::nullopt;
    return "pool " + std::string(pool) + " has " + format_size(free_bytes) + " free, " +
           format_size(need_bytes) + " needed (" + format_size(need_bytes - free_bytes) + " short)";
}

} // namespace vmupdate
