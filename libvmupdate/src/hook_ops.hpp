// The hook's operations, one per libvirt call vmupdate acts on (hook.cpp
// dispatches them). Private header.
#pragma once

#include "vmupdate/domain_xml.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/hook.hpp"
#include "vmupdate/paths.hpp"
#include "vmupdate/state.hpp"

#include <string>

namespace vmupdate {

/// One hook call being handled, and what it will tell libvirt.
struct HookContext {
    const Paths& paths;
    const HookCall& call;
    HookOutcome out;

    /// Adds a line to the hook log, prefixed with the domain and the call.
    void log(std::string line) {
        out.log.push_back(call.domain + ": " + call.op + " " + call.subop + ": " + std::move(line));
    }
    /// Makes libvirt abort the call, with the error for it and the log.
    void refuse(const Error& e) {
        out.exit_code = 1;
        out.error = "vmupdate: " + e.message();
        log("refused: " + e.message());
    }
};

/// Whether `p` exists (as anything, a dangling link included).
[[nodiscard]] bool file_exists(const std::string& p);

/// The RAM directory libvirt made for the running domain.
[[nodiscard]] Result<std::string> ram_dir_of(const Paths& paths, const DomainInfo& info);

/// Passes on the domain XML without the private QMP monitor of an earlier restore.
void strip_monitor(HookContext& c);

/// started begin: holds the RAM files, so that no stop can free them.
void on_started(HookContext& c, const DomainInfo& info, const StateDir& state);

/// restore begin: wires a vmupdate save's restore up (private monitor, helper).
void on_restore(HookContext& c, const DomainInfo& info, const StateDir& state,
                const std::string& helper);

/// start begin: puts preserved RAM in place, or refuses a start that would lose it.
void on_start(HookContext& c, const DomainInfo& info, const StateDir& state);

/// release end: drops the RAM only when nothing can need it.
void on_release(HookContext& c, const DomainInfo& info, const StateDir& state);

} // namespace vmupdate
