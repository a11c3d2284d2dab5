// The AppArmor rule vmupdate ships (packaging/apparmor/libvirt-qemu.d-vmupdate),
// compiled by the real apparmor_parser into profiles named as libvirt names a
// domain's: each domain's QEMU may reach only its own restore attempts' sockets.
// Skipped where apparmor_parser is not installed.
#include "process.hpp"
#include "temp_dir.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <string>
#include <vector>

using namespace vmupdate;
using namespace std::chrono_literals;

namespace {

constexpr const char* uuid_a = "0f2c8a4e-1d3b-4c5a-9e6f-7a8b9c0d1e2f";
constexpr const char* uuid_b = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e";
constexpr const char* qmp_root = "/run/vmupdate/qmp/";

std::string find_parser() {
    for (const char* p : {"/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"})
        if (std::filesystem::exists(p))
            return p;
    return {};
}

// The file rules apparmor_parser compiles for `profile NAME { #include RULE }`,
// as the expressions of its `-D rule-exprs` dump that name the QMP directory.
std::vector<std::string> compiled_qmp_rules(const std::string& parser,
                                            const vmupdate::testing::TempDir& tmp,
                                            const std::string& name) {
    std::string file = tmp / "profile";
    std::ofstream(file, std::ios::trunc) << "profile " << name << " flags=(attach_disconnected) {\n"
                                         << "  #include \"" << VMUPDATE_APPARMOR_RULE << "\"\n}\n";
    auto r = run_process({parser, "-Q", "-D", "rule-exprs", file}, 60s);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    if (!r)
        return {};
    EXPECT_EQ(r->exit_code, 0) << r->err;
    std::vector<std::string> rules;
    std::string text = r->out + r->err, line;
    for (std::istringstream in(text); std::getline(in, line);) {
        // "rule: EXPR  ->  DFA-EXPR (perms)": EXPR is the path pattern after
        // variable expansion, with literal characters escaped (\.).
        if (!line.starts_with("rule: ") || line.find("/run/vmupdate/") == std::string::npos)
            continue;
        std::string expr = line.substr(6);
        rules.push_back(expr.substr(0, expr.find("  ->")));
    }
    return rules;
}

std::string escaped_dir_prefix(const std::string& uuid) {
    return std::string(qmp_root) + "libvirt-" + uuid + "\\.";
}

} // namespace

// Every rule compiled into domain A's profile starts with A's own attempt
// prefix, literally: it can match nothing in B's directory. The old rule
// (qmp/[0-9a-f]*/qmp.sock) matched every domain's attempt and fails here.
TEST(AppArmorRule, EachDomainsProfileNamesOnlyItsOwnAttempts) {
    std::string parser = find_parser();
    if (parser.empty())
        GTEST_SKIP() << "apparmor_parser is not installed";
    vmupdate::testing::TempDir tmp("apparmor");
    ASSERT_FALSE(tmp.path().empty());
    for (auto [own, other] : {std::pair{uuid_a, uuid_b}, std::pair{uuid_b, uuid_a}}) {
        auto rules = compiled_qmp_rules(parser, tmp, std::string("libvirt-") + own);
        ASSERT_FALSE(rules.empty()) << "no rule for /run/vmupdate in libvirt-" << own;
        for (const auto& r : rules) {
            EXPECT_TRUE(r.starts_with(escaped_dir_prefix(own))) << r;
            EXPECT_EQ(r.find(other), std::string::npos) << r;
        }
    }
}

// A profile libvirt did not make (any other name) that includes the
// abstraction gets a pattern no attempt directory can match: a name with a
// slash is no single directory name, and none starts with "libvirt-".
TEST(AppArmorRule, AnotherProfileReachesNoAttempt) {
    std::string parser = find_parser();
    if (parser.empty())
        GTEST_SKIP() << "apparmor_parser is not installed";
    vmupdate::testing::TempDir tmp("apparmor");
    ASSERT_FALSE(tmp.path().empty());
    auto rules = compiled_qmp_rules(parser, tmp, "/usr/bin/some-emulator");
    ASSERT_FALSE(rules.empty());
    for (const auto& r : rules)
        EXPECT_FALSE(r.starts_with(std::string(qmp_root) + "libvirt-")) << r;
}
