#include "domain_log.hpp"

#include "text.hpp"

#include <charconv>
#include <ctime>
#include <utility>

namespace vmupdate {
namespace {

// Reads exactly `width` digits at `pos`.
std::optional<int> digits(std::string_view s, size_t pos, size_t width) {
    if (pos + width > s.size())
        return std::nullopt;
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + width, v);
    if (ec != std::errc{} || p != s.data() + pos + width)
        return std::nullopt;
    return v;
}

// The UTC time a log line starts with, in microseconds since the epoch, and where
// the text after it begins. libvirt writes "2026-11-22 04:56:26.431+0000: ",
// QEMU (-msg timestamp=on) "2026-11-22T04:56:26.120341Z ".
std::optional<std::pair<std::int64_t, size_t>> line_time(std::string_view line) {
    auto year = digits(line, 0, 4);
    auto month = digits(line, 5, 2);
    auto day = digits(line, 8, 2);
    auto hour = digits(line, 11, 2);
    auto minute = digits(line, 14, 2);
    auto second = digits(line, 17, 2);
    if (!year || !month || !day || !hour || !minute || !second || line.size() < 20 ||
        line[4] != '-' || line[7] != '-' || (line[10] != ' ' && line[10] != 'T') ||
        line[13] != ':' || line[16] != ':' || line[19] != '.')
        return std::nullopt;
    size_t pos = 20;
    std::int64_t frac_us = 0;
    size_t n = 0;
    for (; pos < line.size() && line[pos] >= '0' && line[pos] <= '9'; ++pos, ++n)
        if (n < 6)
            frac_us = frac_us * 10 + (line[pos] - '0');
    if (n == 0)
        return std::nullopt;
    for (; n < 6; ++n)
        frac_us *= 10;
    std::string_view rest = line.substr(pos);
    if (rest.starts_with("+0000: "))
        pos += 7;
    else if (rest.starts_with("Z "))
        pos += 2;
    else
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = *year - 1900;
    tm.tm_mon = *month - 1;
    tm.tm_mday = *day;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    tm.tm_sec = *second;
    std::int64_t secs = timegm(&tm);
    return std::pair{secs * 1000000 + frac_us, pos};
}

} // namespace

std::vector<TimePoint> domain_log_moments(std::string_view text) {
    std::vector<TimePoint> out;
    while (!text.empty()) {
        std::string_view line = pop_line(text);
        auto stamped = line_time(line);
        if (!stamped)
            continue;
        std::string_view what = line.substr(stamped->second);
        if (what.starts_with("starting up "))
            out.push_back({"qemu-starting", stamped->first});
        else if (what.find(": terminating on signal ") != std::string_view::npos)
            out.push_back({"qemu-terminating", stamped->first});
    }
    return out;
}

std::optional<std::int64_t> first_moment(const std::vector<TimePoint>& moments,
                                         std::string_view name, std::int64_t not_before_us) {
    std::optional<std::int64_t> best;
    for (const auto& m : moments)
        if (m.name == name && m.at_us >= not_before_us && (!best || m.at_us < *best))
            best = m.at_us;
    return best;
}

} // namespace vmupdate
