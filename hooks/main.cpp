// vmupdate-hook: libvirt's qemu hook (linked into /etc/libvirt/hooks/qemu.d/
// by `vmupdate hook install`). Parses arguments, calls libvmupdate, logs, sets
// the exit code. Every argument comes from libvirt and names a call: a domain
// may have any name, so no argument selects another mode (the restore helper
// is an executable of its own).
#include "vmupdate/hook.hpp"
#include "vmupdate/restore_helper.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

void write_log(const vmupdate::Paths& paths, const std::vector<std::string>& lines) {
    if (lines.empty())
        return;
    std::string dir = paths.log_file.substr(0, paths.log_file.rfind('/'));
    mkdir(dir.c_str(), 0700);
    std::ofstream out(paths.log_file, std::ios::app);
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", std::localtime(&now));
    for (const auto& l : lines)
        out << stamp << " vmupdate-hook[" << getpid() << "]: " << l << '\n';
}

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

} // namespace

int main(int argc, char** argv) {
    vmupdate::Paths paths;

    if (argc < 4) {
        std::cerr
            << "usage: vmupdate-hook DOMAIN OPERATION SUBOPERATION [EXTRA] (run by libvirtd)\n";
        return 2;
    }
    vmupdate::HookCall call{argv[1], argv[2], argv[3], argc > 4 ? argv[4] : "", {}};
    call.xml.assign(std::istreambuf_iterator<char>(std::cin), {});
    auto out = vmupdate::run_hook(paths, call, helper_path());
    write_log(paths, out.log);
    if (!out.output.empty())
        std::cout << out.output;
    if (out.exit_code != 0)
        std::cerr << out.error << '\n';
    return out.exit_code;
}
