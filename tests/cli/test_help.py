#!/usr/bin/env python3
"""`vmupdate COMMAND --help`, `-h` and `vmupdate help COMMAND` for every command
of the help table: exit 0 with that command's usage on stdout. --help after
"--" is a domain name, not a request for help; unknown options exit 2.

usage: test_help.py VMUPDATE"""

import sys

from clitest import Checker, commands, groups, run

cli = sys.argv[1]
c = Checker()
# The libvirt test driver: in-process, no daemon, nothing of the host's touched.
test_uri = "test:///default"

names = commands(cli)
c.check(len(names) == len(set(names)), "commands in the overview, each once: %s" % names)
for required in ["translate", "prepare", "save", "restore", "discard", "status",
                 "host-update", "pool list", "pool create", "hook install",
                 "hook uninstall", "help"]:
    c.check(required in names, "%s is in the overview" % required)

overview = run(cli, "--help")
for args in (["-h"], ["help"], ["-c", test_uri, "--help"]):
    out = run(cli, *args)
    c.check(out.returncode == 0 and out.stdout == overview.stdout,
            "vmupdate %s prints the overview" % " ".join(args))

for name in names + groups(names):
    words = name.split()
    for args in (words + ["--help"], words + ["-h"], ["help"] + words):
        out = run(cli, *args)
        c.check(out.returncode == 0 and out.stdout.startswith("usage: vmupdate " + name)
                and out.stderr == "",
                "vmupdate %s: exit %d, stdout %r, stderr %r"
                % (" ".join(args), out.returncode, out.stdout[:60], out.stderr))

# --help anywhere among the options.
for args in (["save", "--parallel", "2", "web1", "--help"], ["restore", "--all", "-v", "-h"],
             ["pool", "create", "--size", "4G", "--help"], ["hook", "install", "--dry-run", "-h"]):
    out = run(cli, *args)
    c.check(out.returncode == 0 and out.stdout.startswith("usage: vmupdate "),
            "vmupdate %s prints help" % " ".join(args))

# After "--" it is a domain name: the command runs (and fails: no such domain).
for args in (["save", "--", "--help"], ["prepare", "--", "--help"],
             ["restore", "--", "-h"], ["discard", "--", "--help"]):
    out = run(cli, "-c", test_uri, *args)
    c.check(out.returncode != 0 and "usage:" not in out.stdout,
            "vmupdate %s is not help: exit %d, stdout %r, stderr %r"
            % (" ".join(args), out.returncode, out.stdout[:60], out.stderr.strip()))
# ... and as the value of an option that takes one.
out = run(cli, "host-update", "--append", "--help")
c.check(out.returncode == 2 and "usage:" not in out.stdout,
        "host-update --append --help is not help: %r" % out.stderr)

# Unknown options and commands: exit 2, a message, a pointer to the help.
for args in (["--bogus"], ["bogus"], ["bogus", "--help"], ["help", "bogus"],
             ["translate", "--bogus"], ["prepare", "--bogus", "web1"], ["save", "--bogus"],
             ["restore", "--bogus"], ["discard", "--bogus", "web1"], ["status", "--bogus"],
             ["host-update", "--bogus"], ["pool", "bogus"], ["pool", "list", "--bogus"],
             ["pool", "create", "--bogus"], ["hook", "bogus"], ["hook", "install", "--bogus"],
             ["hook", "uninstall", "--bogus"]):
    out = run(cli, "-c", test_uri, *args)
    c.check(out.returncode == 2 and out.stderr.startswith("vmupdate: ") and out.stdout == "",
            "vmupdate %s: exit %d (want 2), stderr %r"
            % (" ".join(args), out.returncode, out.stderr.strip()))

# A --hook that is not there is invalid input (exit 2), not a failure, with or
# without --dry-run; nothing is linked.
missing = "/nonexistent/vmupdate-hook"
for args in (["hook", "install", "--hook", missing, "--dry-run"],
             ["hook", "install", "--hook=" + missing]):
    out = run(cli, *args)
    c.check(out.returncode == 2
            and out.stderr == "vmupdate: %s: cannot install the hook: no such file\n" % missing
            and out.stdout == "",
            "vmupdate %s: exit %d (want 2), stderr %r"
            % (" ".join(args), out.returncode, out.stderr.strip()))
c.done()
