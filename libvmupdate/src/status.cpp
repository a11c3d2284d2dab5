// `vmupdate status`, and the domain lists of `save --all` and `restore --all`.
#include "domain_info.hpp"
#include "fsutil.hpp"
#include "save_image.hpp"
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/preservable.hpp"
#include "vmupdate/state.hpp"

#include <sys/stat.h>

namespace vmupdate {
namespace {

std::optional<std::uint64_t> file_size(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        return std::nullopt;
    return static_cast<std::uint64_t>(st.st_size);
}

// Why vmupdate cannot keep the domain, and the remedy; empty if it can.
std::string unmanaged_why(std::string_view xml, const DomainInfo& info, ManagePolicy policy,
                          bool running) {
    if (!info.managed)
        return why_unmanaged(xml, info, policy);
    if (!running)
        return {};
    // Marked, but the running QEMU still has the RAM it started with.
    switch (preservability(info)) {
    case Unpreservable::not_shared:
        return "prepared: its RAM moves to a shared file at the next cold start (shut it down "
               "and start it)";
    case Unpreservable::none:
    case Unpreservable::not_managed:
        break;
    }
    return {};
}

// The backing directory and its filesystem, when they can be read.
struct Backing {
    std::optional<std::string> dir;
    std::optional<FsInfo> fs;
};

Backing read_backing(const Paths& paths) {
    Backing out;
    if (auto backing = memory_backing_dir(paths.qemu_conf)) {
        out.dir = *backing;
        if (auto f = filesystem_of(*backing))
            out.fs = *f;
    }
    return out;
}

DomainStatus status_of(const Domain& d, const Paths& paths, const StateDir& state,
                       ManagePolicy policy, const Backing& backing) {
    DomainStatus s;
    s.name = d.name();
    s.uuid = d.uuid();
    s.running = d.is_active().value_or(false);
    auto xml = s.running ? d.live_xml() : d.inactive_xml();
    if (auto info = xml ? inspect_domain(*xml, s.name, policy)
                        : Result<DomainInfo>(std::unexpected(xml.error()))) {
        s.managed = info->managed;
        s.shared_file_ram = info->shared_file_ram;
        s.ram_bytes = info->memory_kib * 1024;
        s.unmanaged_why = unmanaged_why(*xml, *info, policy, s.running);
    }
    if (s.shared_file_ram && backing.dir) {
        s.backing_dir = *backing.dir;
        if (backing.fs) {
            s.fs_type = backing.fs->fstype;
            s.fs_kind = std::string(to_string(backing.fs->kind));
        }
    }
    if (is_canonical_uuid(s.uuid)) {
        if (auto m = state.load(s.uuid); m && *m) {
            s.save_state = std::string(to_string((*m)->state));
            s.last_error = (*m)->last_error;
        }
        if (auto p = state.last_pause(s.uuid); p && *p)
            s.last_pause_us = **p;
    }
    if (d.has_managed_save().value_or(false) && check_domain_name(s.name))
        s.image_bytes = file_size(managed_save_image(paths, s.name));
    return s;
}

} // namespace

Result<std::vector<std::string>> running_managed_domains(const Connection& conn,
                                                         const Paths& paths) {
    auto running = running_domains(conn, paths);
    if (!running)
        return std::unexpected(running.error());
    // Every managed one: save_domain refuses, and says why, those it cannot keep.
    std::vector<std::string> out;
    for (const auto& r : *running)
        if (r.live && preservability(*r.live) != Unpreservable::not_managed)
            out.push_back(r.dom.name());
    return out;
}

Result<std::vector<std::string>> saved_domains(const Paths& paths) {
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto all = state->list();
    if (!all)
        return std::unexpected(all.error());
    std::vector<std::string> out;
    for (const auto& m : *all)
        if (m.state == SaveState::saved || m.state == SaveState::restoring)
            out.push_back(m.uuid);
    return out;
}

Result<std::vector<DomainStatus>> domain_status(const Connection& conn, const Paths& paths) {
    auto doms = conn.domains();
    if (!doms)
        return std::unexpected(doms.error());
    auto state = StateDir::open(paths.state_dir);
    if (!state)
        return std::unexpected(state.error());
    auto policy = manage_policy(paths);
    if (!policy)
        return std::unexpected(policy.error());
    const Backing backing = read_backing(paths);
    std::vector<DomainStatus> out;
    for (const auto& d : *doms)
        out.push_back(status_of(d, paths, *state, *policy, backing));
    return out;
}

} // namespace vmupdate
