// vmupdate-hook: libvirt's qemu hook (installed into /etc/libvirt/hooks/qemu.d/
// by `vmupdate hook install`) and, started by itself, the restore helper.
// Parses arguments, calls libvmupdate, logs, sets the exit code.
#include "vmupdate/hook.hpp"

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

std::string self_path(const char* argv0) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(argv0);
}

} // namespace

int main(int argc, char** argv) {
    vmupdate::Paths paths;

    if (argc == 5 && std::string(argv[1]) == "--restore-helper") {
        std::vector<std::string> log;
        auto ok = vmupdate::run_restore_helper(paths, argv[2], argv[3], argv[4], log);
        if (!ok)
            log.push_back("restore helper failed: " + ok.error().message());
        for (auto& l : log)
            l = std::string("helper ") + argv[3] + ": " + l;
        write_log(paths, log);
        return ok ? 0 : 1;
    }
    if (argc < 4) {
        std::cerr
            << "usage: vmupdate-hook DOMAIN OPERATION SUBOPERATION [EXTRA] (run by libvirtd)\n";
        return 2;
    }
    vmupdate::HookCall call{argv[1], argv[2], argv[3], argc > 4 ? argv[4] : "", {}};
    call.xml.assign(std::istreambuf_iterator<char>(std::cin), {});
    auto out = vmupdate::run_hook(paths, call, self_path(argv[0]));
    write_log(paths, out.log);
    if (!out.output.empty())
        std::cout << out.output;
    if (out.exit_code != 0)
        std::cerr << out.error << '\n';
    return out.exit_code;
}
