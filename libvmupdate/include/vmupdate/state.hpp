// vmupdate's state directory: save manifests, per-domain locks and the last
// measured guest pause, kept crash-safe across host updates.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/manifest.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmupdate {

/// The default state directory.
inline constexpr std::string_view default_state_dir = "/var/lib/vmupdate";

/// Exclusive right to act on one domain: an flock(LOCK_EX) on locks/<uuid>.lock,
/// released when the object is destroyed (or the process exits).
class DomainLock {
public:
    DomainLock(DomainLock&& other) noexcept;
    DomainLock& operator=(DomainLock&& other) noexcept;
    DomainLock(const DomainLock&) = delete;
    DomainLock& operator=(const DomainLock&) = delete;
    ~DomainLock();

    /// The UUID of the locked domain.
    [[nodiscard]] const std::string& uuid() const { return uuid_; }

private:
    friend class StateDir;
    DomainLock(int fd, std::string uuid) noexcept : fd_(fd), uuid_(std::move(uuid)) {}

    int fd_ = -1;
    std::string uuid_;
};

/// The state directory, laid out as manifests/<uuid>.xml, locks/<uuid>.lock and
/// pause/<uuid> (last measured guest pause in microseconds). Every UUID argument
/// must be canonical (is_canonical_uuid), else Errc::invalid_input.
class StateDir {
public:
    /// Whether a manifest is stored for `uuid` under `path`, without creating anything.
    [[nodiscard]] static bool has_manifest(const std::string& path, std::string_view uuid);

    /// Opens `path`, creating it and its subdirectories with mode 0700, owned by
    /// the effective user; Errc::refused when one of them is a symbolic link.
    [[nodiscard]] static Result<StateDir> open(std::string path);

    /// The manifest of a domain, or nullopt when none is stored.
    [[nodiscard]] Result<std::optional<Manifest>> load(std::string_view uuid) const;

    /// Stores a manifest crash-safely (mode 0600), replacing any previous one;
    /// Errc::invalid_input when it would not read back identically.
    [[nodiscard]] Result<void> store(const Manifest& manifest) const;

    /// Loads a domain's manifest, lets `change` edit it and stores it, all under a
    /// short lock of the manifest alone (locks/<uuid>.manifest), so that the hook,
    /// the restore helper and the CLI never overwrite each other's changes.
    /// `change` returns false to leave the manifest as it is; nullopt when none is
    /// stored (change is not called).
    [[nodiscard]] Result<std::optional<Manifest>>
    update(std::string_view uuid, const std::function<bool(Manifest&)>& change) const;

    /// Removes a domain's manifest durably; succeeds when there is none.
    [[nodiscard]] Result<void> remove(std::string_view uuid) const;

    /// Every stored manifest, ordered by UUID; a corrupt one is an error naming its file.
    [[nodiscard]] Result<std::vector<Manifest>> list() const;

    /// Locks a domain, retrying for up to `wait` (zero: try once); Errc::busy when
    /// another process or DomainLock holds it.
    [[nodiscard]] Result<DomainLock> lock(std::string_view uuid,
                                          std::chrono::milliseconds wait) const;

    /// Records the guest pause measured for a domain's last save/restore cycle.
    [[nodiscard]] Result<void> record_pause(std::string_view uuid, std::int64_t pause_us) const;

    /// The last recorded pause in microseconds, or nullopt when none is recorded.
    [[nodiscard]] Result<std::optional<std::int64_t>> last_pause(std::string_view uuid) const;

    /// The directory's path as given to open().
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    explicit StateDir(std::string path) : path_(std::move(path)) {}

    std::string path_;
};

} // namespace vmupdate
