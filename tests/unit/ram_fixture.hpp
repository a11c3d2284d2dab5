// Helpers for the tests of RAM preservation and the handover, which stands on
// it: file checks, and a memory_backing_dir with a running domain's RAM
// directory in a temporary directory.
#pragma once

#include "temp_dir.hpp"

#include <chrono>
#include <csignal>
#include <functional>
#include <gtest/gtest.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vmupdate::testing {

/// Whether `needle` occurs in `hay`.
inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

/// lstat() of `path`, which must exist.
inline struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

/// Whether anything, a dangling link too, is at `path`.
inline bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

/// Runs `step` in a child process and returns what it wrote, or nullopt when it
/// did not end within `bound` (it is killed then): a step that blocks fails the
/// test instead of hanging it.
inline std::optional<std::string> run_bounded(const std::function<std::string()>& step,
                                              std::chrono::milliseconds bound) {
    int p[2];
    if (::pipe(p) != 0)
        return std::nullopt;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        std::string out = step();
        (void)!::write(p[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    bool done = false;
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (!done) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd pfd{p[0], POLLIN, 0};
        if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
            break;
        char buf[4096];
        ssize_t n = ::read(p[0], buf, sizeof buf);
        if (n <= 0)
            done = true;
        else
            out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(p[0]);
    if (!done)
        ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return done ? std::optional<std::string>(out) : std::nullopt;
}

/// libvirt's memory_backing_dir (`backing`) in a temporary directory, with the
/// RAM directory of running domain 7, "web1" (`ram_dir`).
class RamDirTest : public ::testing::Test {
protected:
    /// Creates both directories, empty.
    void make_ram_dir() {
        ASSERT_FALSE(tmp.path().empty());
        ASSERT_EQ(::mkdir(backing.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir(ram_dir.c_str(), 0755), 0);
    }

    TempDir tmp;
    std::string backing = tmp / "ram";
    std::string ram_dir = backing + "/7-web1";
};

} // namespace vmupdate::testing
