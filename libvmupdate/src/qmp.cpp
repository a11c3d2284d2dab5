// The QMP client: connecting, the handshake, commands and events over a
// socket, every read bounded in time and size. The messages' JSON is in
// qmp_message.cpp.
#include "vmupdate/qmp.hpp"

#include "fd.hpp"
#include "qmp_message.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iterator>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <utility>

namespace vmupdate {

using qmp::dump;
using qmp::event_time_us;
using qmp::excerpt;
using qmp::json;
using qmp::nested_deeper_than;
using qmp::parse;
using qmp::string_member;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Short: the restore helper's connection marks QEMU's start in the phase breakdown,
// and a connect() that fails costs microseconds.
constexpr milliseconds connect_retry_interval{2};

std::string timed_out(milliseconds timeout) {
    return "timed out after " + std::to_string(timeout.count()) + " ms";
}

Clock::time_point deadline_after(milliseconds timeout) {
    return Clock::now() + std::max(timeout, milliseconds::zero());
}

// Rounded up, so that poll() never wakes just before the deadline and spins.
int poll_timeout(Clock::time_point deadline) {
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero())
        return 0;
    auto ms = std::chrono::ceil<milliseconds>(left).count();
    return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
}

// 0 when `fd` is ready for `events`, ETIMEDOUT at the deadline, otherwise an errno.
int wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, poll_timeout(deadline));
        if (r > 0)
            return (p.revents & POLLNVAL) ? EBADF : 0;
        if (r == 0) {
            if (Clock::now() >= deadline)
                return ETIMEDOUT;
            continue;
        }
        if (errno != EINTR)
            return errno;
    }
}

struct QueuedEvent {
    std::string name;
    QmpEvent event;
};

} // namespace

struct QmpClient::Impl {
    Fd fd;
    std::string object;
    QmpLimits limits;
    size_t queued_bytes = 0; // data of the queued events
    std::string buffer;      // received bytes not yet consumed as messages
    size_t scanned = 0;      // prefix of buffer known to hold no newline
    std::deque<QueuedEvent> events;
    std::uint64_t next_id = 1;
    std::string broken; // why the stream can no longer be trusted; empty while it can

    // Marks the connection unusable: after a protocol error or a half-written request
    // we no longer know where the next message starts.
    std::unexpected<Error> break_off(Errc code, const std::string& step, std::string cause) {
        broken = cause;
        return fail(code, object, step, std::move(cause));
    }

    Result<void> check_usable(const std::string& step) const {
        if (broken.empty())
            return {};
        return fail(Errc::qmp, object, step,
                    "connection unusable after an earlier error: " + broken);
    }

    Result<void> send_all(std::string_view data, Clock::time_point deadline, milliseconds timeout,
                          const std::string& step) {
        size_t sent = 0;
        while (sent < data.size()) {
            if (int err = wait_for(fd.get(), POLLOUT, deadline); err != 0) {
                if (err != ETIMEDOUT)
                    return break_off(Errc::system, step, std::strerror(err));
                // A request cut short would be glued to the next one.
                if (sent > 0)
                    return break_off(Errc::timeout, step, timed_out(timeout));
                return fail(Errc::timeout, object, step, timed_out(timeout));
            }
            ssize_t n = ::send(fd.get(), data.data() + sent, data.size() - sent,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                    continue;
                if (errno == EPIPE || errno == ECONNRESET)
                    return break_off(Errc::qmp, step, "QEMU closed the connection");
                return break_off(Errc::system, step, std::strerror(errno));
            }
            sent += static_cast<size_t>(n);
        }
        return {};
    }

    // The next JSON object from the peer; blank lines are skipped.
    Result<json> read_message(Clock::time_point deadline, milliseconds timeout,
                              const std::string& step) {
        for (;;) {
            if (auto nl = buffer.find('\n', scanned); nl != std::string::npos) {
                std::string_view line(buffer.data(), nl);
                while (!line.empty() &&
                       (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
                    line.remove_suffix(1);
                if (line.empty()) {
                    buffer.erase(0, nl + 1);
                    scanned = 0;
                    continue;
                }
                if (line.size() > limits.max_message) {
                    buffer.clear();
                    scanned = 0;
                    return break_off(Errc::qmp, step, too_long());
                }
                if (nested_deeper_than(line, limits.max_depth)) {
                    buffer.clear();
                    scanned = 0;
                    return break_off(Errc::qmp, step,
                                     "JSON from QEMU nested deeper than " +
                                         std::to_string(limits.max_depth) + " levels");
                }
                json j = parse(line);
                bool garbage = j.is_discarded();
                std::string bad = garbage || !j.is_object() ? excerpt(line) : std::string();
                buffer.erase(0, nl + 1);
                scanned = 0;
                if (garbage)
                    return break_off(Errc::qmp, step, "malformed JSON from QEMU: " + bad);
                if (!j.is_object())
                    return break_off(Errc::qmp, step,
                                     "QEMU sent a JSON value that is not an object: " + bad);
                return j;
            }
            scanned = buffer.size();
            if (buffer.size() > limits.max_message) {
                buffer.clear();
                scanned = 0;
                return break_off(Errc::qmp, step, too_long());
            }
            // Checked here and not only by poll(): a peer that never stops sending
            // would otherwise keep the caller reading past its deadline.
            if (Clock::now() >= deadline)
                return fail(Errc::timeout, object, step, timed_out(timeout));
            if (int err = wait_for(fd.get(), POLLIN, deadline); err != 0) {
                if (err == ETIMEDOUT)
                    return fail(Errc::timeout, object, step, timed_out(timeout));
                return break_off(Errc::system, step, std::strerror(err));
            }
            constexpr size_t chunk = 64 * 1024;
            size_t old = buffer.size();
            buffer.resize(old + chunk);
            ssize_t n = ::recv(fd.get(), buffer.data() + old, chunk, MSG_DONTWAIT);
            buffer.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
            if (n == 0)
                return break_off(Errc::qmp, step, "QEMU closed the connection");
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                    continue;
                if (errno == ECONNRESET)
                    return break_off(Errc::qmp, step, "QEMU closed the connection");
                return break_off(Errc::system, step, std::strerror(errno));
            }
        }
    }

    std::string too_long() const {
        constexpr size_t mib = 1024 * 1024;
        return "message from QEMU longer than " +
               (limits.max_message % mib == 0 && limits.max_message > 0
                    ? std::to_string(limits.max_message / mib) + " MiB"
                    : std::to_string(limits.max_message) + " bytes");
    }

    // Queues an event message; returns false when `j` is not one. The oldest events
    // go when the queue exceeds its limits: nobody may be waiting for them.
    bool queue_if_event(const json& j) {
        const std::string* name = string_member(j, "event");
        if (name == nullptr)
            return false;
        auto data = j.find("data");
        events.push_back(
            {*name, {data == j.end() ? std::string("{}") : dump(*data), event_time_us(j)}});
        queued_bytes += events.back().name.size() + events.back().event.data.size();
        while (!events.empty() && (events.size() > limits.max_queued_events ||
                                   queued_bytes > limits.max_queued_event_bytes))
            pop_event(events.begin());
        return true;
    }

    // Removes a queued event and returns it.
    QmpEvent pop_event(std::deque<QueuedEvent>::iterator it) {
        queued_bytes -= it->name.size() + it->event.data.size();
        QmpEvent e = std::move(it->event);
        events.erase(it);
        return e;
    }

    // Refuses a peer that options.check_peer rejects; `fd` is a connected socket.
    Result<void> verify_peer(const QmpOptions& options) {
        if (!options.check_peer)
            return {};
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
            return fail_errno(errno, object, "cannot identify the QMP peer");
        return options.check_peer(QmpPeer{cred.pid, cred.uid, cred.gid});
    }

    Result<std::string> execute(std::string_view command, std::string_view arguments_json,
                                Clock::time_point deadline, milliseconds timeout) {
        std::string step = "QMP command " + std::string(command) + " failed";
        if (auto ok = check_usable(step); !ok)
            return std::unexpected(ok.error());
        if (command.empty())
            return fail(Errc::invalid_input, object, "QMP command failed", "empty command name");

        std::uint64_t id = next_id++;
        json request = {{"execute", std::string(command)}, {"id", id}};
        if (!arguments_json.empty()) {
            json args = parse(arguments_json);
            if (args.is_discarded() || !args.is_object())
                return fail(Errc::invalid_input, object, step,
                            "arguments are not a JSON object: " + excerpt(arguments_json));
            request["arguments"] = std::move(args);
        }
        if (auto sent = send_all(dump(request) + "\n", deadline, timeout, step); !sent)
            return std::unexpected(sent.error());

        for (;;) {
            auto message = read_message(deadline, timeout, step);
            if (!message)
                return std::unexpected(message.error());
            const json& j = *message;
            if (queue_if_event(j))
                continue;
            auto ret = j.find("return");
            auto err = j.find("error");
            if (ret == j.end() && err == j.end())
                continue; // nothing QEMU sends today; tolerate what a newer one might add
            // QEMU echoes the id; a different one is the late reply to a command that
            // timed out. A peer that echoes none can only be answering us.
            if (auto echoed = j.find("id"); echoed != j.end() && *echoed != json(id))
                continue;
            if (ret != j.end())
                return dump(*ret);
            const std::string* desc = err->is_object() ? string_member(*err, "desc") : nullptr;
            return fail(Errc::qmp, object, step, desc ? *desc : dump(*err));
        }
    }

    Result<void> handshake(Clock::time_point deadline, milliseconds timeout) {
        const std::string step = "cannot read the QMP greeting";
        auto greeting = read_message(deadline, timeout, step);
        if (!greeting)
            return std::unexpected(greeting.error());
        if (!greeting->contains("QMP"))
            return break_off(Errc::qmp, step, "not a QMP greeting: " + excerpt(dump(*greeting)));
        if (auto r = execute("qmp_capabilities", {}, deadline, timeout); !r)
            return std::unexpected(r.error());
        return {};
    }
};

QmpClient::QmpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QmpClient::QmpClient(QmpClient&&) noexcept = default;
QmpClient& QmpClient::operator=(QmpClient&&) noexcept = default;
QmpClient::~QmpClient() = default;

namespace {

// A connected socket as a client: the peer checked, then the greeting read and
// the capabilities negotiated by `deadline`.
Result<std::unique_ptr<QmpClient::Impl>> negotiate(Fd fd, std::string object_name,
                                                   const QmpOptions& options,
                                                   Clock::time_point deadline,
                                                   milliseconds timeout) {
    auto impl = std::make_unique<QmpClient::Impl>();
    impl->fd = std::move(fd);
    impl->object = std::move(object_name);
    impl->limits = options.limits;
    if (auto ok = impl->verify_peer(options); !ok)
        return std::unexpected(ok.error());
    if (auto ok = impl->handshake(deadline, timeout); !ok)
        return std::unexpected(ok.error());
    return impl;
}

} // namespace

Result<QmpClient> QmpClient::adopt(int fd, std::string object_name, milliseconds timeout,
                                   const QmpOptions& options) {
    auto impl =
        negotiate(Fd(fd), std::move(object_name), options, deadline_after(timeout), timeout);
    if (!impl)
        return std::unexpected(impl.error());
    return QmpClient(std::move(*impl));
}

Result<QmpClient> QmpClient::connect(const std::string& socket_path, milliseconds timeout,
                                     const QmpOptions& options) {
    const std::string step = "cannot connect to QMP socket";
    auto deadline = deadline_after(timeout);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
        return fail(Errc::invalid_input, socket_path, step,
                    "a unix socket path must have 1 to " +
                        std::to_string(sizeof(addr.sun_path) - 1) + " characters");
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());

    for (;;) {
        // Non-blocking, so that a listener with a full backlog cannot stall connect().
        Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!sock)
            return fail_errno(errno, socket_path, step);
        int r;
        do
            r = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
        while (r != 0 && errno == EINTR);
        if (r == 0) {
            auto impl = negotiate(std::move(sock), socket_path, options, deadline, timeout);
            if (!impl)
                return std::unexpected(impl.error());
            return QmpClient(std::move(*impl));
        }
        int err = errno;
        // Not there yet, there but not listening yet, or its backlog is full.
        if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
            return fail_errno(err, socket_path, step);
        auto now = Clock::now();
        if (now >= deadline)
            return fail(Errc::timeout, socket_path, step,
                        std::string(std::strerror(err)) + ", " + timed_out(timeout));
        std::this_thread::sleep_for(
            std::min<Clock::duration>(connect_retry_interval, deadline - now));
    }
}

Result<std::string> QmpClient::execute(std::string_view command, std::string_view arguments_json,
                                       milliseconds timeout) {
    return impl_->execute(command, arguments_json, deadline_after(timeout), timeout);
}

Result<QmpEvent> QmpClient::wait_event(std::string_view name, milliseconds timeout) {
    auto deadline = deadline_after(timeout);
    std::string step = "QMP event " + std::string(name) + " did not arrive";
    auto& events = impl_->events;
    if (auto it = std::find_if(events.begin(), events.end(),
                               [&](const QueuedEvent& e) { return e.name == name; });
        it != events.end())
        return impl_->pop_event(it);
    if (auto ok = impl_->check_usable(step); !ok)
        return std::unexpected(ok.error());
    for (;;) {
        auto message = impl_->read_message(deadline, timeout, step);
        if (!message)
            return std::unexpected(message.error());
        // Replies here can only be late ones to commands that timed out.
        if (!impl_->queue_if_event(*message))
            continue;
        if (!events.empty() && events.back().name == name)
            return impl_->pop_event(std::prev(events.end()));
    }
}

const std::string& QmpClient::object_name() const {
    return impl_->object;
}

} // namespace vmupdate
