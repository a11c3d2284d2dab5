"""What the CLI tests share: running vmupdate, and the commands and options of
its help table read from `vmupdate --help` and `vmupdate COMMAND --help`, so
that the man page and the completion are checked against the table itself."""

import re
import subprocess
import sys

SKIP = 77


def run(cli, *args, **kw):
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=60, **kw)


def commands(cli):
    """Every command of the overview ("save", "pool create", ...), in its order."""
    out = run(cli, "--help")
    assert out.returncode == 0, out
    section = out.stdout.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    names = []
    for line in section.splitlines():
        # An entry starts in column 2 with its command words (lower case); its
        # arguments are upper case, bracketed or options.
        if not re.match(r"^  [a-z]", line):
            continue
        words = []
        # The summary follows the synopsis after two spaces or more.
        for w in line[2:].split("  ")[0].split():
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            words.append(w)
        # A command with several forms (host-update) has one line per form.
        name = " ".join(words)
        if not names or names[-1] != name:
            names.append(name)
    return names


def groups(names):
    """The commands that have subcommands ("pool", "hook")."""
    return sorted({n.split()[0] for n in names if " " in n})


def options(cli, command):
    """The options in `vmupdate COMMAND --help`'s Options section."""
    out = run(cli, *command.split(), "--help")
    assert out.returncode == 0, out
    if "\nOptions:\n" not in out.stdout:
        return []
    section = out.stdout.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    found = []
    for line in section.splitlines():
        if not line.startswith("  -"):
            continue
        for w in line.split():
            if not w.startswith("-"):
                break
            found.append(w.rstrip(","))
    return found


class Checker:
    """Collects failures; exit status 1 if any."""

    def __init__(self):
        self.failures = 0

    def check(self, ok, what):
        if not ok:
            self.failures += 1
            print("FAIL", what)
        return ok

    def done(self):
        print("FAILED: %d" % self.failures if self.failures else "ok")
        sys.exit(1 if self.failures else 0)
