#!/usr/bin/env python3
"""packaging/bash-completion/vmupdate: sourced in bash, its function completes
the commands, every command's options (as the help table lists them), the
subcommands of pool and hook, and domain names from virsh (a fake one on PATH,
which records the -c URI it was given).

usage: test_completion.py VMUPDATE COMPLETION"""

import os
import shutil
import subprocess
import sys
import tempfile

from clitest import Checker, commands, groups, options

cli, script = sys.argv[1], sys.argv[2]
c = Checker()
tmp = tempfile.mkdtemp(prefix="vmupdate-completion-")
try:
    # A virsh that knows three domains and records how it was called.
    fake_virsh = os.path.join(tmp, "virsh")
    with open(fake_virsh, "w") as f:
        f.write('#!/bin/sh\necho "$@" >> "%s/virsh.args"\nprintf "web1\\nweb2\\ndb1\\n\\n"\n' % tmp)
    # The completion asks the vmupdate typed what to offer (__complete); these
    # fakes pass that on to the real one.
    complete_cmd = 'if [ "$1" = __complete ]; then exec "%s" "$@"; fi\n' % os.path.abspath(cli)
    # A vmupdate whose status says only db1 has a save.
    fake_cli = os.path.join(tmp, "vmupdate")
    with open(fake_cli, "w") as f:
        f.write("#!/bin/sh\n" + complete_cmd +
                "echo \"$@\" >> \"%s/vmupdate.args\"\ncat <<'J'\n" % tmp +
                '[\n  {\n    "name": "web1",\n    "save_state": "",\n    "saved": false,\n'
                '    "uuid": "u1"\n  },\n  {\n    "name": "db1",\n    "save_state": "saved",\n'
                '    "saved": true,\n    "uuid": "u2"\n  }\n]\nJ\n')
    # A vmupdate whose status does not answer (not root, no libvirt).
    silent_cli = os.path.join(tmp, "vmupdate-silent")
    with open(silent_cli, "w") as f:
        f.write("#!/bin/sh\n" + complete_cmd + "exit 1\n")
    os.chmod(fake_virsh, 0o755)
    os.chmod(fake_cli, 0o755)
    os.chmod(silent_cli, 0o755)
    env = dict(os.environ, PATH=tmp + ":" + os.environ.get("PATH", "/usr/bin:/bin"))

    def complete(*words, command="vmupdate", path=None, home=None):
        """The candidates for the last word of `command words...`."""
        prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
                'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _vmupdate; '
                'printf "%s\\n" "${COMPREPLY[@]}"')
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog, "bash", script,
                              command, *words], capture_output=True, text=True,
                             env=dict(env, PATH=path or env["PATH"], HOME=home or tmp),
                             timeout=30)
        c.check(out.returncode == 0 and out.stderr == "",
                "completing %s: exit %d, %s" % (words, out.returncode, out.stderr))
        return sorted(w for w in out.stdout.split("\n") if w)

    def expect(got, want, what):
        c.check(got == sorted(want), "%s: got %s, want %s" % (what, got, sorted(want)))

    names = commands(cli)
    top = list(dict.fromkeys(n.split()[0] for n in names))
    expect(complete(""), top, "commands")
    expect(complete("s"), [n for n in top if n.startswith("s")], "commands starting with s")
    expect(complete("-"), options(cli, ""), "global options")
    # Every command's options: those of its help.
    for name in names:
        expect(complete(*name.split(), "-"), options(cli, name), "options of " + name)
    expect(complete("save", "--p"), ["--parallel"], "save --p")
    # The vmupdate typed as ~/..., expanded as the shell will run it.
    expect(complete("po", command="~/vmupdate", home=tmp), ["pool"], "~/vmupdate po")
    for group in groups(names):
        subs = [n.split()[1] for n in names if n.startswith(group + " ")]
        expect([w for w in complete(group, "") if not w.startswith("-")], subs,
               "subcommands of " + group)
    expect(complete("pool", "create", "--fs", ""), ["ext4", "xfs"], "pool create --fs")
    expect(complete("help", "pool", ""), ["create", "list"], "help pool")

    # Domain names, from virsh at the URI given before the command.
    expect(complete("save", ""), ["web1", "web2", "db1"], "save: domains")
    expect(complete("save", "w"), ["web1", "web2"], "save w: domains")
    expect(complete("prepare", "web1", "d"), ["db1"], "prepare web1 d: domains")
    expect(complete("save", "--", ""), ["web1", "web2", "db1"], "save --: domains")
    open(os.path.join(tmp, "virsh.args"), "w").close()
    # bash splits qemu:///system at ':' (COMP_WORDBREAKS).
    expect(complete("-c", "qemu", ":", "///system", "save", "web"), ["web1", "web2"],
           "save with -c")
    complete("--connect", "=", "test", ":", "///default", "save", "")
    with open(os.path.join(tmp, "virsh.args")) as f:
        calls = f.read().split("\n")
    c.check(calls[0].split() == ["-q", "-c", "qemu:///system", "list", "--all", "--name"],
            "virsh called with -c qemu:///system: %r" % calls[0])
    c.check(calls[1].split() == ["-q", "-c", "test:///default", "list", "--all", "--name"],
            "virsh called with --connect=: %r" % calls[1])
    # restore and discard: the domains vmupdate status says have a save.
    expect(complete("-c", "test:///x", "restore", "", command=fake_cli), ["db1"],
           "restore: saved domains")
    expect(complete("discard", "", command=fake_cli), ["db1"], "discard: saved domains")
    with open(os.path.join(tmp, "vmupdate.args")) as f:
        c.check(f.readline().split() == ["-c", "test:///x", "status", "--json"],
                "status --json called with -c")
    # ... or every domain when vmupdate status does not answer.
    expect(complete("restore", "", command=silent_cli), ["web1", "web2", "db1"],
           "restore without status: all domains")
    # No options or domains after options that take a value.
    expect(complete("save", "--parallel", ""), [], "save --parallel")
    expect(complete("status", ""), [], "status takes no domain")

    # Domain names are data, whoever chose them: completing them runs nothing
    # they contain, and offers each quoted (printf %q) so that the line runs
    # with the name as it is.
    evil_dir = os.path.join(tmp, "evil")
    os.mkdir(evil_dir)
    pwned = [os.path.join(tmp, "pwned-dollar"), os.path.join(tmp, "pwned-backtick")]
    evil = ["$(touch %s)" % pwned[0], "`touch %s`" % pwned[1], "web 3", "web'4", "*"]
    with open(os.path.join(evil_dir, "virsh"), "w") as f:
        f.write("#!/bin/sh\ncat <<'N'\n" + "\n".join(evil) + "\nN\n")
    os.chmod(os.path.join(evil_dir, "virsh"), 0o755)
    evil_path = evil_dir + ":" + env["PATH"]
    quoted = subprocess.run(["bash", "-c", 'printf "%q\\n" "$@"', "bash", *evil],
                            capture_output=True, text=True).stdout.split("\n")[:-1]
    expect(complete("save", "", path=evil_path), quoted, "save: names offered quoted")
    expect(complete("prepare", "web", path=evil_path), quoted[2:4], "prepare web: quoted")
    expect(complete("save", "$(", path=evil_path), quoted[:1], "save $(: the name, quoted")
    for p in pwned:
        c.check(not os.path.exists(p), "completing a domain name ran it: %s exists" % p)
finally:
    shutil.rmtree(tmp)
c.done()
