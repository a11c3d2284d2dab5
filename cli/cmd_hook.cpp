// `vmupdate hook install` and `hook uninstall`: the libvirt qemu hook link.
#include "handlers.hpp"
#include "hook_path.hpp"
#include "output.hpp"
#include "session.hpp"
#include "vmupdate/orchestrate.hpp"

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <sys/stat.h>

namespace vmupdate::cli {
namespace {

// The hook next to this binary (relocatable installs, build trees), else the
// configured one; see hook_path.hpp.
std::string default_hook_path() {
    return find_hook(hook_candidates(self_exe(), VMUPDATE_BIN_TO_HOOKDIR, VMUPDATE_HOOKDIR));
}

} // namespace

int cmd_hook_install(const Invocation& in) {
    Paths paths;
    handle_interrupts();
    std::string hook = in.args.value("--hook").value_or("");
    // A --hook that is not there is a typo on the command line (exit 2); the
    // default one missing is a broken install, a failure like any other.
    if (struct stat st{}; !hook.empty() && stat(hook.c_str(), &st) != 0 && errno == ENOENT)
        return report(Error{Errc::invalid_input, hook, "cannot install the hook", "no such file"});
    if (hook.empty())
        hook = default_hook_path();
    if (in.args.has("--dry-run")) {
        // What install_hook would check and link; nothing is touched.
        if (auto ok = check_hook_installable(paths, hook); !ok)
            return report(ok.error());
        std::cout << "would link " << hook_link_path(paths) << " -> "
                  << std::filesystem::absolute(hook).lexically_normal().string() << '\n';
        return 0;
    }
    auto r = install_hook(paths, hook);
    if (!r)
        return report(r.error());
    std::cout << "installed " << *r << " -> " << hook
              << "\nrestart libvirtd (systemctl restart libvirtd): it only runs hooks that "
                 "existed when it started\n";
    return 0;
}

int cmd_hook_uninstall(const Invocation&) {
    Paths paths;
    handle_interrupts();
    auto r = uninstall_hook(paths);
    if (!r)
        return report(r.error());
    std::cout << "removed " << *r << "\nrestart libvirtd for it to stop running the hook\n";
    return 0;
}

} // namespace vmupdate::cli
