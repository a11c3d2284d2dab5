// The command table (cli/command.hpp) against what ships beside the binary:
// every command has its section in docs/man/vmupdate.8 and every option of it
// is in the page; the bash completion (packaging/bash-completion/vmupdate, run
// in bash against the built vmupdate) offers every command, subcommand and option.
#include "command.hpp"

#include <array>
#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <memory>
#include <set>
#include <sstream>

namespace {

using namespace vmupdate::cli;

// How text is written in the page's source: '-' escaped.
std::string troff(std::string_view text) {
    std::string out;
    for (char c : text)
        out += c == '-' ? std::string("\\-") : std::string(1, c);
    return out;
}

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// What the completion offers for the last of `words` (after "vmupdate").
std::set<std::string> complete(const std::vector<std::string>& words) {
    std::string cmd = "bash --norc --noprofile -c 'source \"$1\"; shift; COMP_WORDS=(\"$@\"); "
                      "COMP_CWORD=$(($# - 1)); _vmupdate; printf \"%s\\n\" \"${COMPREPLY[@]}\"' "
                      "bash " VMUPDATE_COMPLETION " " VMUPDATE_CLI;
    for (const auto& w : words)
        cmd += " '" + w + "'";
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    std::set<std::string> out;
    std::array<char, 512> line{};
    while (p && fgets(line.data(), line.size(), p.get())) {
        std::string w(line.data());
        if (!w.empty() && w.back() == '\n')
            w.pop_back();
        if (!w.empty())
            out.insert(w);
    }
    return out;
}

std::vector<std::string> words_of(std::string_view name) {
    std::vector<std::string> out;
    std::istringstream in{std::string(name)};
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

TEST(CliTable, EveryCommandAndOptionIsInTheManPage) {
    std::string page = read(VMUPDATE_MANPAGE);
    ASSERT_FALSE(page.empty()) << VMUPDATE_MANPAGE;
    for (const auto& c : commands()) {
        if (c.hidden || is_group(c))
            continue;
        EXPECT_NE(page.find("\n.SS " + troff(c.name) + "\n"), std::string::npos)
            << "no .SS " << troff(c.name);
        for (const auto& o : c.options)
            for (auto name : spellings(o))
                EXPECT_NE(page.find(troff(name)), std::string::npos) << c.name << ": " << name;
    }
}

TEST(CliTable, EveryCommandAndOptionCompletes) {
    auto top = complete({""});
    for (const auto& c : commands()) {
        auto words = words_of(c.name);
        if (c.hidden) {
            EXPECT_FALSE(top.contains(words[0])) << c.name << " is internal";
            continue;
        }
        EXPECT_TRUE(top.contains(words[0])) << c.name;
        if (words.size() == 2) {
            EXPECT_TRUE(complete({words[0], ""}).contains(words[1])) << c.name;
        }
        if (is_group(c))
            continue;
        std::set<std::string> want;
        for (const auto& o : c.options)
            for (auto name : spellings(o))
                want.emplace(name);
        words.push_back("-");
        EXPECT_EQ(complete(words), want) << c.name;
    }
}

} // namespace
