#include "vmupdate/handover.hpp"

#include "fsutil.hpp"
#include "luo.hpp"
#include "preserved_file.hpp"
#include "process.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/ram.hpp"
#include "vmupdate/state.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

// The handover's crash story. The record (state_dir/handover.json) is written
// before any preserved file is unlinked and removed only once every file is a
// preserved file again; between the two the RAM of a file lives in an open
// memfd: this process's until the kexec, the LUO session's across it, and
// reclaim's until it is written back. A SIGKILL of host-update in that window,
// or of the reclaim before it wrote a file back, loses that RAM (the kernel frees
// a session whose file is closed); SIGINT, SIGTERM and SIGHUP are only flags in
// the CLI. The record lets a later `vmupdate restore` say which domains that
// was, instead of failing on a missing file without a reason.

namespace vmupdate {
namespace {

using json = nlohmann::json;

std::string record_path(const Paths& paths) {
    return paths.state_dir + "/handover.json";
}

// Serialises handovers and reclaims (the restore unit and an operator's
// `vmupdate restore` may run at once); held until the holder exits.
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

// One handed-over file: the manifest entry it came from, its token and owner.
struct Entry {
    std::string uuid, domain;
    RamFile ram;
    std::uint64_t token{};
    FileOwner owner;
};

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

Result<std::string> kernel_image_release(const std::string& path) {
    // The x86 boot protocol: "HdrS" at 0x202, and at 0x20E the offset (from 0x200)
    // of a NUL-terminated "RELEASE (builder) #VERSION ..." string, so within the
    // first 0x200 + 64 KiB.
    int fd;
    do
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(errno, path, "cannot read the kernel's release");
    Fd file(fd);
    std::string d(0x200 + 0x10000 + 128, '\0');
    std::size_t got = 0;
    while (got < d.size()) {
        ssize_t r = ::read(file.get(), d.data() + got, d.size() - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return fail_errno(errno, path, "cannot read the kernel's release");
        if (r == 0)
            break;
        got += static_cast<std::size_t>(r);
    }
    d.resize(got);
    if (d.size() < 0x210 || d.compare(0x202, 4, "HdrS") != 0)
        return fail(Errc::invalid_input, path, "cannot read the kernel's release",
                    "not an x86 bzImage");
    std::size_t at =
        0x200 + (static_cast<unsigned char>(d[0x20E]) | static_cast<unsigned char>(d[0x20F]) << 8);
    if (at >= d.size())
        return fail(Errc::invalid_input, path, "cannot read the kernel's release",
                    "its version string lies outside the image");
    std::size_t end = d.find_first_of(std::string_view(" \0", 2), at);
    std::string release = d.substr(at, end == std::string::npos ? 64 : end - at);
    if (release.empty() || release.size() > 64)
        return fail(Errc::invalid_input, path, "cannot read the kernel's release",
                    "no version string");
    return release;
}

std::string kernel_series(std::string_view release) {
    std::size_t dot = release.find('.');
    if (dot == std::string_view::npos)
        return std::string(release);
    std::size_t end = release.find_first_not_of("0123456789", dot + 1);
    return std::string(release.substr(0, end));
}

std::vector<std::string> handover_cmdline_offenders(std::string_view cmdline,
                                                    std::string_view which) {
    bool kho = false, luo = false;
    std::size_t pos = 0;
    while (pos <= cmdline.size()) {
        std::size_t end = cmdline.find(' ', pos);
        std::string_view w = cmdline.substr(pos, end == std::string_view::npos ? end : end - pos);
        // The last word wins, as in the kernel's parser.
        if (w.starts_with("kho="))
            kho = w == "kho=on" || w == "kho=1" || w == "kho=y";
        if (w.starts_with("liveupdate="))
            luo = w == "liveupdate=on" || w == "liveupdate=1" || w == "liveupdate=y";
        if (end == std::string_view::npos)
            break;
        pos = end + 1;
    }
    std::vector<std::string> out;
    if (!kho || !luo)
        out.push_back(std::string(which) + " kernel command line lacks " +
                      (!kho && !luo ? "kho=on liveupdate=on"
                       : !kho       ? "kho=on"
                                    : "liveupdate=on") +
                      ": guest RAM on tmpfs is handed over only by Kexec HandOver and LUO");
    return out;
}

std::vector<std::string> handover_offenders(const Paths& paths, const std::string& next_kernel,
                                            std::string_view next_cmdline) {
    std::vector<std::string> out;
    if (auto cur = read_file("/proc/cmdline", 1 << 16); cur) {
        auto more = handover_cmdline_offenders(*cur, "the running");
        out.insert(out.end(), more.begin(), more.end());
    }
    auto more = handover_cmdline_offenders(next_cmdline, "the new");
    out.insert(out.end(), more.begin(), more.end());
    if (auto dev = LuoDevice::open(paths.liveupdate_dev); !dev)
        out.push_back(dev.error().message());
    std::string now = running_release();
    if (auto next = kernel_image_release(next_kernel); !next)
        out.push_back(next.error().message());
    else if (kernel_series(*next) != kernel_series(now))
        out.push_back("the new kernel " + *next + " is not of the running kernel's series (" + now +
                      "): LUO's handover format is only kept within one series");
    return out;
}

struct RamHandover::Impl {
    Paths paths;
    Fd lock;
    std::optional<LuoDevice> device;
    std::optional<LuoSession> session;
    std::vector<Entry> entries;
    std::vector<Fd> files;    // open RAM files, one per entry
    std::size_t unlinked = 0; // entries[0, unlinked) exist only in files[]
    bool taken_back = false;

    // Ends the session (the kernel lets go of the pages) and writes every unlinked
    // file back; the record goes once all are back.
    Result<void> undo() {
        session.reset();
        device.reset();
        auto state = StateDir::open(paths.state_dir);
        if (!state)
            return std::unexpected(state.error());
        std::optional<Error> first;
        for (std::size_t i = 0; i < unlinked; ++i) {
            auto got = rebuild_preserved_file(entries[i].domain, files[i].get(), entries[i].ram,
                                              entries[i].owner);
            auto ok = got ? record_rebuilt(*state, entries[i].uuid, *got)
                          : Result<void>(std::unexpected(got.error()));
            if (!ok && !first)
                first = ok.error();
        }
        if (first)
            return std::unexpected(*first);
        taken_back = true;
        if (::unlink(record_path(paths).c_str()) != 0 && errno != ENOENT)
            return fail_errno(errno, record_path(paths), "cannot remove the RAM handover record");
        return {};
    }
};

RamHandover::RamHandover(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
RamHandover::RamHandover(RamHandover&&) noexcept = default;
RamHandover& RamHandover::operator=(RamHandover&&) noexcept = default;
RamHandover::~RamHandover() {
    // Only a kexec may end a handover without taking it back: closing the session
    // here would free the RAM of every file handed over.
    if (impl_ && !impl_->taken_back) {
        try {
            (void)impl_->undo();
        } catch (...) {
        }
    }
}

std::size_t RamHandover::files() const noexcept {
    return impl_ ? impl_->entries.size() : 0;
}

std::uint64_t RamHandover::bytes() const noexcept {
    std::uint64_t n = 0;
    if (impl_)
        for (const auto& e : impl_->entries)
            n += e.ram.size;
    return n;
}

Result<void> RamHandover::take_back() {
    if (!impl_ || impl_->taken_back)
        return {};
    return impl_->undo();
}

Result<RamHandover> hand_over_ram(const Paths& paths, const std::vector<std::string>& uuids) {
    auto impl = std::make_unique<RamHandover::Impl>();
    impl->paths = paths;
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto lock = lock_handover(paths);
    if (!lock)
        return std::unexpected(lock.error());
    impl->lock = std::move(*lock);
    // Every file open and checked before anything changes.
    std::uint64_t token = 1;
    for (const auto& uuid : uuids) {
        auto m = state->load(uuid);
        if (!m)
            return std::unexpected(m.error());
        if (!*m)
            return fail(Errc::not_found, uuid, "cannot hand over RAM", "no manifest");
        for (const auto& f : (*m)->ram) {
            Entry e{uuid, (*m)->name, f, token++, {}};
            auto fd = open_preserved_file(e.domain, f, e.owner);
            if (!fd)
                return std::unexpected(fd.error());
            impl->entries.push_back(std::move(e));
            impl->files.push_back(std::move(*fd));
        }
    }
    auto dev = LuoDevice::open(paths.liveupdate_dev);
    if (!dev)
        return std::unexpected(dev.error());
    auto session = dev->create_session(std::string(handover_session));
    if (!session)
        return std::unexpected(session.error());
    impl->device.emplace(std::move(*dev));
    impl->session.emplace(std::move(*session));
    if (auto ok = write_file_atomic(record_path(paths),
                                    format_record(running_release(), impl->entries), 0600);
        !ok)
        return std::unexpected(ok.error());
    for (std::size_t i = 0; i < impl->entries.size(); ++i) {
        const Entry& e = impl->entries[i];
        // LUO takes only shmem files without a name left (memfds, unlinked tmpfs files).
        auto step = unlink_preserved_file(e.domain, e.ram);
        if (step) {
            ++impl->unlinked;
            step = impl->session->preserve(impl->files[i].get(), e.token);
            if (!step)
                step.error().object = e.domain + ": " + e.ram.preserved;
        }
        if (!step) {
            Error err = step.error();
            if (auto back = impl->undo(); !back)
                err.cause += "; and writing the RAM back failed: " + back.error().message();
            else
                err.cause += "; the RAM was written back, the domains stay restorable";
            return std::unexpected(err);
        }
    }
    return RamHandover(std::move(impl));
}

namespace {

std::string status_path(const Paths& paths) {
    return paths.run_dir + "/handover.status";
}

constexpr const char* holder_unit = "vmupdate-handover.service";

// The holder's status line, once it has written one ("" before).
std::string holder_status(const Paths& paths) {
    auto text = read_file(status_path(paths), 1 << 16);
    if (!text)
        return "";
    std::string s = *text;
    while (!s.empty() && s.back() == '\n')
        s.pop_back();
    return s;
}

// Polls the status until `done` says so or `timeout` passes.
Result<std::string> wait_status(const Paths& paths, std::chrono::seconds timeout,
                                const std::function<bool(const std::string&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::string s = holder_status(paths);
        if (done(s))
            return s;
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, holder_unit, "no answer from the RAM handover holder",
                        "its status is '" + s + "' after " + std::to_string(timeout.count()) +
                            " s (journalctl -u " + holder_unit + ")");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

} // namespace

Result<void> hold_handover(const Paths& paths, const std::vector<std::string>& uuids) {
    // Blocked before anything is handed over: from then on a signal must take the
    // RAM back, never end the process (and the session with it).
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&set, sig);
    if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0)
        return fail_errno(err, holder_unit, "cannot block signals");
    if (auto ok = make_dir(paths.run_dir, 0711); !ok)
        return ok;
    auto say = [&](const std::string& line) {
        return write_file_atomic(status_path(paths), line + "\n", 0600);
    };
    auto h = hand_over_ram(paths, uuids);
    if (!h) {
        (void)say("failed: " + h.error().message());
        return std::unexpected(h.error());
    }
    if (auto ok = say("held " + std::to_string(h->files()) + " file(s), " +
                      std::to_string(h->bytes()) + " bytes");
        !ok) {
        Error e = ok.error();
        if (auto back = h->take_back(); !back)
            e.cause += "; and taking the RAM back failed: " + back.error().message();
        return std::unexpected(e);
    }
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    auto back = h->take_back();
    (void)say(back ? "taken back" : "take back failed: " + back.error().message());
    return back;
}

Result<void> start_handover_holder(const Paths& paths, const std::string& exe,
                                   const std::vector<std::string>& uuids) {
    if (::unlink(status_path(paths).c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, status_path(paths), "cannot remove an old handover status");
    // DefaultDependencies=no: no Conflicts=shutdown.target, so the shutdown into
    // the new kernel leaves the holder running until systemd-shutdown, which
    // spares it for its '@'.
    std::vector<std::string> argv{"systemd-run",
                                  "--unit=" + std::string(holder_unit),
                                  "--property=DefaultDependencies=no",
                                  "--property=KillMode=process",
                                  "--property=TimeoutStopSec=infinity",
                                  "--collect",
                                  "--quiet",
                                  "--",
                                  exe,
                                  "handover-hold",
                                  "--"};
    argv.insert(argv.end(), uuids.begin(), uuids.end());
    if (auto r = run_checked(argv, std::chrono::seconds(30)); !r) {
        r.error().step = "cannot start the RAM handover holder";
        return std::unexpected(r.error());
    }
    auto s = wait_status(paths, std::chrono::seconds(120),
                         [](const std::string& st) { return !st.empty(); });
    if (!s) {
        (void)stop_handover_holder(paths);
        return std::unexpected(s.error());
    }
    if (!s->starts_with("held "))
        return fail(Errc::system, holder_unit, "cannot hand the RAM over", *s);
    return {};
}

Result<void> stop_handover_holder(const Paths& paths) {
    if (auto r = run_checked({"systemctl", "kill", "--signal=SIGTERM", holder_unit},
                             std::chrono::seconds(30));
        !r) {
        r.error().step = "cannot call the RAM handover off";
        return std::unexpected(r.error());
    }
    // Writing the RAM back copies it: allow for a big guest.
    auto s = wait_status(paths, std::chrono::seconds(1800), [](const std::string& st) {
        return st == "taken back" || st.starts_with("take back failed") || st.starts_with("failed");
    });
    if (!s)
        return std::unexpected(s.error());
    if (*s != "taken back")
        return fail(Errc::system, holder_unit, "cannot take the RAM back", *s);
    return {};
}

Result<std::optional<ReclaimReport>> reclaim_handed_over_ram(const Paths& paths) {
    const std::string path = record_path(paths);
    // The common case, and the only one without root: nothing was handed over.
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT)
        return std::nullopt;
    auto lock = lock_handover(paths);
    if (!lock)
        return std::unexpected(lock.error());
    auto text = read_file(path, 1 << 22);
    if (!text) {
        if (text.error().code == Errc::not_found)
            return std::nullopt;
        return std::unexpected(text.error());
    }
    auto entries = parse_record(*text, path);
    if (!entries)
        return std::unexpected(entries.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto t0 = std::chrono::steady_clock::now();
    ReclaimReport report;
    auto note = [&](const Entry& e) {
        ++report.files;
        report.bytes += e.ram.size;
        if (std::find(report.uuids.begin(), report.uuids.end(), e.uuid) == report.uuids.end())
            report.uuids.push_back(e.uuid);
    };
    // The manifests say which preserved files exist now: those never unlinked
    // (the handover was cut short before the kexec) need nothing.
    std::vector<const Entry*> missing;
    for (const auto& e : *entries) {
        auto m = state->load(e.uuid);
        if (!m)
            return std::unexpected(m.error());
        if (!*m)
            continue; // the domain's save was discarded since
        auto it = std::find_if((*m)->ram.begin(), (*m)->ram.end(), [&](const RamFile& f) {
            return f.name == e.ram.name && f.preserved == e.ram.preserved;
        });
        if (it == (*m)->ram.end())
            continue;
        if (verify_preserved(e.domain, {*it}))
            continue;
        missing.push_back(&e);
    }
    if (!missing.empty()) {
        auto dev = LuoDevice::open(paths.liveupdate_dev);
        auto session = dev ? dev->retrieve_session(std::string(handover_session))
                           : Result<LuoSession>(std::unexpected(dev.error()));
        if (!session) {
            std::string names;
            for (const Entry* e : missing)
                names += (names.empty() ? "" : ", ") + e->domain + " (" + e->ram.name + ")";
            Error err = session.error();
            err.cause += "; the RAM handed over for " + names +
                         " is not here (the host did not kexec with LUO, or host-update was "
                         "killed before it): those domains cannot be restored";
            return std::unexpected(err);
        }
        // One file failing must not cost the others: the session frees whatever
        // is not retrieved once it is closed, so go on with the rest.
        auto one = [&](const Entry& e) -> Result<void> {
            auto memfd = session->retrieve(e.token);
            if (!memfd)
                return std::unexpected(memfd.error());
            struct stat st {};
            if (::fstat(memfd->get(), &st) != 0)
                return fail_errno(errno, e.domain, "cannot examine the RAM handed over");
            if (static_cast<std::uint64_t>(st.st_size) != e.ram.size)
                return fail(Errc::verify, e.domain, "RAM handed over for " + e.ram.name,
                            "is " + std::to_string(st.st_size) + " bytes, " +
                                std::to_string(e.ram.size) + " were handed over");
            auto got = rebuild_preserved_file(e.domain, memfd->get(), e.ram, e.owner);
            if (!got)
                return std::unexpected(got.error());
            return record_rebuilt(*state, e.uuid, *got);
        };
        std::optional<Error> first;
        for (const Entry* e : missing) {
            if (auto ok = one(*e); ok)
                note(*e);
            else if (!first)
                first = ok.error();
        }
        if (first) {
            first->cause += "; " + std::to_string(report.files) + " of " +
                            std::to_string(missing.size()) + " RAM files were written back";
            return std::unexpected(*first);
        }
        if (auto ok = session->finish(); !ok)
            return std::unexpected(ok.error());
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, path, "cannot remove the RAM handover record");
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
}

} // namespace vmupdate
