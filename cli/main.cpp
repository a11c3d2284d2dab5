// vmupdate: the command-line tool. Parses arguments, calls libvmupdate, prints
// results and errors, sets the exit code (0 ok, 1 failed, 2 refused/invalid).
#include "vmupdate/domain_xml.hpp"
#include "vmupdate/error.hpp"
#include "vmupdate/host.hpp"
#include "vmupdate/libvirt.hpp"
#include "vmupdate/prepare.hpp"
#include "vmupdate/version.hpp"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace vmupdate;

constexpr const char* usage_text = R"(usage: vmupdate [-c URI] COMMAND [ARGS...]

Keeps libvirt/QEMU virtual machines running across a host update by keeping
their RAM in a file and saving only their device state.

Commands:
  translate [FILE|-]     print the preservable version of a domain XML
  prepare DOMAIN...      make domains' persistent definitions preservable

Options:
  -c, --connect URI      libvirt connection URI (default: libvirt's default,
                         qemu:///system for root)
  -h, --help             show this help
  -V, --version          show the version

Exit status: 0 done, 1 failed, 2 refused or invalid input (nothing changed).
)";

struct Args {
    std::string uri;
    std::string command;
    std::vector<std::string> rest;
};

int report(const Error& e) {
    std::cerr << "vmupdate: " << e.message() << '\n';
    return exit_code(e);
}

int usage_error(const std::string& what) {
    std::cerr << "vmupdate: " << what << "\nTry 'vmupdate --help'.\n";
    return 2;
}

int cmd_translate(const Args& args) {
    if (args.rest.size() > 1)
        return usage_error("translate takes at most one FILE");
    std::string source = args.rest.empty() ? "-" : args.rest[0];
    std::string text;
    if (source == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
        std::ifstream in(source, std::ios::binary);
        if (!in) {
            // An unreadable input is invalid input (exit 2), like a malformed one.
            Error e = fail_errno(errno, source, "cannot open").error();
            e.code = Errc::invalid_input;
            return report(e);
        }
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto t = translate_domain(text, source == "-" ? "<stdin>" : source);
    if (!t)
        return report(t.error());
    std::cout << t->xml;
    std::cout.flush();
    return std::cout ? 0 : 1;
}

int cmd_prepare(const Args& args) {
    if (args.rest.empty())
        return usage_error("prepare needs at least one DOMAIN");
    auto conn = Connection::open(args.uri);
    if (!conn)
        return report(conn.error());
    int rc = 0;
    for (const auto& name : args.rest) {
        auto p = prepare_domain(*conn, name);
        if (!p) {
            rc = std::max(rc, report(p.error()));
            continue;
        }
        if (p->changes.empty()) {
            std::cout << p->name << ": already prepared\n";
            continue;
        }
        std::cout << p->name << ": prepared (";
        for (size_t i = 0; i < p->changes.size(); ++i)
            std::cout << (i ? "; " : "") << p->changes[i];
        std::cout << ")\n";
        if (p->running)
            std::cout << p->name
                      << ": the domain is running: the change takes effect at its next cold start "
                         "(shut it down and start it; a reboot inside the guest is not enough)\n";
    }
    auto dir = backing_dir_for(*conn, std::string(system_qemu_conf));
    if (!dir)
        std::cerr << "vmupdate: warning: " << dir.error().message() << '\n';
    else if (*dir)
        if (auto w = backing_dir_warning(**dir))
            std::cerr << "vmupdate: warning: " << *w << '\n';
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    Args args;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::cout << usage_text;
            return 0;
        }
        if (a == "-V" || a == "--version") {
            std::cout << "vmupdate " << vmupdate::version << '\n';
            return 0;
        }
        if (a == "-c" || a == "--connect") {
            if (i + 1 >= argc)
                return usage_error(a + " needs a URI");
            args.uri = argv[++i];
            continue;
        }
        if (a.starts_with("--connect=")) {
            args.uri = a.substr(10);
            continue;
        }
        if (a.starts_with("-") && a != "-")
            return usage_error("unknown option " + a);
        break;
    }
    if (i >= argc)
        return usage_error("no command given");
    args.command = argv[i++];
    for (; i < argc; ++i)
        args.rest.emplace_back(argv[i]);

    if (args.command == "translate")
        return cmd_translate(args);
    if (args.command == "prepare")
        return cmd_prepare(args);
    if (args.command == "help") {
        std::cout << usage_text;
        return 0;
    }
    return usage_error("unknown command '" + args.command + "'");
}
