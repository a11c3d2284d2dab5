#include "process_mark.hpp"

#include "fsutil.hpp"

#include <charconv>
#include <cstring>
#include <string_view>

namespace vmupdate {
namespace {

std::optional<std::uint64_t> parse_u64(std::string_view s) {
    std::uint64_t v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

} // namespace

Result<ProcessId> process_id(int pid) {
    if (pid <= 0)
        return fail(Errc::invalid_input, std::to_string(pid), "not a process id");
    auto stat = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!stat)
        return std::unexpected(stat.error());
    // The command name (field 2) may hold spaces and parentheses: count fields
    // from the last ')'. Field 3 follows it; the start time is field 22.
    auto close = stat->rfind(')');
    if (close == std::string::npos)
        return fail(Errc::invalid_input, "/proc/" + std::to_string(pid) + "/stat",
                    "cannot read the process start time", "no ')'");
    std::string_view rest = std::string_view(*stat).substr(close + 1);
    int field = 2;
    std::size_t pos = 0;
    while (pos < rest.size()) {
        while (pos < rest.size() && rest[pos] == ' ')
            ++pos;
        std::size_t end = rest.find(' ', pos);
        if (end == std::string_view::npos)
            end = rest.size();
        if (++field == 22) {
            auto v = parse_u64(rest.substr(pos, end - pos));
            if (!v)
                break;
            return ProcessId{pid, *v};
        }
        pos = end;
    }
    return fail(Errc::invalid_input, "/proc/" + std::to_string(pid) + "/stat",
                "cannot read the process start time", "unexpected format");
}

Result<void> write_process_mark(const std::string& path, const ProcessId& who) {
    std::string text = std::to_string(who.pid) + " " + std::to_string(who.start_time) + "\n";
    if (auto old = read_file(path, 64); old && *old == text)
        return {};
    return write_file_atomic(path, text, 0600);
}

std::optional<ProcessId> live_process_mark(const std::string& path) {
    auto text = read_file(path, 64);
    if (!text)
        return std::nullopt;
    std::string_view s = *text;
    if (!s.ends_with('\n'))
        return std::nullopt;
    s.remove_suffix(1);
    auto space = s.find(' ');
    if (space == std::string_view::npos)
        return std::nullopt;
    auto pid = parse_u64(s.substr(0, space));
    auto start = parse_u64(s.substr(space + 1));
    if (!pid || !start || *pid == 0 || *pid > 0x7fffffff)
        return std::nullopt;
    ProcessId named{static_cast<int>(*pid), *start};
    auto now = process_id(named.pid);
    if (!now || !(*now == named))
        return std::nullopt;
    return named;
}

} // namespace vmupdate
