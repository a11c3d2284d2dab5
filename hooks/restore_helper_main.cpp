// vmupdate-restore-helper: started by vmupdate-hook on restore as
// `vmupdate-restore-helper UUID ATTEMPT SOCKET DOMAIN`, detached, with
// /dev/null for stdin, stdout and stderr. Parses arguments, calls libvmupdate,
// logs to the hook log, sets the exit code.
#include "vmupdate/restore_helper.hpp"

#include <ctime>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

// The hook's log: what the helper did belongs next to what the hook did.
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
        out << stamp << " vmupdate-restore-helper[" << getpid() << "]: " << l << '\n';
}

} // namespace

int main(int argc, char** argv) {
    vmupdate::Paths paths;
    std::vector<std::string> log;
    auto args =
        vmupdate::parse_restore_helper_args(std::vector<std::string>(argv + 1, argv + argc));
    if (!args) {
        log.push_back(args.error().message());
        write_log(paths, log);
        return 2;
    }
    auto ok = vmupdate::run_restore_helper(paths, *args, log);
    if (!ok)
        log.push_back("restore helper failed: " + ok.error().message());
    for (auto& l : log)
        l = args->domain + ": attempt " + args->attempt + ": " + l;
    write_log(paths, log);
    return ok ? 0 : 1;
}
