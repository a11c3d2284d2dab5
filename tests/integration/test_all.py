"""`vmupdate save --all` / `restore --all --verbose`: every running managed
domain is saved and restored (in parallel), each guest continues, unmanaged
domains are not touched, and the phase breakdown of the pause is printed."""
import collections
import re

import vmtest
import vmucli
from vmucli import check

PHASE_RE = re.compile(r"^  (\S.*?)\s+[0-9.]+ ms$")
PHASES = [
    "device state saved to the image",
    "QEMU exit (libvirt's 200 ms kill poll), stop hooks",
    "vmupdate save checks",
    "between save and restore",
    "vmupdate restore checks, libvirt reads the image",
    "libvirt prepares the domain (hooks)",
    "QEMU launch and initialisation",
    "libvirt probes and sets up the new QEMU",
    "device state load",
    "started hook, resume",
]


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    # `--all` acts on every saved domain of the host: not on those of a killed test.
    vmtest.cleanup_stale_domains()
    with vmucli.hook_installed():
        doms = [vmtest.TestDomain(kernel, tag="all%d" % i, start=False) for i in range(3)]
        with vmtest.TestDomain(kernel, tag="all-unmanaged") as plain, doms[0], doms[1], doms[2]:
            for d in doms:
                check("prepare", d.name)
                d.start()
            before = {d.name: d.serial.wait_for_tick(2) for d in doms}
            plain_before = plain.wait_first_tick()

            r = check("save", "--all", "--parallel", "3")
            for d in doms:
                assert "%s: saved" % d.name in r.stdout, r.stdout
                assert d.state() == "shut off"
            assert plain.name not in r.stdout + r.stderr
            assert plain.state() == "running"

            r = check("restore", "--all", "--verbose")
            for d in doms:
                assert "%s: restored" % d.name in r.stdout, r.stdout
            # Every moment of every pause was found: no phase is missing or merged.
            phases = collections.Counter(m.group(1) for m in map(PHASE_RE.match, r.stdout.splitlines()) if m)
            assert phases == collections.Counter({p: 3 for p in PHASES}), r.stdout
            for d in doms:
                after = d.serial.wait_for_tick(before[d.name].tick + 2, timeout=60)
                d.serial.assert_continued(before[d.name], after)
            plain.serial.assert_continued(plain_before, plain.serial.wait_for_tick(plain_before.tick + 1))

            r = vmucli.vmupdate("restore", "--all")
            assert r.returncode == 0 and "no domain has a vmupdate save" in r.stdout, r.stdout


vmtest.run(main)
