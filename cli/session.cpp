#include "session.hpp"

#include "vmupdate/interrupt.hpp"

#include <csignal>
#include <unistd.h>

namespace vmupdate::cli {
namespace {

// SIGINT (Ctrl-C), SIGTERM and SIGHUP (a dropped SSH session) would kill vmupdate
// between "guest stopped" and "save recorded". Instead, the save or restore under
// way finishes and no new one starts (vmupdate/interrupt.hpp); SIGKILL and crashes
// leave states that `vmupdate restore` completes.
extern "C" void on_interrupt(int) {
    vmupdate::request_interrupt();
    static constexpr char msg[] =
        "vmupdate: interrupted: finishing what is under way; each VM is left running or saved\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

} // namespace

Result<Session> open_session(const std::string& uri) {
    auto conn = Connection::open(uri);
    if (!conn)
        return std::unexpected(conn.error());
    auto events = EventWatch::start(*conn);
    if (!events)
        return std::unexpected(events.error());
    return Session{std::move(*conn), std::move(*events)};
}

void handle_interrupts() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        sigaction(sig, &sa, nullptr);
    // With the terminal gone, writes fail with EPIPE/EIO instead of killing us.
    signal(SIGPIPE, SIG_IGN);
}

} // namespace vmupdate::cli
