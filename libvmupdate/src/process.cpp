#include "process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/filesystem/path.hpp>
#include <boost/process.hpp>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <future>
#include <memory>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace vmupdate {

namespace bp = boost::process;

namespace {

// argv[0] as a path: searched in PATH unless it names a file.
Result<boost::filesystem::path> executable(const std::vector<std::string>& argv) {
    if (argv.empty())
        return fail(Errc::invalid_input, "", "cannot run a process", "empty command");
    auto exe = argv[0].find('/') == std::string::npos ? bp::search_path(argv[0])
                                                      : boost::filesystem::path(argv[0]);
    if (exe.empty())
        return fail(Errc::not_found, argv[0], "cannot run", "not found in PATH");
    return exe;
}

// At most the last `max` bytes written to `fd` from offset `from` on.
std::string read_tail(int fd, off_t from, std::size_t max) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0 || end <= from)
        return {};
    if (static_cast<std::size_t>(end - from) > max)
        from = end - static_cast<off_t>(max);
    std::string text(static_cast<std::size_t>(end - from), '\0');
    ssize_t n = ::pread(fd, text.data(), text.size(), from);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
}

} // namespace

Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
    auto exe = executable(argv);
    if (!exe)
        return std::unexpected(exe.error());
    std::error_code ec;
    std::vector<std::string> args(argv.begin() + 1, argv.end());
    boost::asio::io_context io;
    std::future<std::string> out, err;
    bp::child child(*exe, bp::args(args), bp::std_in.close(), bp::std_out > out, bp::std_err > err,
                    io, ec);
    if (ec)
        return fail(Errc::system, argv[0], "cannot run", ec.message());
    // The io_context collects the output while the child runs; a child that
    // outlives the time-out is killed (and reaped by wait()).
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (child.running(ec) && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(20));
        if (io.stopped())
            io.restart();
    }
    bool timed_out = child.running(ec);
    if (timed_out)
        child.terminate(ec);
    child.wait(ec);
    io.run();
    if (timed_out)
        return fail(Errc::timeout, argv[0], "did not finish",
                    "killed after " + std::to_string(timeout.count()) + " ms");
    return ProcessResult{child.exit_code(), out.get(), err.get()};
}

Result<ProcessResult> run_process_logged(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds timeout,
                                         const std::string& log) {
    auto exe = executable(argv);
    if (!exe)
        return std::unexpected(exe.error());
    int fd = ::open(log.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0)
        return fail_errno(errno, log, "cannot open the log");
    std::unique_ptr<FILE, int (*)(FILE*)> file(::fdopen(fd, "a+"), &::fclose);
    if (!file) {
        int err = errno;
        ::close(fd);
        return fail_errno(err, log, "cannot open the log");
    }
    const off_t start = ::lseek(fd, 0, SEEK_END);
    std::error_code ec;
    std::vector<std::string> args(argv.begin() + 1, argv.end());
    bp::child child(*exe, bp::args(args), bp::std_in.close(), bp::std_out > file.get(),
                    bp::std_err > file.get(), ec);
    if (ec)
        return fail(Errc::system, argv[0], "cannot run", ec.message());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (child.running(ec) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bool timed_out = child.running(ec);
    if (timed_out)
        child.terminate(ec);
    child.wait(ec);
    if (timed_out)
        return fail(Errc::timeout, argv[0], "did not finish",
                    "killed after " + std::to_string(timeout.count()) + " ms; its output is in " +
                        log);
    return ProcessResult{child.exit_code(), read_tail(fd, start < 0 ? 0 : start, 64 << 10), {}};
}

Result<std::string> run_checked(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) {
    auto r = run_process(argv, timeout);
    if (!r)
        return std::unexpected(r.error());
    if (r->exit_code != 0) {
        std::string cause = r->err.empty() ? r->out : r->err;
        while (!cause.empty() && (cause.back() == '\n' || cause.back() == ' '))
            cause.pop_back();
        std::string cmd;
        for (const auto& a : argv)
            cmd += (cmd.empty() ? "" : " ") + a;
        return fail(Errc::system, argv[0], "'" + cmd + "' exited " + std::to_string(r->exit_code),
                    cause.empty() ? "no message" : cause);
    }
    return r->out;
}

} // namespace vmupdate
