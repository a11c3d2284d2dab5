// Saving and restoring several domains at once.
#include "vmupdate/interrupt.hpp"
#include "vmupdate/orchestrate.hpp"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

namespace vmupdate {
namespace {

// Runs fn(connection, i) for i in [0, n) on up to `parallel` threads. Each extra
// thread opens its own connection: libvirtd serves at most max_client_requests
// (5 by default) calls of one client at a time, and a save or restore call lasts
// its whole operation. Each domain is guarded by its own lock.
template <typename R, typename Fn>
std::vector<Result<R>> run_parallel(const Connection& conn, size_t n, unsigned parallel, Fn fn) {
    std::vector<std::optional<Result<R>>> slots(n);
    std::atomic<size_t> next{0};
    auto uri = conn.uri();
    auto worker = [&](bool own_connection) {
        std::optional<Connection> own;
        if (own_connection && uri)
            if (auto c = Connection::open(*uri))
                own.emplace(std::move(*c));
        const Connection& use = own ? *own : conn;
        for (size_t i = next++; i < n; i = next++)
            slots[i].emplace(fn(use, i));
    };
    {
        std::vector<std::jthread> threads;
        for (unsigned t = 1; t < std::max(1u, parallel) && t < n; ++t)
            threads.emplace_back(worker, true);
        worker(false);
    }
    std::vector<Result<R>> out;
    out.reserve(n);
    for (auto& s : slots)
        out.push_back(std::move(*s));
    return out;
}

} // namespace

std::vector<Result<SaveReport>> save_domains(const Connection& conn, const Paths& paths,
                                             const std::vector<std::string>& names,
                                             const EventWatch& events, unsigned parallel) {
    return run_parallel<SaveReport>(
        conn, names.size(), parallel, [&](const Connection& c, size_t i) -> Result<SaveReport> {
            // A save under way finishes; none starts after an interrupt.
            if (interrupt_requested())
                return fail(Errc::refused, names[i], "not saved",
                            "interrupted before its save started; it is still running");
            return save_domain(c, paths, names[i], events);
        });
}

std::vector<Result<RestoreReport>> restore_domains(const Connection& conn, const Paths& paths,
                                                   const std::vector<std::string>& names,
                                                   const EventWatch& events, unsigned parallel,
                                                   bool undoing) {
    return run_parallel<RestoreReport>(
        conn, names.size(), parallel, [&](const Connection& c, size_t i) -> Result<RestoreReport> {
            if (interrupt_requested() && !undoing)
                return fail(Errc::refused, names[i], "not restored",
                            "interrupted before its restore started; it stays saved: "
                            "'vmupdate restore " +
                                names[i] + "' restores it");
            return restore_domain(c, paths, names[i], events);
        });
}

} // namespace vmupdate
