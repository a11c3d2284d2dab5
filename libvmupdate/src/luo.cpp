#include "luo.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>

namespace vmupdate {
namespace {

// <linux/liveupdate.h> of Linux 6.19 to 7.2; Debian 12 and 13 ship older
// headers. The interface is not declared stable yet: host-update only hands RAM
// over between kernels of one series, which share it.
constexpr unsigned luo_type = 0xBA;
constexpr std::size_t luo_name_len = 64;

struct CreateSession {
    std::uint32_t size;
    std::int32_t fd;
    std::uint8_t name[luo_name_len];
};
struct SessionFd {
    std::uint32_t size;
    std::int32_t fd;
    alignas(8) std::uint64_t token;
};
struct SessionFinish {
    std::uint32_t size;
    std::uint32_t reserved;
};
static_assert(sizeof(CreateSession) == 72 && sizeof(SessionFd) == 16 && sizeof(SessionFinish) == 8);

constexpr unsigned long luo_create_session = _IO(luo_type, 0x00);
constexpr unsigned long luo_retrieve_session = _IO(luo_type, 0x01);
constexpr unsigned long luo_preserve_fd = _IO(luo_type, 0x40);
constexpr unsigned long luo_retrieve_fd = _IO(luo_type, 0x41);
constexpr unsigned long luo_finish = _IO(luo_type, 0x42);

int ioctl_retry(int fd, unsigned long request, void* arg) {
    int r;
    do
        r = ::ioctl(fd, request, arg);
    while (r < 0 && errno == EINTR);
    return r;
}

// The argument of both session ioctls (one layout for create and retrieve).
Result<CreateSession> session_arg(const std::string& name) {
    if (name.empty() || name.size() >= luo_name_len)
        return fail(Errc::invalid_input, name, "invalid LUO session name", "1 to 63 bytes");
    CreateSession arg{};
    arg.size = sizeof(arg);
    arg.fd = -1;
    std::memcpy(arg.name, name.data(), name.size());
    return arg;
}

} // namespace

Result<LuoDevice> LuoDevice::open(const std::string& path) {
    int fd;
    do
        fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ENODEV || err == ENXIO)
            return fail(Errc::not_found, path, "no Live Update Orchestrator",
                        "the kernel lacks CONFIG_LIVEUPDATE or was booted without liveupdate=on");
        if (err == EBUSY)
            return fail(Errc::busy, path, "cannot open the Live Update Orchestrator",
                        "another process holds it (only one may)");
        return fail_errno(err, path, "cannot open the Live Update Orchestrator");
    }
    return LuoDevice(Fd(fd), path);
}

Result<LuoSession> LuoDevice::create_session(const std::string& name) const {
    auto arg = session_arg(name);
    if (!arg)
        return std::unexpected(arg.error());
    if (ioctl_retry(fd_.get(), luo_create_session, &*arg) != 0)
        return fail_errno(errno, path_, "cannot create LUO session " + name);
    return LuoSession(Fd(arg->fd), name);
}

Result<LuoSession> LuoDevice::retrieve_session(const std::string& name) const {
    auto arg = session_arg(name);
    if (!arg)
        return std::unexpected(arg.error());
    if (ioctl_retry(fd_.get(), luo_retrieve_session, &*arg) != 0) {
        int err = errno;
        if (err == ENOENT)
            return fail(Errc::not_found, path_, "no LUO session " + name,
                        "the previous kernel handed none over");
        return fail_errno(err, path_, "cannot retrieve LUO session " + name);
    }
    return LuoSession(Fd(arg->fd), name);
}

Result<void> LuoSession::preserve(int fd, std::uint64_t token) const {
    SessionFd arg{sizeof(SessionFd), fd, token};
    if (ioctl_retry(fd_.get(), luo_preserve_fd, &arg) != 0)
        return fail_errno(errno, "LUO session " + name_,
                          "cannot preserve file " + std::to_string(token));
    return {};
}

Result<Fd> LuoSession::retrieve(std::uint64_t token) const {
    SessionFd arg{sizeof(SessionFd), -1, token};
    if (ioctl_retry(fd_.get(), luo_retrieve_fd, &arg) != 0)
        return fail_errno(errno, "LUO session " + name_,
                          "cannot retrieve file " + std::to_string(token));
    return Fd(arg.fd);
}

Result<void> LuoSession::finish() const {
    SessionFinish arg{sizeof(SessionFinish), 0};
    if (ioctl_retry(fd_.get(), luo_finish, &arg) != 0)
        return fail_errno(errno, "LUO session " + name_, "cannot finish the session");
    return {};
}

} // namespace vmupdate
