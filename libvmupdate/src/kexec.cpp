#include "vmupdate/kexec.hpp"

#include "fsutil.hpp"
#include "process.hpp"

#include <chrono>
#include <sstream>
#include <sys/stat.h>

namespace vmupdate {

using namespace std::chrono_literals;

Result<std::string> current_cmdline() {
    auto text = read_file("/proc/cmdline", 1 << 16);
    if (!text)
        return std::unexpected(text.error());
    std::string s = *text;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::vector<std::string> pmem_memmap_args(std::string_view cmdline) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < cmdline.size()) {
        size_t end = cmdline.find(' ', pos);
        std::string_view arg =
            cmdline.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        // memmap=nn[KMG]!ss[KMG] marks persistent memory; memmap may list
        // several regions separated by commas.
        if (arg.starts_with("memmap=") && arg.find('!') != std::string_view::npos)
            out.emplace_back(arg);
        if (end == std::string_view::npos)
            break;
        pos = end + 1;
    }
    return out;
}

namespace {

// kexec prints its segment table to stderr too; keep the line that says why.
std::string first_failure_line(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.find("ailed") != std::string::npos || line.find("rror") != std::string::npos ||
            line.find("annot") != std::string::npos)
            return line;
    return text.substr(0, text.find('\n'));
}

} // namespace

Result<void> kexec_load(const KexecPlan& plan) {
    std::vector<std::string> argv{"kexec", "-l"};
    if (plan.file_load)
        argv.push_back("-s");
    argv.push_back(plan.kernel);
    if (!plan.initrd.empty())
        argv.push_back("--initrd=" + plan.initrd);
    argv.push_back("--append=" + plan.cmdline);
    if (auto r = run_checked(argv, 60s); !r) {
        r.error().object = plan.kernel;
        r.error().step = "cannot load the new kernel";
        r.error().cause = first_failure_line(r.error().cause);
        return std::unexpected(r.error());
    }
    return {};
}

Result<void> kexec_unload() {
    if (auto r = run_checked({"kexec", "-u"}, 30s); !r)
        return std::unexpected(r.error());
    return {};
}

KexecVia kexec_method(const std::string& run_systemd) {
    struct stat st {};
    return ::lstat(run_systemd.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? KexecVia::systemd
                                                                         : KexecVia::kexec_e;
}

Result<void> kexec_exec(KexecVia via) {
    if (via == KexecVia::systemd) {
        // systemd-shutdown turns a kexec into a plain reboot when it believes it
        // runs in a container (it does for a root with /.dockerenv): a firmware
        // reboot may not keep the RAM the saved guests need. Fail instead; the
        // caller restores them.
        if (auto c = run_process({"systemd-detect-virt", "--container", "--quiet"}, 10s);
            c && c->exit_code == 0)
            return fail(Errc::refused, "systemctl kexec", "refused",
                        "systemd-detect-virt says this host is a container, where systemd "
                        "reboots instead of kexec");
        // systemd stops the services (libvirt-guests finds no running guest: every
        // one is saved), unmounts the file systems and then kexecs the kernel
        // loaded with `kexec -l`; the job is queued when systemctl returns.
        if (auto r = run_checked({"systemctl", "kexec"}, 120s); !r) {
            r.error().step = "systemctl kexec failed";
            return std::unexpected(r.error());
        }
        return {};
    }
    // On success this never returns: the machine is already in the new kernel.
    if (auto r = run_checked({"kexec", "-e"}, 60s); !r) {
        r.error().step = "kexec -e failed";
        return std::unexpected(r.error());
    }
    return fail(Errc::system, "kexec", "kexec -e returned", "the new kernel did not start");
}

} // namespace vmupdate
