#include "output.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace vmupdate::cli {

int report(const Error& e) {
    std::cerr << "vmupdate: " << e.message() << '\n';
    return exit_code(e);
}

int usage_error(const std::string& what, const std::string& command) {
    std::cerr << "vmupdate: " << what << "\nTry 'vmupdate " << command
              << (command.empty() ? "" : " ") << "--help'.\n";
    return 2;
}

void warn(const std::string& what) {
    std::cerr << "vmupdate: warning: " << what << '\n';
}

void warn(const std::string& name, const std::vector<std::string>& warnings) {
    for (const auto& w : warnings)
        warn(name + ": " + w);
}

Answer confirm() {
    if (!isatty(STDIN_FILENO))
        return Answer::not_a_terminal;
    std::cout << "Continue? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    return answer == "y" || answer == "yes" ? Answer::yes : Answer::no;
}

bool refuse(const std::string& command, const std::vector<std::string>& warnings,
            const std::vector<std::string>& offenders) {
    for (const auto& w : warnings)
        warn(w);
    if (offenders.empty())
        return false;
    std::cerr << "vmupdate: " << command << " refused, nothing was paused:\n";
    for (const auto& o : offenders)
        std::cerr << "  " << o << '\n';
    return true;
}

std::string human_us(std::int64_t us) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << static_cast<double>(us) / 1e6 << " s";
    return os.str();
}

std::string seconds(double s) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(2) << s << " s";
    return os.str();
}

std::optional<int> go_ahead(bool dry_run, bool yes, const std::string& dry_run_done) {
    if (dry_run) {
        std::cout << dry_run_done << '\n';
        return 0;
    }
    if (yes)
        return std::nullopt;
    switch (confirm()) {
    case Answer::yes:
        return std::nullopt;
    case Answer::not_a_terminal:
        return usage_error("host-update: confirm with --yes (standard input is not a terminal)",
                           "host-update");
    case Answer::no:
        break;
    }
    std::cout << "nothing done\n";
    return 0;
}

} // namespace vmupdate::cli
