// The typed option rows of a command and the one parser that reads arguments by
// them: the same rows print the help (help.hpp) and drive the completion
// (complete.hpp), so what is parsed, documented and completed cannot drift.
#pragma once

#include <expected>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmupdate::cli {

/// What an option takes.
enum class Kind {
    flag,    ///< nothing: --dry-run
    string,  ///< one value: --kernel K, --kernel=K
    integer, ///< one whole number from `min` to `max`, checked by the parser
    list,    ///< values: --packages A B C, and every operand after it
};

/// How the completion offers an option's value.
enum class ValueHint {
    none,  ///< nothing sensible to offer (a size, a URI)
    file,  ///< a file name
    dir,   ///< a directory name
    words, ///< one of `choices`
};

/// One option of a command, e.g. {"--parallel", "N", "save N domains at a time"}.
struct Option {
    std::string_view names{}; ///< "-v, --verbose": every spelling, ", "-separated, long last
    std::string_view arg{};   ///< the value it takes ("N"), empty for a flag
    std::string_view text{};  ///< one line of help
    Kind kind = Kind::flag;
    long min = 0; ///< the range of an integer
    long max = 0;
    ValueHint hint = ValueHint::none;
    std::string_view choices{}; ///< "ext4 xfs": the only values accepted, if not empty
};

/// The spellings of `option`: {"-v", "--verbose"}.
[[nodiscard]] std::vector<std::string_view> spellings(const Option& option);

/// The row `arg` spells ("--parallel", "-v"), or nullptr.
[[nodiscard]] const Option* find_option(std::span<const Option> options, std::string_view arg);

/// Whether `arg` is an option word: starts with '-' and is not "-" (standard input).
[[nodiscard]] bool is_option_word(std::string_view arg);

/// The arguments of one command, read by its rows; options keyed by their long name.
class Parsed {
public:
    /// Whether the option was given.
    [[nodiscard]] bool has(std::string_view name) const { return values_.contains(name); }
    /// The value of a string option, or nullopt when it was not given.
    [[nodiscard]] std::optional<std::string> value(std::string_view name) const;
    /// The value of an integer option, or `fallback`.
    [[nodiscard]] long integer(std::string_view name, long fallback) const;
    /// Every value of a list option (empty when not given).
    [[nodiscard]] std::vector<std::string> list(std::string_view name) const;
    /// The words that are not options (domain names, a FILE), in order.
    std::vector<std::string> operands;

    /// Records option `name` (its long spelling) with `value`, if it has one.
    void add(std::string_view name, std::optional<std::string> value);

private:
    std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

/// Why arguments do not parse: what to tell, before "Try 'vmupdate CMD --help'".
struct ParseError {
    std::string message;
};

/// How a command reports arguments the parser rejects.
struct ParseRules {
    /// An unknown option or an operand where none is taken; "{}" is the word.
    std::string reject;
    /// Put before "--opt needs ..." ("save: ").
    std::string prefix;
    /// A string option without its value, "{}" the option; empty for
    /// prefix + "--opt needs a ARG".
    std::string missing;
    /// Whether the command takes operands; only then "--" ends the options.
    bool operands = false;
};

/// Reads `args` by `options`: `--opt value`, `--opt=value`, "--" (ends the
/// options when the command takes operands), integers checked against their range.
[[nodiscard]] std::expected<Parsed, ParseError> parse(std::span<const Option> options,
                                                      const ParseRules& rules,
                                                      const std::vector<std::string>& args);

} // namespace vmupdate::cli
