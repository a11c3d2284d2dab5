// `vmupdate hook install` and `uninstall`: linking the hook into libvirt's hook
// directory, where libvirt's AppArmor profile lets the daemon run it.
#include "fsutil.hpp"
#include "vmupdate/orchestrate.hpp"

#include <cerrno>
#include <filesystem>
#include <unistd.h>

namespace vmupdate {
namespace {
constexpr std::string_view hook_link_name = "50-vmupdate";
}

std::string apparmor_blocks_hook(std::string_view loaded_profiles, std::string_view hook_realpath) {
    // libvirt's profiles for its daemons (usr.sbin.libvirtd, usr.sbin.virtqemud)
    // allow exec of /usr/sbin/*, /usr/bin/*, /sbin/*, /bin/* (PUx) and
    // /etc/libvirt/hooks/** (ix), nothing else a hook could live in. AppArmor
    // checks the resolved path, so the link in qemu.d does not help.
    std::string daemon;
    for (std::string_view d : {"libvirtd", "virtqemud"}) {
        std::string enforced = "\n" + std::string(d) + " (enforce)";
        if (("\n" + std::string(loaded_profiles)).find(enforced) != std::string::npos)
            daemon = d;
    }
    if (daemon.empty())
        return "";
    std::filesystem::path p(hook_realpath);
    const std::string dir = p.parent_path().string();
    if (dir == "/usr/sbin" || dir == "/usr/bin" || dir == "/sbin" || dir == "/bin" ||
        hook_realpath.starts_with("/etc/libvirt/hooks/"))
        return "";
    return "AppArmor confines " + daemon + ", whose profile lets it run hooks only from " +
           "/usr/sbin, /usr/bin or /etc/libvirt/hooks, not " + std::string(hook_realpath) +
           ": every domain start would fail; install the hook and vmupdate-restore-helper " +
           "in /usr/sbin (the Debian package does)";
}

Result<void> check_hook_installable(const Paths& paths, const std::string& hook_executable) {
    if (access(hook_executable.c_str(), X_OK) != 0)
        return fail_errno(errno, hook_executable, "cannot install the hook");
    std::error_code real_ec;
    const auto real = std::filesystem::canonical(hook_executable, real_ec);
    // No profiles file: AppArmor is off (or securityfs not mounted), nothing to check.
    if (auto profiles = read_file(paths.apparmor_profiles, 1 << 20); profiles && !real_ec)
        if (auto why = apparmor_blocks_hook(*profiles, real.string()); !why.empty())
            return fail(Errc::refused, hook_executable, "cannot install the hook", why);
    return {};
}

Result<std::string> install_hook(const Paths& paths, const std::string& hook_executable) {
    if (auto ok = check_hook_installable(paths, hook_executable); !ok)
        return std::unexpected(ok.error());
    std::error_code ec;
    std::filesystem::create_directories(paths.hooks_dir, ec);
    if (ec)
        return fail(Errc::system, paths.hooks_dir, "cannot create the hook directory",
                    ec.message());
    std::string link = paths.hooks_dir + "/" + std::string(hook_link_name);
    std::string tmp = link + ".tmp";
    std::filesystem::remove(tmp, ec);
    std::filesystem::create_symlink(std::filesystem::absolute(hook_executable), tmp, ec);
    if (ec)
        return fail(Errc::system, link, "cannot link the hook", ec.message());
    if (rename(tmp.c_str(), link.c_str()) != 0)
        return fail_errno(errno, link, "cannot install the hook");
    return link;
}

Result<std::string> uninstall_hook(const Paths& paths) {
    std::string link = paths.hooks_dir + "/" + std::string(hook_link_name);
    if (unlink(link.c_str()) != 0 && errno != ENOENT)
        return fail_errno(errno, link, "cannot remove the hook");
    return link;
}

} // namespace vmupdate
