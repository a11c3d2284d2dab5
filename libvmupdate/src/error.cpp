#include "vmupdate/error.hpp"

#include <cstring>

namespace vmupdate {

std::string Error::message() const {
    std::string out;
    for (const std::string* part : {&object, &step, &cause}) {
        if (part->empty())
            continue;
        if (!out.empty())
            out += ": ";
        out += *part;
    }
    return out;
}

std::unexpected<Error> fail_errno(int err, std::string object, std::string step) {
    return fail(Errc::system, std::move(object), std::move(step), std::strerror(err));
}

int exit_code(const Error& e) {
    switch (e.code) {
    case Errc::invalid_input:
    case Errc::refused:
    case Errc::not_found:
    case Errc::busy: // another run holds the domain: this one changed nothing
        return 2;
    case Errc::ram_held: // the RAM is not where a restore finds it: not "nothing changed"
    case Errc::ram_lost:
        return 1;
    default:
        return 1;
    }
}

} // namespace vmupdate
