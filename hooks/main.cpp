// vmupdate-hook: libvirt's qemu hook (linked into /etc/libvirt/hooks/qemu.d/
// by `vmupdate hook install`). Parses arguments, calls libvmupdate, logs, sets
// the exit code. Every argument comes from libvirt and names a call: a domain
// may have any name, so no argument selects another mode (the restore helper
// is an executable of its own).
#include "vmupdate/hook.hpp"
#include "vmupdate/restore_helper.hpp"

#include <iostream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

// The restore helper lives next to the hook's real executable: /proc/self/exe
// resolves the link in libvirt's hook directory (where any other executable
// would itself be run as a hook).
std::string helper_path() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return {}; // spawning "" fails, and on_restore reports it
    std::string self(buf, static_cast<size_t>(n));
    return self.substr(0, self.rfind('/') + 1) + vmupdate::restore_helper_name;
}

int run(int argc, char** argv) {
    vmupdate::Paths paths;

    if (argc < 4) {
        std::cerr
            << "usage: vmupdate-hook DOMAIN OPERATION SUBOPERATION [EXTRA] (run by libvirtd)\n";
        return 2;
    }
    vmupdate::HookCall call{argv[1], argv[2], argv[3], argc > 4 ? argv[4] : "", {}};
    call.xml.assign(std::istreambuf_iterator<char>(std::cin), {});
    auto out = vmupdate::run_hook(paths, call, helper_path());
    vmupdate::append_hook_log(paths, "vmupdate-hook", out.log);
    if (!out.output.empty())
        std::cout << out.output;
    if (out.exit_code != 0)
        std::cerr << out.error << '\n';
    return out.exit_code;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (...) {
        // A bug or exhausted memory. A failed restore hook makes libvirt 11.3 delete
        // the managed-save image, and a failed stop hook changes nothing: exit 0,
        // print no XML (a restore then goes the stock way, which QEMU refuses
        // without touching the image), and leave a word in the log if possible.
        vmupdate::append_hook_log(vmupdate::Paths{}, "vmupdate-hook",
                                  {"internal error: the hook gave up on this call"});
        return 0;
    }
}
