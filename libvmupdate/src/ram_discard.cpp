#include "ram_discard.hpp"

#include "test_point.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

namespace vmupdate {
namespace {

constexpr std::string_view property = "discard-data";

std::string qom_arguments(const std::string& path, std::optional<bool> value) {
    nlohmann::json args{{"path", path}, {"property", std::string(property)}};
    if (value)
        args["value"] = *value;
    return args.dump();
}

// qom-get's return for a boolean property is the bare value.
Result<bool> discard_on(const QmpCall& qmp, const std::string& path) {
    auto r = qmp("qom-get", qom_arguments(path, std::nullopt));
    if (!r)
        return std::unexpected(r.error());
    auto j = nlohmann::json::parse(*r, nullptr, false);
    if (!j.is_boolean())
        return fail(Errc::qmp, path, "qom-get " + std::string(property),
                    "not a boolean: " + r->substr(0, 80));
    return j.get<bool>();
}

// Off, then read back: only QEMU's own word that it is off counts.
Result<void> switch_off(const QmpCall& qmp, const std::string& path) {
    if (auto r = qmp("qom-set", qom_arguments(path, false)); !r)
        return std::unexpected(r.error());
    test_point("save:discard-set");
    auto on = discard_on(qmp, path);
    if (!on)
        return std::unexpected(on.error());
    if (*on)
        return fail(Errc::verify, path, "qom-set " + std::string(property) + " false",
                    "QEMU still reports it on");
    return {};
}

} // namespace

Result<std::vector<std::string>> memory_backends(std::string_view qom_list_return) {
    auto j = nlohmann::json::parse(qom_list_return, nullptr, false);
    if (!j.is_array())
        return fail(Errc::qmp, "/objects", "qom-list", "the reply is not a list");
    std::vector<std::string> out;
    for (const auto& e : j) {
        if (!e.is_object() || !e.contains("name") || !e.contains("type") ||
            !e["name"].is_string() || !e["type"].is_string())
            continue;
        const auto& type = e["type"].get_ref<const std::string&>();
        if (type.starts_with("child<memory-backend-"))
            out.push_back("/objects/" + e["name"].get<std::string>());
    }
    return out;
}

Result<DiscardSwitch> keep_ram_on_exit(const QmpCall& qmp, const std::string& domain) {
    auto t0 = std::chrono::steady_clock::now();
    DiscardSwitch done;
    auto refuse = [&](const Error& e) {
        restore_discard(qmp, done);
        return fail(Errc::refused, domain, "cannot save",
                    "its QEMU discards its RAM on exit and " + std::string(property) +
                        " cannot be switched off: " + e.message() +
                        "; the domain is still running, unchanged");
    };
    auto listed = qmp("qom-list", R"({"path":"/objects"})");
    if (!listed)
        return refuse(listed.error());
    auto backends = memory_backends(*listed);
    if (!backends)
        return refuse(backends.error());
    for (const auto& path : *backends) {
        auto on = discard_on(qmp, path);
        if (!on)
            return refuse(on.error());
        if (!*on)
            continue;
        if (auto ok = switch_off(qmp, path); !ok) {
            // Perhaps switched after all: back on with the others.
            done.switched.push_back(path);
            return refuse(ok.error());
        }
        done.switched.push_back(path);
    }
    done.us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return done;
}

void restore_discard(const QmpCall& qmp, const DiscardSwitch& done) {
    for (const auto& path : done.switched)
        (void)qmp("qom-set", qom_arguments(path, true));
}

} // namespace vmupdate
