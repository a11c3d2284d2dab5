// The help printed from the command table (cli/help.hpp): every command has a
// usage line, the overview lists them all, and -h/--help is recognised only
// among a command's options.
#include "help.hpp"

#include <gtest/gtest.h>
#include <sstream>

namespace {

using namespace vmupdate::cli;

const Command* ask(std::string_view command, std::vector<std::string> args) {
    return help_request(command, args);
}

std::string name_of(const Command* c) {
    return c ? std::string(c->name) : "(none)";
}

TEST(CliHelp, EveryCommandHasAUsageLineAndFitsTheTerminal) {
    ASSERT_FALSE(commands().empty());
    for (const auto& c : commands()) {
        if (c.hidden) // internal: no help
            continue;
        std::string text = command_help(c);
        EXPECT_TRUE(text.starts_with("usage: vmupdate " + std::string(c.name))) << text;
        EXPECT_NE(text.find("--help"), std::string::npos) << c.name;
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);)
            EXPECT_LE(line.size(), 80u) << c.name << ": " << line;
        EXPECT_EQ(find_command(c.name), &c);
    }
}

TEST(CliHelp, OverviewListsEveryCommandOnce) {
    std::string text = overview();
    for (const auto& c : commands()) {
        if (c.synopsis.empty()) // a group: its subcommands are listed
            continue;
        std::string first_line(c.synopsis.substr(0, c.synopsis.find('\n')));
        EXPECT_NE(text.find("\n  " + first_line), std::string::npos) << c.name;
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        EXPECT_LE(line.size(), 80u) << line;
}

TEST(CliHelp, GroupsShowTheirSubcommands) {
    const Command* pool = find_command("pool");
    ASSERT_NE(pool, nullptr);
    std::string text = command_help(*pool);
    EXPECT_TRUE(text.starts_with("usage: vmupdate pool list")) << text;
    EXPECT_NE(text.find("       vmupdate pool create --size SIZE"), std::string::npos) << text;
    EXPECT_EQ(find_command("pool bogus"), nullptr);
}

TEST(CliHelp, HelpAnywhereAmongTheOptions) {
    EXPECT_EQ(name_of(ask("save", {"--help"})), "save");
    EXPECT_EQ(name_of(ask("save", {"-h"})), "save");
    EXPECT_EQ(name_of(ask("save", {"web1", "--parallel", "2", "--help"})), "save");
    EXPECT_EQ(name_of(ask("restore", {"-v", "--all", "-h"})), "restore");
    EXPECT_EQ(name_of(ask("pool", {"--help"})), "pool");
    EXPECT_EQ(name_of(ask("pool", {"create", "--size", "4G", "--help"})), "pool create");
    EXPECT_EQ(name_of(ask("hook", {"install", "-h"})), "hook install");
    EXPECT_EQ(name_of(ask("hook", {"bogus", "-h"})), "hook");
    EXPECT_EQ(name_of(ask("help", {"--help"})), "help");
}

TEST(CliHelp, NotAfterDashDashNorAsAnOptionValue) {
    // A domain may be called "--help"; it goes after "--".
    EXPECT_EQ(ask("save", {"--", "--help"}), nullptr);
    EXPECT_EQ(ask("prepare", {"--", "-h"}), nullptr);
    EXPECT_EQ(ask("restore", {"--verbose", "--", "--help"}), nullptr);
    // The value of an option that takes one.
    EXPECT_EQ(ask("host-update", {"--kernel", "k", "--append", "--help"}), nullptr);
    EXPECT_EQ(ask("hook", {"install", "--hook", "-h"}), nullptr);
    EXPECT_EQ(ask("save", {"web1"}), nullptr);
    EXPECT_EQ(ask("bogus", {"--help"}), nullptr);
}

} // namespace
