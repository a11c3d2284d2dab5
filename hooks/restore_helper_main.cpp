// vmupdate-restore-helper: started by vmupdate-hook on restore as
// `vmupdate-restore-helper UUID ATTEMPT SOCKET DOMAIN`, detached, with
// /dev/null for stdin, stdout and stderr. Parses arguments, calls libvmupdate,
// logs to the hook log, sets the exit code.
#include "vmupdate/hook.hpp"
#include "vmupdate/restore_helper.hpp"

#include <ctime>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

int main(int argc, char** argv) {
    vmupdate::Paths paths;
    std::vector<std::string> log;
    auto args =
        vmupdate::parse_restore_helper_args(std::vector<std::string>(argv + 1, argv + argc));
    if (!args) {
        log.push_back(args.error().message());
        vmupdate::append_hook_log(paths, "vmupdate-restore-helper", log);
        return 2;
    }
    auto ok = vmupdate::run_restore_helper(paths, *args, log);
    if (!ok)
        log.push_back("restore helper failed: " + ok.error().message());
    for (auto& l : log)
        l = args->domain + ": attempt " + args->attempt + ": " + l;
    vmupdate::append_hook_log(paths, "vmupdate-restore-helper", log);
    return ok ? 0 : 1;
}
