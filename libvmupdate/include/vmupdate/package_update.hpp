// `vmupdate host-update --packages`: a QEMU/libvirt update in one command. The
// packages are resolved and downloaded first, with nothing paused; then every
// managed VM is saved, the packages are installed, libvirtd restarts when libvirt
// itself changed, and every VM is restored, on the new binaries.
#pragma once

#include "vmupdate/error.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/orchestrate.hpp"
#include "vmupdate/paths.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace vmupdate {

/// What the install does to one package.
enum class ChangeKind {
    install,   ///< newly installed ("Inst NAME (NEW ...)")
    upgrade,   ///< replaced by another version, or reinstalled ("Inst NAME [OLD] (NEW ...)")
    remove,    ///< removed, its configuration files kept ("Remv NAME [OLD]")
    purge,     ///< removed with its configuration files ("Purg NAME [OLD]")
    configure, ///< only configured, its files unchanged ("Conf NAME (VERSION ...)")
};

/// One package the install changes.
struct PackageChange {
    ChangeKind kind = ChangeKind::install;
    std::string name;
    std::string from; ///< installed version; empty when newly installed or only configured
    std::string to;   ///< version installed or configured; empty when removed or purged
};

/// How the pre-flight of `host-update --packages` may go.
struct PackageOptions {
    bool allow_removals{}; ///< removals of packages other than libvirt, QEMU, vmupdate may go ahead
    bool download{true};   ///< download now (false for --dry-run: simulate only)
};

/// What the update will do, found without pausing anything.
struct PackageUpdatePlan {
    std::vector<std::string> packages; ///< for apt-get: names, or absolute paths of .deb files
    std::vector<PackageChange> changes;
    bool downloaded{};                  ///< apt-get --download-only fetched everything already
    bool libvirt_changes{};             ///< a libvirt package changes: libvirtd must restart
    std::string libvirt_unit;           ///< the systemd unit restarted then (libvirtd or virtqemud)
    std::vector<std::string> domains;   ///< running managed domains, saved around the install
    std::vector<std::string> offenders; ///< reasons it must not go ahead
    std::vector<std::string> warnings;
};

/// The package changes listed by `apt-get install --simulate`: its Inst, Remv, Purg
/// lines, and the Conf lines of packages not installed as well.
[[nodiscard]] std::vector<PackageChange> parse_apt_simulation(std::string_view out);

/// Whether a package belongs to libvirt's daemon or library (a change needs a restart).
[[nodiscard]] bool is_libvirt_package(std::string_view name);

/// Whether a package is libvirt (libvirt*), QEMU (qemu, qemu-*) or vmupdate: never removed.
[[nodiscard]] bool is_protected_package(std::string_view name);

/// Adds an offender to `plan` for every removal it must not make: any of a protected
/// package, and any other unless `allow_removals`.
void review_removals(PackageUpdatePlan& plan, bool allow_removals);

/// Resolves the packages (apt-get --simulate) and, when `options.download`,
/// downloads them (--download-only); changes nothing but apt's package cache.
/// May take minutes: open the libvirt connection for check_domains_for_packages
/// after it, not before.
[[nodiscard]] Result<PackageUpdatePlan> resolve_packages(std::vector<std::string> packages,
                                                         const PackageOptions& options);

/// Adds the running managed domains to save, and the offenders, to `plan`.
[[nodiscard]] Result<void> check_domains_for_packages(const Connection& conn, const Paths& paths,
                                                      PackageUpdatePlan& plan);

/// What the update did, phase by phase.
struct PackageUpdateReport {
    std::vector<SaveReport> saved;
    std::vector<Result<RestoreReport>> restored;
    double save_seconds{}, install_seconds{}, restart_seconds{}, restore_seconds{};
    std::string install_error; ///< why the install failed (the VMs were restored anyway)
    std::string install_log;   ///< the file apt-get's output went to
};

/// Saves the planned domains, installs, restarts libvirtd if libvirt changed and
/// restores every saved domain (through a new connection: the install may outlast
/// the first), also when the install failed. Fails only when the saves did (those
/// saved are restored and nothing is installed) or libvirt does not come back.
[[nodiscard]] Result<PackageUpdateReport> run_package_update(const std::string& uri,
                                                             const Paths& paths,
                                                             const PackageUpdatePlan& plan,
                                                             unsigned parallel);

} // namespace vmupdate
