// Errors as values: every fallible library call returns Result<T>.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace vmupdate {

/// What kind of failure an Error is; decides the CLI's exit code.
enum class Errc {
    invalid_input, ///< the input cannot be understood (malformed XML, bad argument)
    refused,       ///< understood, but vmupdate will not do it (unsupported domain)
    not_found,     ///< a named object does not exist
    busy,          ///< another vmupdate run holds the object (nothing was changed)
    system,        ///< a system call failed
    libvirt,       ///< libvirt reported an error
    qmp,           ///< QEMU's monitor reported an error
    timeout,       ///< something did not happen in time
    verify,        ///< an operation completed but its result is not what it must be
    ram_held,      ///< failed with a guest's RAM still held (not lost, not in place): retry
    ram_lost,      ///< failed, and a guest's RAM is lost
};

/// A failure: which object, which step, and the cause, e.g.
/// {system, "web1", "cannot link RAM file /x/pc.ram", "File exists"}.
struct Error {
    Errc code = Errc::system;
    std::string object; ///< domain name, file or device the failure concerns; may be empty
    std::string step;   ///< what was being done, in words an operator understands
    std::string cause;  ///< why it failed (strerror, libvirt's or QEMU's message)

    /// "object: step: cause", leaving out empty parts.
    [[nodiscard]] std::string message() const;
};

/// The result of a fallible operation.
template <typename T> using Result = std::expected<T, Error>;

/// Shorthand for returning an error: `return fail(Errc::refused, name, "step", "cause");`.
[[nodiscard]] inline std::unexpected<Error> fail(Errc code, std::string object, std::string step,
                                                 std::string cause = {}) {
    return std::unexpected(Error{code, std::move(object), std::move(step), std::move(cause)});
}

/// An Error for a failed system call: cause is strerror(err).
[[nodiscard]] std::unexpected<Error> fail_errno(int err, std::string object, std::string step);

/// Exit code conventions shared by the CLI and the hook: 2 for refused or invalid
/// requests (nothing was changed), 1 for operations that failed, RAM lost or
/// still held included (never 2: something did change).
[[nodiscard]] int exit_code(const Error& e);

} // namespace vmupdate
