#include "process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/filesystem/path.hpp>
#include <boost/process.hpp>
#include <future>
#include <system_error>

namespace vmupdate {

namespace bp = boost::process;

Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
    if (argv.empty())
        return fail(Errc::invalid_input, "", "cannot run a process", "empty command");
    std::error_code ec;
    auto exe = argv[0].find('/') == std::string::npos ? bp::search_path(argv[0])
                                                      : boost::filesystem::path(argv[0]);
    if (exe.empty())
        return fail(Errc::not_found, argv[0], "cannot run", "not found in PATH");
    std::vector<std::string> args(argv.begin() + 1, argv.end());
    boost::asio::io_context io;
    std::future<std::string> out, err;
    bp::child child(exe, bp::args(args), bp::std_in.close(), bp::std_out > out, bp::std_err > err,
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
