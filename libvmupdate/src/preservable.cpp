#include "vmupdate/preservable.hpp"

namespace vmupdate {

// A QEMU that would discard it on exit gets discard-data switched off by the
// save before it stops (ram_discard.hpp), and a restoring one is started
// without it (the restore hook): discard is no reason any more.
bool ram_outlives_qemu(const DomainInfo& info) {
    return info.shared_file_ram;
}

Unpreservable preservability(const DomainInfo& live) {
    if (!live.managed)
        return Unpreservable::not_managed;
    if (!ram_outlives_qemu(live))
        return Unpreservable::not_shared;
    return Unpreservable::none;
}

std::string reason_text(Unpreservable why, const DomainInfo& /*live*/) {
    switch (why) {
    case Unpreservable::none:
        return {};
    case Unpreservable::not_managed:
        return "not managed by vmupdate";
    case Unpreservable::not_shared:
        return "its running QEMU does not keep RAM in a shared file yet";
    }
    return {};
}

} // namespace vmupdate
