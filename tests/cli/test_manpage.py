#!/usr/bin/env python3
"""docs/man/vmupdate.8 renders without warnings and documents every command and
option of the help table, and the sections an operator looks for.

usage: test_manpage.py VMUPDATE MANPAGE"""

import re
import shutil
import subprocess
import sys

from clitest import SKIP, Checker, commands, options

cli, page = sys.argv[1], sys.argv[2]
if not shutil.which("groff"):
    print("SKIPPED: groff not installed (groff-base)")
    sys.exit(SKIP)
c = Checker()

out = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
c.check(out.returncode == 0 and out.stderr == "",
        "groff -man -ww -z: exit %d, %s" % (out.returncode, out.stderr))
if shutil.which("man"):
    out = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                         env={"MANPAGER": "cat", "MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    c.check(out.returncode == 0 and out.stderr == "",
            "man --warnings -l: exit %d, %s" % (out.returncode, out.stderr))

source = open(page).read()


def troff(text):
    """How text is written in the page's source: '-' escaped."""
    return text.replace("-", r"\-")


headings = set(re.findall(r"^\.SS (.+)$", source, re.M))
for name in commands(cli):
    c.check(troff(name) in headings, "no .SS %s for the command %s" % (troff(name), name))
    for option in options(cli, name):
        c.check(troff(option) in source, "%s: option %s is not in the page" % (name, option))
for option in options(cli, "") + ["-c", "--connect", "-V", "--version"]:
    c.check(troff(option) in source, "global option %s is not in the page" % option)

for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                "FILES", "EXAMPLES", "SEE ALSO"]:
    c.check(re.search(r'^\.SH "?%s"?$' % section, source, re.M), "no section " + section)
for path in ["/var/lib/vmupdate", "/run/vmupdate", "/var/log/vmupdate/hook.log",
             "/etc/libvirt/hooks/qemu.d/", "vmupdate-restore.service"]:
    c.check(troff(path) in source, "FILES: %s missing" % path)
for ref in [".BR virsh (1)", ".BR libvirtd (8)"]:
    c.check(ref in source, "SEE ALSO: %s missing" % ref)
c.done()
