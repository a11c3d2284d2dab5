#include "handover_record.hpp"

#include "fsutil.hpp"
#include "vmupdate/handover.hpp"
#include "vmupdate/interrupt.hpp"

#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace vmupdate::handover {
namespace {

using json = nlohmann::json;

// Points the manifest's entry for `f` (same name) at the rebuilt file.
Result<void> record_rebuilt(const StateDir& state, const std::string& uuid, const RamFile& f) {
    auto r = state.update(uuid, [&](Manifest& m) {
        for (auto& ram : m.ram)
            if (ram.name == f.name && ram.preserved == f.preserved) {
                ram.device = f.device;
                ram.inode = f.inode;
                return true;
            }
        return false;
    });
    if (!r)
        return std::unexpected(r.error());
    return {};
}

constexpr const char* holder_unit_name = "vmupdate-handover.service";

// The systemd unit this process runs as ("" outside a service): the last
// component of its systemd cgroup (v2's "0::", or v1's name=systemd) when
// that is a .service.
std::string own_unit() {
    auto text = read_file("/proc/self/cgroup", 1 << 16);
    if (!text)
        return "";
    std::string_view t = *text;
    while (!t.empty()) {
        auto nl = t.find('\n');
        std::string_view line = t.substr(0, nl);
        t = nl == std::string_view::npos ? std::string_view() : t.substr(nl + 1);
        if (!line.starts_with("0::") && line.find(":name=systemd:") == std::string_view::npos)
            continue;
        std::string_view last = line.substr(line.rfind('/') + 1);
        return last.ends_with(".service") ? std::string(last) : "";
    }
    return "";
}

// Says in the lock file who holds it: "PID UNIT" (UNIT may be missing), for a
// restore that finds it taken.
void record_holder(int fd) {
    std::string line = std::to_string(::getpid()) + " " + own_unit() + "\n";
    if (::ftruncate(fd, 0) == 0)
        (void)!::pwrite(fd, line.data(), line.size(), 0);
}

// Who holds the lock of `fd`, from its content, and what to do about it.
std::string holder_advice(int fd) {
    char buf[256] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string_view text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.remove_suffix(1);
    auto space = text.find(' ');
    std::string pid(text.substr(0, space));
    std::string unit(space == std::string_view::npos ? "" : text.substr(space + 1));
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos)
        return "held by another vmupdate process; run `vmupdate restore` again once it has "
               "ended";
    std::string who = "PID " + pid + (unit.empty() ? "" : " (" + unit + ")");
    if (unit == holder_unit_name)
        return "held by " + who +
               ", the holder of a handover to the next kernel: if host-update is no longer "
               "running, `systemctl stop " +
               unit + "` takes the RAM back; then run `vmupdate restore` again";
    return "held by " + who + " (a handover or a restore under way): wait for it to end, " +
           "or stop it (`kill -TERM " + pid + "` takes a handover's RAM back); then run " +
           "`vmupdate restore` again";
}

} // namespace

std::string record_path(const Paths& paths) {
    return paths.state_dir + "/handover.json";
}

Result<Fd> lock_handover(const Paths& paths, std::chrono::milliseconds wait) {
    std::string path = paths.state_dir + "/handover.lock";
    int fd;
    do
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, path, "cannot lock the RAM handover");
    Fd lock(fd);
    // Polled, never a blocking flock(): a holder that survived host-update must
    // not hang every restore, and an interrupt must end the wait at once.
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return fail_errno(errno, path, "cannot lock the RAM handover");
        if (interrupt_requested() || std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, path, "the RAM handover is in use",
                        holder_advice(lock.get()));
        const timespec step{0, 50'000'000};
        ::nanosleep(&step, nullptr); // a signal cuts it short
    }
    record_holder(lock.get());
    return lock;
}

std::string running_release() {
    struct utsname u {};
    return ::uname(&u) == 0 ? u.release : "";
}

std::string format_record(const std::string& release, const std::vector<Entry>& entries) {
    json files = json::array();
    for (const auto& e : entries)
        files.push_back({{"token", e.token},
                         {"uuid", e.uuid},
                         {"domain", e.domain},
                         {"name", e.ram.name},
                         {"preserved", e.ram.preserved},
                         {"size", e.ram.size},
                         {"uid", e.owner.uid},
                         {"gid", e.owner.gid},
                         {"mode", e.owner.mode},
                         {"sums", e.sums}});
    // A domain name need not be UTF-8; dump() would throw on it. The name is only
    // shown in messages; the path is vmupdate's own (a canonical UUID below it).
    return json{{"session", handover_session}, {"kernel", release}, {"files", files}}.dump(
               1, ' ', false, json::error_handler_t::replace) +
           "\n";
}

Result<std::vector<Entry>> parse_record(const std::string& text, const std::string& path) {
    auto j = json::parse(text, nullptr, false);
    auto bad = [&](std::string why) {
        return fail(Errc::invalid_input, path, "cannot read the RAM handover record", why);
    };
    if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_array())
        return bad("not a handover record");
    std::vector<Entry> out;
    for (const auto& f : j["files"]) {
        if (!f.is_object())
            return bad("a file entry is not an object");
        Entry e;
        try {
            e.token = f.at("token").get<std::uint64_t>();
            e.uuid = f.at("uuid").get<std::string>();
            e.domain = f.at("domain").get<std::string>();
            e.ram.name = f.at("name").get<std::string>();
            e.ram.preserved = f.at("preserved").get<std::string>();
            e.ram.size = f.at("size").get<std::uint64_t>();
            e.owner = FileOwner{f.at("uid").get<uid_t>(), f.at("gid").get<gid_t>(),
                                f.at("mode").get<mode_t>()};
            e.sums = f.value("sums", std::string());
        } catch (const json::exception& ex) {
            return bad(ex.what());
        }
        if (!is_canonical_uuid(e.uuid))
            return bad("invalid UUID " + e.uuid);
        if (e.sums.find_first_not_of("0123456789abcdef") != std::string::npos)
            return bad("invalid checksums for " + e.ram.name);
        out.push_back(std::move(e));
    }
    return out;
}

Result<void> write_back(const StateDir& state, const Entry& e, int fd) {
    auto got = rebuild_preserved_file(e.domain, fd, e.ram, e.owner, e.sums);
    if (!got)
        return std::unexpected(got.error());
    return record_rebuilt(state, e.uuid, *got);
}

} // namespace vmupdate::handover
