// `vmupdate discard`: dropping a stopped domain's vmupdate save on purpose.
#include "operation.hpp"
#include "save_image.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/orchestrate.hpp"

namespace vmupdate {

Result<std::string> discard_save(const Connection& conn, const Paths& paths,
                                 std::string_view name) {
    auto locked = lookup_and_lock(conn, paths, name, "cannot discard the save");
    if (!locked)
        return std::unexpected(locked.error());
    const Domain& dom = locked->dom;
    auto loaded = locked->state.load(dom.uuid());
    if (!loaded)
        return std::unexpected(loaded.error());
    if (!*loaded)
        return fail(Errc::refused, dom.name(), "cannot discard the save",
                    "no vmupdate save is recorded for it");
    auto active = dom.is_active();
    if (!active)
        return std::unexpected(active.error());
    if (*active)
        return fail(Errc::refused, dom.name(), "cannot discard the save",
                    "the domain is running: 'vmupdate restore " + dom.name() +
                        "' finishes or undoes what is recorded");
    const Manifest& m = **loaded;
    // Only vmupdate's own image goes: without the RAM it is worthless, while a
    // stock image (someone's `virsh managedsave` since) still holds a whole guest.
    std::string outcome = "vmupdate save discarded";
    if (auto facts = read_save_image(m.image); facts && facts->ignore_shared.value_or(false)) {
        if (auto ok = dom.remove_managed_save(); !ok)
            return std::unexpected(ok.error());
        outcome += " with its managed-save image";
    } else if (facts) {
        outcome += "; its managed-save image is not vmupdate's and is kept";
    }
    if (auto ok = drop_save(paths, locked->state, m.uuid); !ok)
        return std::unexpected(ok.error());
    return outcome + "; 'virsh start " + dom.name() + "' boots it afresh";
}

} // namespace vmupdate
