#!/usr/bin/env python3
"""End-to-end: a QEMU package update with the guest kept, in a throwaway host VM
(tests/e2e/hostvm.py), so that the packages are installed into that VM's overlay,
never into this machine.

The packages: this machine's qemu-system-x86 and qemu-system-common .debs (from
apt's cache, or `apt-get download`), repacked with bumped versions (+vmutest1,
+vmutest2, and a +vmutest3 whose preinst fails): real packages, installed by
apt-get and dpkg, whose QEMU binary the restore then runs. Inside the VM, the
counter guest (nested TCG, RAM on a tmpfs memory_backing_dir) is prepared and
started, then:
  1. (only with VMUPDATE_E2E_COMPARE=1: the baseline of the comparison) the
     four-command sequence, scripted: `vmupdate save --all`, `apt-get install`
     (+vmutest1), `vmupdate restore --all`;
  2. one command: `vmupdate host-update --packages` (+vmutest2);
  3. a failing install (+vmutest3): host-update exits 1, the guest is restored on
     the QEMU installed before (+vmutest2 stays).
After each: the guest continued (same boot id, counter on, checksum unchanged), the
installed version is the expected one, and the restored QEMU's binary is the new
one (its /proc/PID/exe is not "(deleted)"). The pause and phases of 1 and 2 are
logged for comparison. The stage: tests/e2e/stages/qemu_update.sh.
Exit 0 pass, 1 fail, 77 skipped."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import log  # noqa: E402

GUEST = "vmu-e2e-qemu-update"
PACKAGES = ["qemu-system-x86", "qemu-system-common"]


def find_deb(pkg, version, workdir):
    """The .deb of `pkg` at `version`: from apt's cache, else downloaded."""
    quoted = version.replace(":", "%3a")
    hits = glob.glob("/var/cache/apt/archives/%s_%s_*.deb" % (pkg, quoted))
    if hits:
        return hits[0]
    r = subprocess.run(["apt-get", "download", "%s=%s" % (pkg, version)], cwd=workdir,
                       capture_output=True, text=True)
    hits = glob.glob(os.path.join(workdir, "%s_%s_*.deb" % (pkg, quoted)))
    if r.returncode != 0 or not hits:
        vmtest.skip("no .deb of %s %s in apt's cache and apt-get download failed: %s"
                    % (pkg, version, r.stderr.strip()))
    return hits[0]


def repack(src, dst, version, new_version, fail_preinst=False):
    """`src` with its version (and its exact dependency on qemu-system-common) bumped."""
    d = dst + ".d"
    shutil.rmtree(d, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", src, d], check=True)
    control = os.path.join(d, "DEBIAN", "control")
    text = open(control).read()
    text = re.sub(r"(?m)^Version: .*$", "Version: " + new_version, text)
    text = text.replace("qemu-system-common (= %s)" % version, "qemu-system-common (= %s)" % new_version)
    open(control, "w").write(text)
    if fail_preinst:
        pre = os.path.join(d, "DEBIAN", "preinst")
        open(pre, "w").write("#!/bin/sh\necho 'vmutest: this preinst fails on purpose' >&2\nexit 1\n")
        os.chmod(pre, 0o755)
    subprocess.run(["dpkg-deb", "-Znone", "-b", d, dst], check=True, capture_output=True)
    shutil.rmtree(d)


def main():
    hostvm.skip_unless_ready(extra_tools=("dpkg-deb", "apt-get"))
    guest = vmtest.find_test_guest()
    cli, hook, helper = e2elib.binaries()
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "qemu-system-x86"],
                             capture_output=True, text=True).stdout.strip()
    if not version:
        vmtest.skip("qemu-system-x86 is not installed as a package")
    wd = e2elib.work_dir("qemu-update")
    debs = os.path.join(wd, "debs")
    os.makedirs(debs, exist_ok=True)
    t0 = time.monotonic()
    files = {}
    for pkg in PACKAGES:
        src = find_deb(pkg, version, debs)
        for n in (1, 2, 3):
            dst = os.path.join(debs, "%s_vmutest%d.deb" % (pkg, n))
            repack(src, dst, version, "%s+vmutest%d" % (version, n),
                   fail_preinst=(n == 3 and pkg == "qemu-system-x86"))
            files["debs/" + os.path.basename(dst)] = "@" + dst
    log("repacked %s %s as +vmutest1..3 in %.1f s" % (" ".join(PACKAGES), version,
                                                    time.monotonic() - t0))
    files.update(e2elib.guest_files(GUEST, guest))
    files.update(e2elib.bin_files(cli, hook, helper))
    # The four-command baseline is a measurement, not a check: its own install
    # costs minutes under TCG, so it runs only when asked for.
    compare = os.environ.get("VMUPDATE_E2E_COMPARE") == "1"
    with hostvm.HostVM(wd, pmem=None, persist_root=False,
                       cache_dir=os.path.join(e2elib.WORK_ROOT, "cache")) as vm:
        vm.start_stage("qemu_update", {"GUEST": GUEST, "COMPARE": int(compare)}, files=files)
        vm.wait_for(r"VMU-STEP libvirtd ok", 300)
        vm.wait_for(r"VMU-STEP guest ok", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        first = serial.last_tick()
        four = vm.wait_for(r"VMU-STEP four ok\b(.*)", 900)[0] if compare else None
        one, _ = vm.wait_for(r"VMU-STEP one ok\b(.*)", 900)
        broken, _ = vm.wait_for(r"VMU-STEP broken ok\b(.*)", 600)
        e2elib.finish(vm, 1)
        serial.assert_continued(first, serial.last_tick(), consecutive=False)
        four_out = e2elib.read_shared(vm, "four.out") if compare else ""
        one_out = e2elib.read_shared(vm, "one.out")
        broken_out = e2elib.read_shared(vm, "broken.out")
        pause4 = e2elib.pause_of(four_out)
        pause1 = e2elib.pause_of(one_out)
        phases = re.search(r"phases: (.*)", one_out)
        assert pause1 != "?" and phases, one_out
        assert one.group(1).strip().endswith("+vmutest2"), one.group(1)
        assert broken.group(1).strip().endswith("+vmutest2"), \
            "after the failed install: %s" % broken.group(1)
        log("RESULT qemu-update: four commands (scripted): %s; guest pause %s s | one command: "
            "%s; guest pause %s s | whole test %.0f s"
            % (four.group(1).strip() if four else "not run (VMUPDATE_E2E_COMPARE=1 runs it)",
               pause4 if compare else "-", phases.group(1), pause1, time.monotonic() - t0))
        log("one command output:\n" + one_out)
        log("failed install output:\n" + broken_out)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
