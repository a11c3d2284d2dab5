// The one rule for whether a running domain's RAM outlives its QEMU, and the one
// table of reasons when it does not. save, host-update (kernel and packages),
// `save --all` and status all judge by it; each words its refusal for its own
// command.
#pragma once

#include "vmupdate/domain_xml.hpp"

#include <string>

namespace vmupdate {

/// Why a running domain's RAM would not outlive its QEMU, in the order judged.
enum class Unpreservable {
    none,        ///< preservable: managed, RAM in a shared file
    not_managed, ///< vmupdate does not manage the running definition
    not_shared,  ///< managed, but its QEMU does not keep RAM in a shared file (yet)
};

/// Whether vmupdate can keep this RAM across its QEMU's exit: a shared file
/// (a discarding QEMU has discard switched off by the save).
[[nodiscard]] bool ram_outlives_qemu(const DomainInfo& info);

/// Judges a running domain by its live definition: the first reason that applies.
[[nodiscard]] Unpreservable preservability(const DomainInfo& live);

/// The reason in words (e.g. "not managed by vmupdate"), without a remedy;
/// empty for none.
[[nodiscard]] std::string reason_text(Unpreservable why, const DomainInfo& live);

} // namespace vmupdate
