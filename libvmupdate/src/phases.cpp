// Where a guest's pause went: its save-and-restore timeline cut into phases.
#include "vmupdate/orchestrate.hpp"

#include <algorithm>

namespace vmupdate {

std::vector<Phase> pause_phases(const std::vector<TimePoint>& timeline) {
    // The moments in the order they happen, each naming the phase that ends there.
    static constexpr std::pair<std::string_view, std::string_view> order[] = {
        {"suspended", ""},
        {"qemu-terminating", "device state saved to the image"},
        {"stopped", "QEMU exit (libvirt's 200 ms kill poll), stop hooks"},
        {"saved", "vmupdate save checks"},
        {"restore-command", "between save and restore"},
        {"restore-begin", "vmupdate restore checks, libvirt reads the image"},
        {"qemu-starting", "libvirt prepares the domain (hooks)"},
        {"helper-connected", "QEMU launch and initialisation"},
        {"migration-setup", "libvirt probes and sets up the new QEMU"},
        {"loaded", "device state load"},
        {"resumed", "started hook, resume"},
    };
    std::vector<Phase> out;
    std::optional<std::int64_t> last;
    // A missing moment merges the two phases around it rather than misnaming one.
    std::string pending;
    for (const auto& [moment, phase] : order) {
        if (last && !phase.empty())
            pending += (pending.empty() ? "" : " + ") + std::string(phase);
        auto it = std::find_if(timeline.rbegin(), timeline.rend(),
                               [&](const TimePoint& t) { return t.name == moment && t.at_us > 0; });
        if (it == timeline.rend())
            continue;
        if (last && !pending.empty())
            out.push_back(Phase{pending, it->at_us - *last});
        pending.clear();
        last = it->at_us;
    }
    return out;
}

} // namespace vmupdate
