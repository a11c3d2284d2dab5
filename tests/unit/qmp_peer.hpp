// The QEMU end of a QMP connection, driven by a test script: shared by the QMP
// client's tests and the restore helper's.
#pragma once

#include <cstddef>
#include <cstring>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vmupdate::testing {

/// QEMU 10.0.2's greeting.
inline constexpr std::string_view qemu_greeting =
    R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}, "capabilities": ["oob"]}})";

// The QEMU end of a connection, driven by a test script.
class Peer {
public:
    explicit Peer(int fd) : fd_(fd) {}
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;
    ~Peer() { close_now(); }

    // Writes raw bytes; a client that went away is not an error here (false).
    bool send_raw(std::string_view text) {
        while (!text.empty() && fd_ >= 0) {
            ssize_t n = ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            text.remove_prefix(static_cast<size_t>(n));
        }
        return fd_ >= 0;
    }

    // Every byte the client has sent so far.
    size_t bytes_received() const { return received_; }

    // One message with QEMU's line ending.
    bool send(std::string_view message) { return send_raw(std::string(message) + "\r\n"); }

    // The next request line, parsed; discarded JSON on EOF or after 5 s.
    nlohmann::json request() {
        for (;;) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return nlohmann::json::parse(line, nullptr, false);
            }
            if (!read_some())
                return nlohmann::json::parse("", nullptr, false);
        }
    }

    // QEMU's side of the negotiation.
    void negotiate() {
        send(qemu_greeting);
        nlohmann::json req = request();
        EXPECT_EQ(req.value("execute", ""), "qmp_capabilities");
        send(R"({"return": {}, "id": )" + req.value("id", nlohmann::json()).dump() + "}");
    }

    // Stays silent until the client hangs up (or 5 s pass).
    void wait_closed() {
        while (read_some()) {
        }
    }

    void close_now() {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    bool read_some() {
        pollfd p{fd_, POLLIN, 0};
        if (fd_ < 0 || ::poll(&p, 1, 5000) <= 0)
            return false;
        char chunk[4096];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0)
            return false;
        buf_.append(chunk, static_cast<size_t>(n));
        received_ += static_cast<size_t>(n);
        return true;
    }

    int fd_;
    std::string buf_;
    size_t received_ = 0;
};

/// A bound unix socket at `path`, listening when `listen` is set; -1 on failure.
inline int bind_unix(const std::string& path, bool listen) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        (listen && ::listen(fd, 1) != 0)) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    return fd;
}

/// A stream socket connected to `path`, retried for up to 5 s while nothing
/// listens there yet; -1 on failure.
inline int connect_unix(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    for (int i = 0; i < 500; ++i) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0)
            return fd;
        ::close(fd);
        if (errno != ENOENT && errno != ECONNREFUSED)
            return -1;
        ::usleep(10000);
    }
    return -1;
}

/// Accepts one connection on `listener` (waiting up to 5 s) and plays QEMU on it.
inline void serve_once(int listener, const std::function<void(Peer&)>& script) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0)
        return;
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    Peer peer(fd);
    script(peer);
}

} // namespace vmupdate::testing
