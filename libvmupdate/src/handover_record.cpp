#include "handover_record.hpp"

#include "fsutil.hpp"
#include "vmupdate/handover.hpp"

#include <cerrno>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/utsname.h>

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

} // namespace

std::string record_path(const Paths& paths) {
    return paths.state_dir + "/handover.json";
}

Result<Fd> lock_handover(const Paths& paths) {
    std::string path = paths.state_dir + "/handover.lock";
    int fd;
    do
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, path, "cannot lock the RAM handover");
    Fd lock(fd);
    int r;
    do
        r = ::flock(lock.get(), LOCK_EX);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        return fail_errno(errno, path, "cannot lock the RAM handover");
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
                         {"mode", e.owner.mode}});
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
        } catch (const json::exception& ex) {
            return bad(ex.what());
        }
        if (!is_canonical_uuid(e.uuid))
            return bad("invalid UUID " + e.uuid);
        out.push_back(std::move(e));
    }
    return out;
}

Result<void> write_back(const StateDir& state, const Entry& e, int fd) {
    auto got = rebuild_preserved_file(e.domain, fd, e.ram, e.owner);
    if (!got)
        return std::unexpected(got.error());
    return record_rebuilt(state, e.uuid, *got);
}

} // namespace vmupdate::handover
