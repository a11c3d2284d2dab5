#include "operation.hpp"

#include "vmupdate/manifest.hpp"
#include "vmupdate/qmp.hpp"

#include <nlohmann/json.hpp>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view capability = "x-ignore-shared";
constexpr auto lock_wait = 5s;

// libvirt's QMP passthrough returns QEMU's whole reply; a QMP error is not a
// libvirt error, so look inside.
Result<std::string> monitor(const Domain& dom, std::string_view command,
                            std::string_view arguments = {}) {
    std::string cmd = "{\"execute\":\"" + std::string(command) + "\"";
    if (!arguments.empty())
        cmd += ",\"arguments\":" + std::string(arguments);
    cmd += "}";
    auto reply = dom.qemu_monitor_command(cmd);
    if (!reply)
        return std::unexpected(reply.error());
    auto j = nlohmann::json::parse(*reply, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return fail(Errc::qmp, dom.name(), "QMP " + std::string(command),
                    "unreadable reply from QEMU");
    if (auto e = j.find("error"); e != j.end()) {
        std::string desc = e->is_object() && e->contains("desc") && (*e)["desc"].is_string()
                               ? (*e)["desc"].get<std::string>()
                               : e->dump();
        return fail(Errc::qmp, dom.name(), "QMP " + std::string(command) + " failed", desc);
    }
    auto r = j.find("return");
    return r == j.end() ? std::string("{}") : r->dump();
}

} // namespace

double seconds_since(SteadyClock::time_point t0) {
    return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

QmpCall qmp_call(const Domain& dom) {
    return [&dom](std::string_view command, std::string_view arguments) {
        return monitor(dom, command, arguments);
    };
}

Result<DomainLock> lock_domain(const StateDir& state, const Domain& dom, std::string_view step) {
    if (!is_canonical_uuid(dom.uuid()))
        return fail(Errc::refused, dom.name(), std::string(step),
                    "libvirt reports no canonical UUID");
    auto lock = state.lock(dom.uuid(), lock_wait);
    if (!lock)
        lock.error().object = dom.name();
    return lock;
}

Result<LockedDomain> lookup_and_lock(const Connection& conn, const Paths& paths,
                                     std::string_view name, std::string_view step) {
    auto dom = conn.lookup(name);
    if (!dom)
        return std::unexpected(dom.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto lock = lock_domain(*state, *dom, step);
    if (!lock)
        return std::unexpected(lock.error());
    return LockedDomain{std::move(*dom), std::move(*state), std::move(*lock)};
}

Result<bool> ignore_shared_on(const Domain& dom) {
    auto caps = monitor(dom, "query-migrate-capabilities");
    if (!caps)
        return std::unexpected(caps.error());
    return capability_state(*caps, capability);
}

Result<void> set_ignore_shared(const Domain& dom, bool on) {
    if (auto r = monitor(dom, "migrate-set-capabilities", capability_arguments(capability, on)); !r)
        return std::unexpected(r.error());
    auto caps = monitor(dom, "query-migrate-capabilities");
    if (!caps)
        return std::unexpected(caps.error());
    auto state = capability_state(*caps, capability);
    if (!state) {
        state.error().object = dom.name();
        return std::unexpected(state.error());
    }
    if (*state != on)
        return fail(Errc::verify, dom.name(),
                    std::string("cannot switch ") + std::string(capability) + (on ? " on" : " off"),
                    "QEMU still reports it " + std::string(*state ? "on" : "off"));
    return {};
}

std::optional<std::int64_t> first_event(const EventWatch& events, const std::string& uuid,
                                        std::string_view name, std::int64_t since_us) {
    for (const auto& e : events.events(uuid))
        if (e.event == name && e.at_us >= since_us)
            return e.at_us;
    return std::nullopt;
}

} // namespace vmupdate
