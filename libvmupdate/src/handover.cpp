// Handing guest RAM over to the next kernel: the pre-flight checks, the
// handover itself and the holder that keeps it through a systemd shutdown.
// Taking it back after the kexec is in handover_reclaim.cpp; what both share
// (the record and its crash story) in handover_record.hpp.
#include "vmupdate/handover.hpp"

#include "fsutil.hpp"
#include "handover_holder.hpp"
#include "handover_record.hpp"
#include "luo.hpp"
#include "preserved_file.hpp"
#include "process.hpp"
#include "ram_move.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/state.hpp"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <thread>
#include <unistd.h>

namespace vmupdate {

using handover::Entry;
using handover::format_record;
using handover::lock_handover;
using handover::record_path;
using handover::running_release;
using handover::write_back;

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
    auto got = read_full(file.get(), d.data(), d.size(), path, "cannot read the kernel's release");
    if (!got)
        return std::unexpected(got.error());
    d.resize(*got);
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
    // Checked again under the lock by hand_over_ram; here so that nothing is paused for it.
    if (::access(record_path(paths).c_str(), F_OK) == 0)
        out.push_back("an earlier RAM handover is not settled (" + record_path(paths) +
                      "): run `vmupdate restore` first");
    std::string now = running_release();
    if (auto next = kernel_image_release(next_kernel); !next)
        out.push_back(next.error().message());
    else if (kernel_series(*next) != kernel_series(now))
        out.push_back("the new kernel " + *next + " is not of the running kernel's series (" + now +
                      "): LUO's handover format is only kept within one series");
    return out;
}

struct RamHandover::Impl {
    // Where each entry's RAM is: handed over (in files[i] and the session), back
    // in a preserved file, or still in files[i] after a write-back that failed
    // (then a holder keeps it: never written back twice from one source).
    enum class Back { handed, written, failed };

    Paths paths;
    Fd lock;
    std::optional<LuoDevice> device;
    std::optional<LuoSession> session;
    std::vector<Entry> entries;
    std::vector<Fd> files;    // open RAM files, one per entry
    std::vector<Back> back;   // one per entry
    std::size_t unlinked = 0; // entries[0, unlinked) exist only in files[]
    bool taken_back = false;

    // Ends the session (the kernel lets go of the pages) and writes every unlinked
    // file back, once; the record goes once all are back. What cannot be written
    // back goes to a holder, for `vmupdate restore` to retry (Errc::ram_held).
    Result<void> undo() {
        session.reset();
        device.reset();
        taken_back = true;
        auto state = StateDir::open(paths.state_dir);
        if (!state)
            return std::unexpected(still_held(state.error()));
        std::optional<Error> first;
        for (std::size_t i = 0; i < unlinked; ++i) {
            if (back[i] != Back::handed)
                continue;
            auto ok = write_back(*state, entries[i], files[i].get());
            back[i] = ok ? Back::written : Back::failed;
            if (!ok && (!first || ok.error().code == Errc::ram_lost))
                first = ok.error();
        }
        if (first)
            return std::unexpected(still_held(*first));
        if (::unlink(record_path(paths).c_str()) != 0 && errno != ENOENT)
            return fail_errno(errno, record_path(paths), "cannot remove the RAM handover record");
        return {};
    }

    // Hands the RAM not written back to a holder; `err` says what happened.
    Error still_held(Error err) {
        std::vector<handover::HeldFile> keep;
        std::vector<const Entry*> kept;
        for (std::size_t i = 0; i < unlinked; ++i)
            if (back[i] != Back::written) {
                back[i] = Back::failed;
                keep.push_back({entries[i].token, files[i].get()});
                kept.push_back(&entries[i]);
            }
        if (keep.empty())
            return err;
        return handover::with_holder(std::move(err), handover::ram_names(kept),
                                     handover::keep_held(paths, keep));
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
    // An earlier handover not yet settled (its RAM still to be written back,
    // perhaps by a holder) must not lose its record to this one.
    if (::access(record_path(paths).c_str(), F_OK) == 0)
        return fail(Errc::refused, record_path(paths), "cannot hand over RAM",
                    "an earlier handover is not settled yet: run `vmupdate restore` first");
    // Every file open and checked before anything changes.
    std::uint64_t token = 1;
    for (const auto& uuid : uuids) {
        auto m = state->load(uuid);
        if (!m)
            return std::unexpected(m.error());
        if (!*m)
            return fail(Errc::not_found, uuid, "cannot hand over RAM", "no manifest");
        for (const auto& f : (*m)->ram) {
            Entry e{uuid, (*m)->name, f, token++, {}, {}};
            auto fd = open_preserved_file(e.domain, f, e.owner);
            if (!fd)
                return std::unexpected(fd.error());
            // Taken now, checked at the write-back: RAM that is not the guest's
            // (a source partly consumed, a corrupted handover) is never linked.
            auto sums = chunk_sums(fd->get(), f.size, e.domain + ": " + f.preserved);
            if (!sums)
                return std::unexpected(sums.error());
            e.sums = std::move(*sums);
            impl->entries.push_back(std::move(e));
            impl->files.push_back(std::move(*fd));
            impl->back.push_back(RamHandover::Impl::Back::handed);
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
    if (*s == "taken back")
        return {};
    // The holder's own take-back hands what it could not write back to a RAM
    // holder, and says so; anything else lost it.
    return fail(s->find(handover::held_marker) != std::string::npos ? Errc::ram_held
                                                                    : Errc::ram_lost,
                holder_unit, "cannot take the RAM back", *s);
}

} // namespace vmupdate
