#include "vmupdate/preservable.hpp"

namespace vmupdate {

bool ram_outlives_qemu(const DomainInfo& info) {
    return info.shared_file_ram && info.discard.empty();
}

Unpreservable preservability(const DomainInfo& live) {
    if (!live.managed)
        return Unpreservable::not_managed;
    if (!live.shared_file_ram)
        return Unpreservable::not_shared;
    // QEMU would punch the RAM out of its file on exit, and the restore would map
    // zeroes and report success. A management layer (Nova) may have added it back.
    if (!live.discard.empty())
        return Unpreservable::discards;
    return Unpreservable::none;
}

std::string reason_text(Unpreservable why, const DomainInfo& live) {
    switch (why) {
    case Unpreservable::none:
        return {};
    case Unpreservable::not_managed:
        return "not managed by vmupdate";
    case Unpreservable::not_shared:
        return "its running QEMU does not keep RAM in a shared file yet";
    case Unpreservable::discards:
        return "its running QEMU discards its RAM on exit (" + live.discard + ")";
    }
    return {};
}

} // namespace vmupdate
