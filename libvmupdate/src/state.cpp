#include "vmupdate/state.hpp"

#include "fd.hpp"
#include "fsutil.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace vmupdate {
namespace {

constexpr mode_t dir_mode = 0700;
constexpr mode_t file_mode = 0600;
// Manifests hold a few paths per RAM file; anything near this is not ours.
constexpr std::size_t max_manifest_size = 1 << 20;
constexpr std::string_view manifest_suffix = ".xml";

// Paths are built from UUIDs only after this check: a name like "../x" must
// never reach the file system.
Result<void> check_uuid(std::string_view uuid) {
    if (is_canonical_uuid(uuid))
        return {};
    return fail(Errc::invalid_input, std::string(uuid), "invalid domain UUID",
                "expected the canonical form: 36 lowercase hex digits and dashes "
                "(8-4-4-4-12)");
}

// A lock file in the root-only locks/ directory, open.
struct LockFile {
    std::string path;
    Fd fd;
};

// Opens (creating) lock file locks/<uuid><suffix> of state directory `root`;
// the UUID is checked first.
Result<LockFile> open_lock_file(const std::string& root, std::string_view uuid,
                                std::string_view suffix) {
    if (auto r = check_uuid(uuid); !r)
        return std::unexpected(r.error());
    LockFile lock{root + "/locks/" + std::string(uuid) + std::string(suffix), Fd()};
    int raw;
    do
        raw = ::open(lock.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, file_mode);
    while (raw < 0 && errno == EINTR);
    lock.fd.reset(raw);
    if (!lock.fd)
        return fail_errno(errno, lock.path, "cannot open lock file");
    return lock;
}

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};

} // namespace

DomainLock::DomainLock(DomainLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), uuid_(std::move(other.uuid_)) {}

DomainLock& DomainLock::operator=(DomainLock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_); // releases the lock held so far
        fd_ = std::exchange(other.fd_, -1);
        uuid_ = std::move(other.uuid_);
    }
    return *this;
}

// Closing the last descriptor of the open file releases the flock.
DomainLock::~DomainLock() {
    if (fd_ >= 0)
        ::close(fd_);
}

Result<StateDir> StateDir::open(std::string path) {
    if (path.empty())
        return fail(Errc::invalid_input, "", "cannot open state directory", "empty path");
    // Owned by whoever runs vmupdate (root in production): chown fixes a
    // directory left with another owner when root, and fails loudly otherwise.
    Owner owner{::geteuid(), ::getegid()};
    if (auto r = make_dir(path, dir_mode, owner); !r)
        return std::unexpected(r.error());
    for (const char* sub : {"/manifests", "/locks", "/pause"})
        if (auto r = make_dir(path + sub, dir_mode, owner); !r)
            return std::unexpected(r.error());
    return StateDir(std::move(path));
}

bool StateDir::has_manifest(const std::string& path, std::string_view uuid) {
    if (!check_uuid(uuid))
        return false;
    struct stat st {};
    std::string file = path + "/manifests/" + std::string(uuid) + std::string(manifest_suffix);
    return ::lstat(file.c_str(), &st) == 0;
}

Result<std::optional<Manifest>> StateDir::load(std::string_view uuid) const {
    if (auto r = check_uuid(uuid); !r)
        return std::unexpected(r.error());
    std::string file = path_ + "/manifests/" + std::string(uuid) + std::string(manifest_suffix);
    auto text = read_file_if_exists(file, max_manifest_size);
    if (!text)
        return std::unexpected(text.error());
    if (!*text)
        return std::nullopt;
    auto manifest = parse_manifest(**text, file);
    if (!manifest)
        return std::unexpected(manifest.error());
    // A manifest filed under another domain's name was moved or copied by hand;
    // acting on it could restore the wrong guest.
    if (manifest->uuid != uuid)
        return fail(Errc::invalid_input, file, "cannot read manifest",
                    "it describes domain " + manifest->uuid + ", not " + std::string(uuid));
    return std::optional<Manifest>(std::move(*manifest));
}

Result<void> StateDir::store(const Manifest& manifest) const {
    if (auto r = check_uuid(manifest.uuid); !r)
        return r;
    std::string text = format_manifest(manifest);
    std::string file = path_ + "/manifests/" + manifest.uuid + std::string(manifest_suffix);
    // A manifest that cannot be read back is a lost guest after the update:
    // refuse it now, while the caller can still report it.
    auto back = parse_manifest(text, file);
    if (!back) {
        back.error().step = "cannot store manifest: " + back.error().step;
        return std::unexpected(back.error());
    }
    // last_error is prose for operators; a replaced stray byte is harmless there.
    back->last_error = manifest.last_error;
    if (*back != manifest)
        return fail(Errc::invalid_input, file, "cannot store manifest",
                    "a field holds characters XML cannot carry (invalid UTF-8 or control "
                    "characters)");
    return write_file_atomic(file, text, file_mode);
}

Result<std::optional<Manifest>>
StateDir::update(std::string_view uuid, const std::function<bool(Manifest&)>& change) const {
    // Not the domain lock: the CLI holds that across a whole restore, during which
    // libvirt runs the hook and the helper, which must update the manifest too.
    auto lock = open_lock_file(path_, uuid, ".manifest");
    if (!lock)
        return std::unexpected(lock.error());
    // Held for one load and store only (milliseconds): a blocking lock is fine.
    int r;
    do
        r = ::flock(lock->fd.get(), LOCK_EX);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return fail_errno(errno, lock->path, "cannot lock");
    auto loaded = load(uuid);
    if (!loaded || !*loaded)
        return loaded;
    Manifest m = std::move(**loaded);
    if (!change(m))
        return std::optional<Manifest>(std::move(m));
    if (auto ok = store(m); !ok)
        return std::unexpected(ok.error());
    return std::optional<Manifest>(std::move(m));
}

Result<void> StateDir::remove(std::string_view uuid) const {
    if (auto r = check_uuid(uuid); !r)
        return r;
    std::string dir = path_ + "/manifests";
    std::string file = dir + "/" + std::string(uuid) + std::string(manifest_suffix);
    if (::unlink(file.c_str()) < 0 && errno != ENOENT)
        return fail_errno(errno, file, "cannot remove manifest");
    // Also when it was absent: an earlier unlink may not have reached the disk.
    return fsync_path(dir);
}

Result<std::vector<Manifest>> StateDir::list() const {
    std::string dir = path_ + "/manifests";
    std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
    if (!d)
        return fail_errno(errno, dir, "cannot list manifests");
    std::vector<std::string> uuids;
    for (;;) {
        errno = 0;
        dirent* e = ::readdir(d.get());
        if (e == nullptr) {
            if (errno != 0)
                return fail_errno(errno, dir, "cannot list manifests");
            break;
        }
        // Temporary files from write_file_atomic start with '.', and anything
        // else not named <uuid>.xml is not a manifest.
        std::string_view entry = e->d_name;
        if (!entry.ends_with(manifest_suffix))
            continue;
        entry.remove_suffix(manifest_suffix.size());
        if (is_canonical_uuid(entry))
            uuids.emplace_back(entry);
    }
    std::sort(uuids.begin(), uuids.end());
    std::vector<Manifest> out;
    for (const std::string& uuid : uuids) {
        auto m = load(uuid);
        if (!m)
            return std::unexpected(m.error());
        // Removed between readdir and load: no longer stored, so not listed.
        if (*m)
            out.push_back(std::move(**m));
    }
    return out;
}

Result<DomainLock> StateDir::lock(std::string_view uuid, std::chrono::milliseconds wait) const {
    // Lock files are never removed: unlinking one while another process waits
    // on it would let a third lock a new file and both proceed.
    auto file = open_lock_file(path_, uuid, ".lock");
    if (!file)
        return std::unexpected(file.error());

    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + wait;
    constexpr auto poll = std::chrono::milliseconds(10);
    // flock() cannot time out by itself; a blocking call would need a signal
    // to interrupt it, so poll instead.
    for (;;) {
        if (::flock(file->fd.get(), LOCK_EX | LOCK_NB) == 0)
            return DomainLock(file->fd.release(), std::string(uuid));
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return fail_errno(errno, file->path, "cannot lock");
        auto now = clock::now();
        if (now >= deadline)
            return fail(Errc::busy, std::string(uuid), "cannot lock domain",
                        "another vmupdate run holds domain " + std::string(uuid));
        std::this_thread::sleep_for(std::min<clock::duration>(poll, deadline - now));
    }
}

Result<void> StateDir::record_pause(std::string_view uuid, std::int64_t pause_us) const {
    if (auto r = check_uuid(uuid); !r)
        return r;
    if (pause_us < 0)
        return fail(Errc::invalid_input, std::string(uuid), "cannot record guest pause",
                    "negative duration " + std::to_string(pause_us));
    return write_file_atomic(path_ + "/pause/" + std::string(uuid), std::to_string(pause_us) + "\n",
                             file_mode);
}

Result<std::optional<std::int64_t>> StateDir::last_pause(std::string_view uuid) const {
    if (auto r = check_uuid(uuid); !r)
        return std::unexpected(r.error());
    std::string file = path_ + "/pause/" + std::string(uuid);
    auto text = read_file_if_exists(file, 64);
    if (!text)
        return std::unexpected(text.error());
    if (!*text)
        return std::nullopt;
    std::string_view s = **text;
    if (s.ends_with('\n'))
        s.remove_suffix(1);
    std::int64_t value{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < 0)
        return fail(Errc::invalid_input, file, "cannot read last guest pause",
                    "'" + std::string(s) + "' is not a non-negative number of microseconds");
    return std::optional<std::int64_t>(value);
}

} // namespace vmupdate
