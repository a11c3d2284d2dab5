// Starting a process fully detached from its starter. See spawn.hpp.
#include "spawn.hpp"

#include "fd.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vmupdate {
namespace {

// Writes an errno into the spawn pipe; only async-signal-safe calls, as it runs
// in a forked child.
void report_errno(int fd, int err) {
    while (write(fd, &err, sizeof err) < 0 && errno == EINTR) {
    }
}

} // namespace

// A failed fork or exec comes back as an error: a close-on-exec pipe carries the
// errno of either child and reaches EOF without data only when execv succeeded.
Result<void> spawn_detached(const std::string& helper, const std::vector<std::string>& args,
                            std::string_view what, int pass_fd) {
    const std::string step = "cannot start " + std::string(what);
    // Built before fork: the children may only make async-signal-safe calls.
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(helper.c_str()));
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return fail_errno(errno, helper, step);
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    // Above fd 3, which the passed descriptor takes in the child.
    if (fds[1] <= 3) {
        int moved = fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
        if (moved < 0)
            return fail_errno(errno, helper, step);
        write_end.reset(moved);
        fds[1] = moved;
    }
    pid_t child = fork();
    if (child < 0)
        return fail_errno(errno, helper, step);
    if (child == 0) {
        setsid();
        pid_t grandchild = fork();
        if (grandchild < 0) {
            report_errno(fds[1], errno);
            _exit(1);
        }
        if (grandchild != 0)
            _exit(0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0) {
            report_errno(fds[1], errno);
            _exit(127);
        }
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        // The passed descriptor becomes fd 3 (dup2 leaves the copy without
        // close-on-exec; one that already is fd 3 needs it cleared by hand).
        unsigned first_closed = 3;
        if (pass_fd >= 0) {
            if ((pass_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(pass_fd, 3)) < 0) {
                report_errno(fds[1], errno);
                _exit(127);
            }
            first_closed = 4;
        }
        // Everything else libvirt left open closes at exec, the pipe included.
        if (close_range(first_closed, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
            for (int fd = static_cast<int>(first_closed); fd < 1024; ++fd)
                if (fd != fds[1])
                    close(fd);
        execv(helper.c_str(), argv.data());
        report_errno(fds[1], errno);
        _exit(127);
    }
    write_end.reset();
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    int err = 0;
    ssize_t n;
    do
        n = read(read_end.get(), &err, sizeof err);
    while (n < 0 && errno == EINTR);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return n == static_cast<ssize_t>(sizeof err)
                   ? fail_errno(err, helper, step)
                   : fail(Errc::system, helper, step, "the intermediate process failed");
    if (n == static_cast<ssize_t>(sizeof err))
        return fail_errno(err, helper, step);
    if (n != 0)
        return fail(Errc::system, helper, step, "cannot read its start report");
    return {};
}

} // namespace vmupdate
