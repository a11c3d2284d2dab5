// An owned file descriptor, for the modules that make system calls. Private header.
#pragma once

#include <unistd.h>

namespace vmupdate {

/// A move-only owner of a file descriptor; closes it on destruction.
class Fd {
public:
    /// No descriptor.
    Fd() noexcept = default;
    /// Takes ownership of `fd` (may be -1).
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        reset(other.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    /// The descriptor, still owned; -1 when empty.
    [[nodiscard]] int get() const noexcept { return fd_; }

    /// Gives up ownership and returns the descriptor.
    [[nodiscard]] int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

    /// Closes the current descriptor (if any) and takes ownership of `fd`.
    void reset(int fd = -1) noexcept {
        // Never retry close() on EINTR: on Linux the descriptor is released anyway
        // and a retry could close one that another thread has just been given.
        if (fd_ >= 0 && fd_ != fd)
            ::close(fd_);
        fd_ = fd;
    }

    /// Whether a descriptor is held.
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

} // namespace vmupdate
