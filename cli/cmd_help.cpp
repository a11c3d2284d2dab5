// `vmupdate help [COMMAND]`: the overview, or one command's help.
#include "handlers.hpp"
#include "help.hpp"
#include "output.hpp"

#include <iostream>

namespace vmupdate::cli {

int cmd_help(const Invocation& in) {
    if (in.args.operands.empty()) {
        std::cout << overview();
        return 0;
    }
    std::string name;
    for (const auto& a : in.args.operands)
        name += (name.empty() ? "" : " ") + a;
    const Command* command = find_command(name);
    if (!command)
        return usage_error("help: unknown command '" + name + "'");
    std::cout << command_help(*command);
    return 0;
}

} // namespace vmupdate::cli
