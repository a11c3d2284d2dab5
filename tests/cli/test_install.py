#!/usr/bin/env python3
"""A relocated install: `cmake --install BUILD --prefix TMP` (not the configured
prefix), then TMP/bin/vmupdate finds the hook installed next to it
(`hook install --dry-run` names TMP/SBINDIR/vmupdate-hook and
changes nothing), and the man page and bash completion are installed.

usage: test_install.py BUILD_DIR BINDIR SBINDIR MANDIR DATADIR
(the directories as CMAKE_INSTALL_<dir>, relative to the prefix)"""

import os
import shutil
import subprocess
import sys
import tempfile

from clitest import SKIP, Checker, run

build, bindir, hookdir, mandir, datadir = sys.argv[1:6]
if any(os.path.isabs(d) for d in (bindir, hookdir, mandir, datadir)):
    print("SKIPPED: an install directory is absolute, so the install cannot be relocated")
    sys.exit(SKIP)
c = Checker()
tmp = tempfile.mkdtemp(prefix="vmupdate-install-")
try:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    out = subprocess.run(["cmake", "--install", build, "--prefix", tmp], capture_output=True,
                         text=True, env=env, timeout=300)
    if not c.check(out.returncode == 0, "cmake --install: %s%s" % (out.stdout, out.stderr)):
        c.done()
    # Everything went below the prefix (an absolute DESTINATION would not).
    installed = [line.split(" ", 2)[-1] for line in out.stdout.splitlines()
                 if line.startswith("-- Installing: ") or line.startswith("-- Up-to-date: ")]
    c.check(installed, "cmake --install listed what it installed")
    for path in installed:
        c.check(path.startswith(tmp + "/"), "installed outside the prefix: " + path)

    hook = os.path.join(tmp, hookdir, "vmupdate-hook")
    cli = os.path.join(tmp, bindir, "vmupdate")
    c.check(os.access(hook, os.X_OK), "hook installed at " + hook)
    out = run(cli, "hook", "install", "--dry-run")
    c.check(out.returncode == 0 and out.stdout.strip().endswith(" -> " + hook),
            "hook install --dry-run: exit %d, stdout %r, stderr %r (want ... -> %s)"
            % (out.returncode, out.stdout, out.stderr, hook))
    c.check(out.stdout.startswith("would link /etc/libvirt/hooks/qemu.d/"),
            "hook install --dry-run names the link: %r" % out.stdout)
    # Moved once more, the tree still finds its own hook.
    moved = tmp + "-moved"
    os.rename(tmp, moved)
    try:
        out = run(os.path.join(moved, bindir, "vmupdate"), "hook", "install", "--dry-run")
        want = os.path.join(moved, hookdir, "vmupdate-hook")
        c.check(out.returncode == 0 and out.stdout.strip().endswith(" -> " + want),
                "moved tree: %r %r (want ... -> %s)" % (out.stdout, out.stderr, want))
    finally:
        os.rename(moved, tmp)
    # --hook names another one; a missing one is an error, nothing linked.
    out = run(cli, "hook", "install", "--dry-run", "--hook", os.path.join(tmp, "nonexistent"))
    c.check(out.returncode != 0 and "cannot install the hook" in out.stderr,
            "--dry-run with a missing hook: %d %r" % (out.returncode, out.stderr))

    c.check(os.path.isfile(os.path.join(tmp, mandir, "man8", "vmupdate.8")),
            "man page installed in %s/man8" % mandir)
    c.check(os.path.isfile(os.path.join(tmp, datadir, "bash-completion", "completions",
                                        "vmupdate")), "bash completion installed")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
c.done()
