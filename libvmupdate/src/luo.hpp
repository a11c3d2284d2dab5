// The Live Update Orchestrator's device (/dev/liveupdate, Linux >= 6.19): sessions
// of file descriptors, memfds among them, that the kernel hands to the next kernel
// across a kexec (Kexec HandOver). Private header.
#pragma once

#include "fd.hpp"
#include "vmupdate/error.hpp"

#include <cstdint>
#include <string>

namespace vmupdate {

/// A LUO session: files preserved for the next kernel (outgoing) or handed over
/// by the previous one (incoming). An outgoing session lasts while its fd is open
/// (until the kexec); closing an incoming one frees what was not retrieved.
class LuoSession {
public:
    /// Preserves `fd` (an unlinked shmem file) under `token`; from now on the
    /// file's size is frozen and its pages pinned.
    [[nodiscard]] Result<void> preserve(int fd, std::uint64_t token) const;

    /// The file handed over under `token`, as a new memfd.
    [[nodiscard]] Result<Fd> retrieve(std::uint64_t token) const;

    /// Ends an incoming session once everything was retrieved.
    [[nodiscard]] Result<void> finish() const;

    /// The session's file descriptor.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    friend class LuoDevice;
    LuoSession(Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
    Fd fd_;
    std::string name_;
};

/// /dev/liveupdate, open: the kernel lets one process at a time hold it.
class LuoDevice {
public:
    /// Opens the device; Errc::not_found when the kernel has no LUO or it is off
    /// (liveupdate=on missing), Errc::busy when another process holds it.
    [[nodiscard]] static Result<LuoDevice> open(const std::string& path);

    /// A new outgoing session; names are at most 63 bytes.
    [[nodiscard]] Result<LuoSession> create_session(const std::string& name) const;

    /// The incoming session of that name; Errc::not_found when the previous kernel
    /// handed over none.
    [[nodiscard]] Result<LuoSession> retrieve_session(const std::string& name) const;

private:
    LuoDevice(Fd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
    Fd fd_;
    std::string path_;
};

} // namespace vmupdate
