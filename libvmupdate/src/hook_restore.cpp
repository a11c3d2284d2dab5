// The hook at `restore begin`: a restore of an image vmupdate saved gets a
// private QMP monitor and a restore helper on it (restore_helper.hpp).
#include "clock.hpp"
#include "fd.hpp"
#include "fsutil.hpp"
#include "hook_ops.hpp"
#include "save_image.hpp"
#include "spawn.hpp"
#include "vmupdate/manifest.hpp"
#include "vmupdate/ram.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vmupdate {
namespace {

// getrandom(2) rather than std::random_device, which reports failure by throwing.
// The id only has to be unique per restore attempt.
Result<std::string> random_hex(size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    size_t got = 0;
    while (got < bytes) {
        ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(errno, "getrandom", "cannot make a restore attempt id");
        }
        got += static_cast<size_t>(n);
    }
    std::string out;
    static constexpr char digits[] = "0123456789abcdef";
    for (unsigned char b : raw) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

// A restore of an image vmupdate saved: its manifest and the image's check.
struct SavedImage {
    Manifest manifest;
    ImageCheck image;
};

// Only an image vmupdate saved is vmupdate's to restore (its checksum is in the
// manifest, or, for a save interrupted before vmupdate recorded it, libvirt's
// magic says the image is complete and QEMU's stream says it was written with
// x-ignore-shared); anything else is a stock restore.
std::optional<SavedImage> vmupdate_image(HookContext& c, const DomainInfo& info,
                                         const StateDir& state) {
    auto loaded = state.load(info.uuid);
    if (!loaded || !*loaded || (*loaded)->state == SaveState::restored) {
        strip_monitor(c);
        c.log("no vmupdate save recorded: stock restore");
        return std::nullopt;
    }
    auto image = check_image_for_restore(**loaded);
    if (!image) {
        strip_monitor(c);
        c.log("the managed-save image is not the one vmupdate saved (" + image.error().message() +
              "): stock restore");
        return std::nullopt;
    }
    if (!image->unverified.empty())
        c.log("interrupted save: " + image->unverified);
    return SavedImage{std::move(**loaded), std::move(*image)};
}

// Without the private monitor QEMU would refuse the stream anyway (capability
// mismatch); the refusal at start begin says why.
void refuse_at_start(HookContext& c, const DomainInfo& info, const StateDir& state,
                     const Error& e) {
    strip_monitor(c);
    auto ok = state.update(info.uuid, [&](Manifest& cur) {
        cur.state = SaveState::restoring;
        cur.attempt.clear();
        cur.last_error = "cannot restore: " + e.message();
        return true;
    });
    if (!ok)
        c.log("cannot record the refusal: " + ok.error().message());
    c.log("restore will be refused at start: " + e.message());
}

// One restore attempt: its id (`libvirt-<uuid>.<16 hex>`, is_attempt_of), the
// socket of its private monitor, the domain XML that gives QEMU that monitor,
// and the socket's listening descriptor, for the helper.
struct Attempt {
    std::string id, socket, xml;
    Fd listener;
};

// Root's socket for the monitor, listening before QEMU starts: QEMU connects
// to it (a client chardev), so no QEMU ever listens on a monitor another QEMU
// could reach. Mode 0660, group the QEMU user's; the helper tells the domain's
// QEMU from any other by its pid.
Result<Fd> listen_for_qemu(const std::string& socket, gid_t qemu_gid) {
    sockaddr_un addr{};
    if (socket.size() >= sizeof addr.sun_path)
        return fail(Errc::invalid_input, socket, "cannot make the monitor socket", "path too long");
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return fail_errno(errno, socket, "cannot make the monitor socket");
    // The directory is root's and new: nothing else can be at that name.
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::fchownat(AT_FDCWD, socket.c_str(), 0, qemu_gid, AT_SYMLINK_NOFOLLOW) != 0 ||
        ::fchmodat(AT_FDCWD, socket.c_str(), 0660, 0) != 0 || ::listen(fd.get(), 8) != 0)
        return fail_errno(errno, socket, "cannot make the monitor socket");
    return fd;
}

// The preserved RAM is intact; the attempt's socket directory (root's) and its
// listening socket are made, and the monitor added to the XML.
Result<Attempt> prepare_attempt(HookContext& c, const DomainInfo& info, const Manifest& m) {
    if (auto ok = verify_preserved(info.name, m.ram); !ok)
        return std::unexpected(ok.error());
    auto user = qemu_user(c.paths.qemu_conf);
    if (!user)
        return std::unexpected(user.error());
    auto hex = random_hex(8);
    if (!hex)
        return std::unexpected(hex.error());
    // Named after the domain's AppArmor profile: the rule that lets a confined
    // QEMU use its socket matches only its own domain's attempts.
    std::string attempt = apparmor_profile_name(info.uuid) + "." + *hex;
    std::string qmp_root = c.paths.run_dir + "/qmp";
    std::string dir = qmp_root + "/" + attempt;
    // All root's and only traversable: nobody else creates anything there.
    for (const auto& path : {c.paths.run_dir, qmp_root, dir})
        if (auto ok = make_dir(path, 0711); !ok)
            return std::unexpected(ok.error());
    std::string socket = dir + "/qmp.sock";
    auto restoring = restoring_qemu_xml(c.call.xml);
    if (!restoring)
        return std::unexpected(restoring.error());
    for (const auto& change : restoring->changes)
        c.log("restoring QEMU: " + change);
    auto xml = add_private_monitor(restoring->xml, socket);
    if (!xml)
        return std::unexpected(xml.error());
    auto listener = listen_for_qemu(socket, user->gid);
    if (!listener)
        return std::unexpected(listener.error());
    return Attempt{std::move(attempt), std::move(socket), std::move(*xml), std::move(*listener)};
}

// The manifest says `restoring`, by this attempt, from now (restore-begin).
Result<void> record_attempt(const DomainInfo& info, const StateDir& state, const Attempt& attempt,
                            const ImageCheck& image) {
    auto stored = state.update(info.uuid, [&](Manifest& cur) {
        cur.state = SaveState::restoring;
        cur.attempt = attempt.id;
        // An interrupted save gets what it lacked, so that retries compare against it.
        if (cur.image_sha256.empty()) {
            cur.image_size = image.size;
            cur.image_sha256 = image.sha256;
        }
        cur.timeline.push_back({"restore-begin", now_us()});
        cur.last_error.clear();
        return true;
    });
    if (!stored)
        return std::unexpected(stored.error());
    if (!*stored)
        return fail(Errc::verify, info.name, "cannot restore", "its manifest disappeared");
    return {};
}

} // namespace

// restore begin: only for an image vmupdate saved (vmupdate_image).
//
// This hook must never fail: when a restore hook exits non-zero, libvirt 11.3
// deletes the managed-save image and reports the start as successful, which
// loses the VM. A restore that must not go ahead is refused at `start begin`
// instead, where a failure keeps the image.
void on_restore(HookContext& c, const DomainInfo& info, const StateDir& state,
                const std::string& helper) {
    auto saved = vmupdate_image(c, info, state);
    if (!saved)
        return;
    auto attempt = prepare_attempt(c, info, saved->manifest);
    auto ok = attempt ? record_attempt(info, state, *attempt, saved->image)
                      : Result<void>(std::unexpected(attempt.error()));
    if (ok)
        ok = spawn_detached(helper, {info.uuid, attempt->id, attempt->socket, info.name},
                            "the restore helper", attempt->listener.get());
    if (!ok) {
        refuse_at_start(c, info, state, ok.error());
        return;
    }
    c.out.output = std::move(attempt->xml);
    c.log("restoring a vmupdate save: attempt " + attempt->id + ", helper on " + attempt->socket);
}

} // namespace vmupdate
