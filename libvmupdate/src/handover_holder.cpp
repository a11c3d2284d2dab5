#include "handover_holder.hpp"

#include "fsutil.hpp"
#include "process.hpp"
#include "spawn.hpp"
#include "vmupdate/handover.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace vmupdate {
namespace {

using json = nlohmann::json;

// One file of the holder's record.
struct HeldEntry {
    std::uint64_t token{};
    int fd{-1};
    std::uint64_t dev{}, ino{};
};

// The holder's record: its PID and what it holds.
struct HeldRecord {
    pid_t pid{};
    std::vector<HeldEntry> files;
};

Result<std::optional<HeldRecord>> load_record(const Paths& paths) {
    const std::string path = handover::held_record_path(paths);
    auto text = read_file_if_exists(path, 1 << 22);
    if (!text)
        return std::unexpected(text.error());
    if (!*text)
        return std::nullopt;
    auto j = json::parse(**text, nullptr, false);
    HeldRecord r;
    try {
        r.pid = j.at("pid").get<pid_t>();
        for (const auto& f : j.at("files"))
            r.files.push_back({f.at("token").get<std::uint64_t>(), f.at("fd").get<int>(),
                               f.at("dev").get<std::uint64_t>(), f.at("ino").get<std::uint64_t>()});
    } catch (const json::exception& e) {
        return fail(Errc::invalid_input, path, "cannot read the RAM holder's record", e.what());
    }
    if (r.pid <= 1)
        return fail(Errc::invalid_input, path, "cannot read the RAM holder's record", "bad PID");
    return r;
}

// Opens descriptor `fd` of process `pid` anew (root may, as with any file it
// could open) and checks it is the recorded file.
Result<Fd> reopen(pid_t pid, int fd, std::uint64_t dev, std::uint64_t ino) {
    std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    int raw;
    do
        raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    while (raw < 0 && errno == EINTR);
    if (raw < 0)
        return fail_errno(errno, path, "cannot reopen held RAM");
    Fd file(raw);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0)
        return fail_errno(errno, path, "cannot examine held RAM");
    if (!S_ISREG(st.st_mode) || (dev != 0 && static_cast<std::uint64_t>(st.st_dev) != dev) ||
        (ino != 0 && static_cast<std::uint64_t>(st.st_ino) != ino))
        return fail(Errc::verify, path, "cannot reopen held RAM", "not the file recorded");
    return file;
}

std::string self_exe(const Paths& paths) {
    if (!paths.self_exe.empty())
        return paths.self_exe;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    return n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : "";
}

// Waits until the holder's record names every token of `files`; its PID.
Result<pid_t> wait_held(const Paths& paths, const std::vector<handover::HeldFile>& files,
                        pid_t not_pid) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string last = "no record";
    for (;;) {
        auto r = load_record(paths);
        if (r && *r && (*r)->pid != not_pid && ::kill((*r)->pid, 0) == 0) {
            std::size_t found = 0;
            for (const auto& f : files)
                for (const auto& e : (*r)->files)
                    found += e.token == f.token ? 1 : 0;
            if (found == files.size())
                return (*r)->pid;
            last = "it holds " + std::to_string(found) + " of " + std::to_string(files.size());
        } else if (!r) {
            last = r.error().message();
        }
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, "vmupdate ram-hold", "the RAM holder did not start",
                        last + " after 30 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

} // namespace

namespace handover {

std::string ram_names(const std::vector<const Entry*>& entries) {
    std::string names;
    for (const Entry* e : entries)
        names += (names.empty() ? "" : ", ") + e->domain + " (" + e->ram.name + ")";
    return names;
}

Error with_holder(Error err, const std::string& names, const Result<pid_t>& holder) {
    if (!holder) {
        err.code = Errc::ram_lost;
        err.cause += "; and the RAM of " + names + " cannot be kept for a retry (" +
                     holder.error().message() + "): it is lost when vmupdate exits";
        return err;
    }
    if (err.code != Errc::ram_lost)
        err.code = Errc::ram_held;
    err.cause += "; the RAM of " + names + " " + std::string(held_marker) + " (PID " +
                 std::to_string(*holder) +
                 "), nothing of it was freed: remove the cause, then run `vmupdate restore` "
                 "again";
    return err;
}

std::string held_record_path(const Paths& paths) {
    return paths.run_dir + "/ram-held.json";
}

Result<pid_t> keep_held(const Paths& paths, const std::vector<HeldFile>& files) {
    std::string exe = self_exe(paths);
    if (exe.empty())
        return fail_errno(errno, "/proc/self/exe", "cannot find vmupdate's own binary");
    // One holder at a time: a live one is asked for its files first (reclaim),
    // and no handover starts while its record is there.
    pid_t old = 0;
    if (auto r = load_record(paths); r && *r) {
        old = (*r)->pid;
        if (::kill(old, 0) == 0)
            return fail(Errc::busy, "vmupdate ram-hold", "cannot start a RAM holder",
                        "PID " + std::to_string(old) + " still holds RAM not written back");
    }
    std::vector<std::string> args{"ram-hold", "--", paths.run_dir, std::to_string(::getpid())};
    for (const auto& f : files)
        args.push_back(std::to_string(f.token) + ":" + std::to_string(f.fd));
    Result<void> started;
    if (::access("/run/systemd/system", F_OK) == 0) {
        // A service of its own: neither the end of vmupdate-restore.service nor
        // the operator's shell takes it along.
        std::vector<std::string> argv{"systemd-run",
                                      "--unit=vmupdate-ram-hold-" + std::to_string(::getpid()),
                                      "--property=KillMode=process",
                                      "--collect",
                                      "--quiet",
                                      "--",
                                      exe};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run_checked(argv, std::chrono::seconds(30));
        started = r ? Result<void>{} : Result<void>(std::unexpected(r.error()));
    } else {
        started = spawn_detached(exe, args, "the RAM holder");
    }
    if (!started)
        return std::unexpected(started.error());
    return wait_held(paths, files, old);
}

Result<std::optional<std::map<std::uint64_t, Fd>>> open_held_files(const Paths& paths) {
    auto r = load_record(paths);
    if (!r)
        return std::unexpected(r.error());
    if (!*r)
        return std::nullopt;
    const HeldRecord& rec = **r;
    if (::kill(rec.pid, 0) != 0 && errno == ESRCH)
        return fail(Errc::ram_lost, "vmupdate ram-hold", "the RAM still to be written back is gone",
                    "its holder (PID " + std::to_string(rec.pid) + ") has ended");
    std::map<std::uint64_t, Fd> out;
    for (const auto& e : rec.files) {
        auto fd = reopen(rec.pid, e.fd, e.dev, e.ino);
        if (!fd) {
            fd.error().code = Errc::ram_lost;
            return std::unexpected(fd.error());
        }
        out.emplace(e.token, std::move(*fd));
    }
    return out;
}

Result<pid_t> holder_pid(const Paths& paths) {
    auto r = load_record(paths);
    if (!r)
        return std::unexpected(r.error());
    if (!*r)
        return fail(Errc::not_found, held_record_path(paths), "no RAM holder");
    return (*r)->pid;
}

Result<void> release_holder(const Paths& paths) {
    auto r = load_record(paths);
    if (!r)
        return std::unexpected(r.error());
    if (!*r)
        return {};
    if (::unlink(held_record_path(paths).c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, held_record_path(paths), "cannot remove the RAM holder's record");
    if (::kill((*r)->pid, SIGTERM) != 0 && errno != ESRCH)
        return fail_errno(errno, "PID " + std::to_string((*r)->pid), "cannot end the RAM holder");
    return {};
}

} // namespace handover

Result<void> hold_ram_files(const Paths& paths, pid_t from, const std::vector<std::string>& specs) {
    // Blocked first: from here on only a released record ends this process.
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&set, sig);
    if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0)
        return fail_errno(err, "vmupdate ram-hold", "cannot block signals");
    (void)!::chdir("/");
    std::vector<Fd> held;
    json files = json::array();
    for (const auto& spec : specs) {
        auto colon = spec.find(':');
        if (colon == std::string::npos)
            return fail(Errc::invalid_input, spec, "vmupdate ram-hold", "not TOKEN:FD");
        std::uint64_t token = 0;
        int fd = -1;
        try {
            token = std::stoull(spec.substr(0, colon));
            fd = std::stoi(spec.substr(colon + 1));
        } catch (const std::exception&) {
            return fail(Errc::invalid_input, spec, "vmupdate ram-hold", "not TOKEN:FD");
        }
        auto file = reopen(from, fd, 0, 0);
        if (!file)
            return std::unexpected(file.error());
        struct stat st {};
        if (::fstat(file->get(), &st) != 0)
            return fail_errno(errno, spec, "cannot examine held RAM");
        files.push_back({{"token", token},
                         {"fd", file->get()},
                         {"dev", static_cast<std::uint64_t>(st.st_dev)},
                         {"ino", static_cast<std::uint64_t>(st.st_ino)},
                         {"size", static_cast<std::uint64_t>(st.st_size)}});
        held.push_back(std::move(*file));
    }
    if (auto ok = make_dir(paths.run_dir, 0711); !ok)
        return ok;
    const std::string path = handover::held_record_path(paths);
    const pid_t self = ::getpid();
    if (auto ok =
            write_file_atomic(path, json{{"pid", self}, {"files", files}}.dump(1) + "\n", 0600);
        !ok)
        return ok;
    // Until the record is gone or names another holder: a stray SIGTERM (the
    // shutdown's included) must not free RAM nobody has written back.
    for (;;) {
        int sig = 0;
        while (sigwait(&set, &sig) != 0) {
        }
        auto r = load_record(paths);
        if (r && (!*r || (*r)->pid != self))
            return {};
    }
}

} // namespace vmupdate
