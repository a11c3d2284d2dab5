// `vmupdate status [--json]`: every domain, managed or not, and its save.
#include "handlers.hpp"
#include "output.hpp"
#include "session.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/pool.hpp"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

namespace vmupdate::cli {
namespace {

nlohmann::json to_json(const std::vector<DomainStatus>& all) {
    auto out = nlohmann::json::array();
    for (const auto& s : all) {
        nlohmann::json j{{"name", s.name},
                         {"uuid", s.uuid},
                         {"running", s.running},
                         {"managed", s.managed},
                         {"shared_file_ram", s.shared_file_ram},
                         {"backing_dir", s.backing_dir},
                         {"filesystem", s.fs_type},
                         {"filesystem_kind", s.fs_kind},
                         {"ram_bytes", s.ram_bytes},
                         {"saved", s.save_state == "saved" || s.save_state == "restoring"},
                         {"save_state", s.save_state},
                         {"last_error", s.last_error},
                         {"unmanaged_why", s.unmanaged_why}};
        j["image_bytes"] = s.image_bytes ? nlohmann::json(*s.image_bytes) : nlohmann::json(nullptr);
        j["last_pause_us"] =
            s.last_pause_us ? nlohmann::json(*s.last_pause_us) : nlohmann::json(nullptr);
        out.push_back(std::move(j));
    }
    return out;
}

void print_table(const std::vector<DomainStatus>& all) {
    std::cout << std::left << std::setw(24) << "NAME" << std::setw(9) << "STATE" << std::setw(8)
              << "MANAGED" << std::setw(34) << "RAM BACKING" << std::setw(11) << "RAM"
              << std::setw(10) << "SAVED" << std::setw(11) << "IMAGE"
              << "LAST PAUSE\n";
    for (const auto& s : all) {
        std::string backing =
            s.shared_file_ram ? s.backing_dir + " (" + s.fs_type + ")" : "anonymous";
        std::cout << std::left << std::setw(24) << s.name << std::setw(9)
                  << (s.running ? "running" : "shut off") << std::setw(8)
                  << (s.managed ? "yes" : "no") << std::setw(34) << backing << std::setw(11)
                  << format_size(s.ram_bytes) << std::setw(10)
                  << (s.save_state.empty() ? "-" : s.save_state) << std::setw(11)
                  << (s.image_bytes ? format_size(*s.image_bytes) : "-")
                  << (s.last_pause_us ? human_us(*s.last_pause_us) : "-") << '\n';
        if (s.save_state == "saving")
            std::cout << "  save interrupted: 'vmupdate restore -- " << s.name << "' "
                      << (s.running ? "undoes it (the domain still runs)"
                                    : "verifies the image and restores it")
                      << '\n';
        if (!s.last_error.empty())
            std::cout << "  last restore failed: " << s.last_error << '\n';
        if (!s.unmanaged_why.empty() && s.save_state.empty())
            std::cout << "  not preservable: " << s.unmanaged_why << '\n';
    }
}

} // namespace

int cmd_status(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    auto conn = Connection::open(in.uri);
    if (!conn)
        return report(conn.error());
    auto all = domain_status(*conn, paths);
    if (!all)
        return report(all.error());
    if (in.args.has("--json"))
        std::cout << to_json(*all).dump(2) << '\n';
    else
        print_table(*all);
    return 0;
}

} // namespace vmupdate::cli
