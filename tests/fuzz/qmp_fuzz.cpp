// Fuzz target for the QMP client's stream parsing: the input is everything a
// "QEMU" at the other end of a socketpair sends (greeting, replies, events),
// then it closes its side. The client negotiates, runs commands and waits for
// events as vmupdate does during a save; every call returns a value or an error
// promptly, never crashes, and what it returns is well-formed. The reply readers
// (capability_state, migration_status, migration_error) also get the whole input
// as JSON text and every reply the client returns.
#include "vmupdate/qmp.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using vmupdate::Errc;

// More than QEMU's replies need; what fits in a socket buffer without a writer thread.
constexpr size_t max_input = 64 * 1024;
// Long: the peer has closed its side after its last byte, so no call may wait at
// all, and one that waits out its timeout fails the input (see the end).
constexpr auto timeout = 5s;

bool is_json(std::string_view text) {
    return nlohmann::json::accept(text.begin(), text.end());
}

void check_error(const vmupdate::Error& e, std::initializer_list<Errc> allowed) {
    if (e.step.empty() || e.object.empty())
        std::abort();
    for (Errc c : allowed)
        if (e.code == c)
            return;
    std::abort();
}

// The readers accept JSON only, and fail with invalid input or, for a capability
// QEMU does not list, not found.
void read_replies(std::string_view text) {
    bool accepted = false;
    if (auto on = vmupdate::capability_state(text, "x-ignore-shared"); !on) {
        check_error(on.error(), {Errc::invalid_input, Errc::not_found});
        accepted = on.error().code == Errc::not_found;
    } else {
        accepted = true;
    }
    for (auto* reader : {&vmupdate::migration_status, &vmupdate::migration_error}) {
        if (auto s = reader(text); !s)
            check_error(s.error(), {Errc::invalid_input});
        else
            accepted = true;
    }
    if (accepted && !is_json(text))
        std::abort();
}

// A command's reply: QEMU's "return" as JSON text, or an error.
void check_reply(const vmupdate::Result<std::string>& r) {
    if (!r) {
        check_error(r.error(), {Errc::qmp, Errc::timeout});
        return;
    }
    if (!is_json(*r))
        std::abort();
    read_replies(*r);
}

void check_event(const vmupdate::Result<vmupdate::QmpEvent>& e) {
    if (!e) {
        check_error(e.error(), {Errc::qmp, Errc::timeout});
        return;
    }
    if (!is_json(e->data))
        std::abort();
    read_replies(e->data);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > max_input)
        return 0;
    std::string_view stream(reinterpret_cast<const char*>(data), size);
    read_replies(stream);

    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        std::abort();
    int qemu = sv[1];
    int buf = static_cast<int>(2 * max_input);
    ::setsockopt(qemu, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    ::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    ::fcntl(qemu, F_SETFL, O_NONBLOCK);
    for (size_t sent = 0; sent < size;) {
        ssize_t n = ::send(qemu, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0)
            std::abort(); // the buffer is too small for max_input
        sent += static_cast<size_t>(n);
    }
    ::shutdown(qemu, SHUT_WR);

    auto start = std::chrono::steady_clock::now();
    auto client = vmupdate::QmpClient::adopt(sv[0], "fuzz", timeout);
    if (!client) {
        check_error(client.error(), {Errc::qmp, Errc::timeout});
    } else {
        // What a save does: check the capability, migrate, wait for the end.
        check_reply(client->execute("query-migrate-capabilities", {}, timeout));
        check_reply(client->execute("migrate-set-capabilities",
                                    vmupdate::capability_arguments("x-ignore-shared", true),
                                    timeout));
        check_event(client->wait_event("STOP", timeout));
        check_event(client->wait_event("MIGRATION", timeout));
        check_reply(client->execute("query-migrate", {}, timeout));
        check_event(client->wait_event("MIGRATION", timeout));
        // Bad arguments are refused (or the connection already is unusable).
        auto bad = client->execute("cont", "[1]", timeout);
        if (bad)
            std::abort();
        check_error(bad.error(), {Errc::invalid_input, Errc::qmp});
        check_reply(client->execute("cont", {}, timeout));
    }
    ::close(qemu);
    // No call waited for a timeout (they take milliseconds, a wait takes 5 s).
    if (std::chrono::steady_clock::now() - start > 4s)
        std::abort();
    return 0;
}
