// `vmupdate translate [FILE|-]`: print the preservable version of a domain XML.
#include "handlers.hpp"
#include "output.hpp"
#include "vmupdate/domain_xml.hpp"

#include <cerrno>
#include <fstream>
#include <iostream>
#include <iterator>

namespace vmupdate::cli {

int cmd_translate(const Invocation& in) {
    const auto& files = in.args.operands;
    if (files.size() > 1)
        return usage_error("translate takes at most one FILE", "translate");
    std::string source = files.empty() ? "-" : files[0];
    std::string text;
    if (source == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
        std::ifstream file(source, std::ios::binary);
        if (!file) {
            // An unreadable input is invalid input (exit 2), like a malformed one.
            Error e = fail_errno(errno, source, "cannot open").error();
            e.code = Errc::invalid_input;
            return report(e);
        }
        text.assign(std::istreambuf_iterator<char>(file), {});
    }
    auto t = translate_domain(text, source == "-" ? "<stdin>" : source);
    if (!t)
        return report(t.error());
    std::cout << t->xml;
    std::cout.flush();
    return std::cout ? 0 : 1;
}

} // namespace vmupdate::cli
