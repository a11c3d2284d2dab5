#!/usr/bin/env python3
"""End-to-end fault cases: `vmupdate host-update` killed at each of its steps, in
a throwaway host VM (tests/e2e/hostvm.py), so that the kexec it would do can only
ever hit that VM.

The host VM runs its own libvirtd with memory_backing_dir on a DAX mount of pmem,
and the counter guest (nested TCG), prepared and started. For each step of
host-update (test points: `host-update:planned` = pre-flight passed and kernel
loaded, nothing paused; `save:managed-saved` = the guest's save done inside
host-update; `host-update:saved` = every save done, before the re-check and sync;
`host-update:kexec` = state synced, just before `kexec -e`) and a signal (by
default 5 cases: every step, every signal, SIGKILL once the guest is saved;
SIGINT, SIGTERM and SIGHUP share one handler; VMUPDATE_E2E_ALL_SIGNALS=1: all 16
combinations), the stage runs
host-update with the CLI stopped at that point, sends the signal, lets it go on,
and then:
  - SIGINT/SIGTERM/SIGHUP: host-update must have undone itself: exit non-zero,
    the guest running (restored if it was saved), the new kernel unloaded;
  - SIGKILL: the guest is running (killed before any save) or saved; then a
    plain `vmupdate restore GUEST` must bring it back.
After every case: the guest runs, it ticks, x-ignore-shared is off and no save is
left recorded for it. At the end, from the guest's serial log: one boot id, the
counter went on and the memory checksum never changed across all cases, and the
host VM never rebooted (one boot id).
Needs a build with -DVMUPDATE_TEST_POINTS=ON (otherwise SKIPPED).
The stage: tests/e2e/stages/host_update_signals.sh (and capability_check.py).
Exit 0 pass, 1 fail, 77 skipped."""
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import log  # noqa: E402
from test_points import point  # noqa: E402

GUEST = "vmu-e2e-signals"
POINTS = [point("host-update:planned"), point("save:managed-saved"), point("host-update:saved"),
          point("host-update:kexec")]
SIGNALS = ["INT", "TERM", "HUP", "KILL"]
# By default (CI) each step and each signal once; SIGKILL where it leaves a saved
# guest behind (the caught three share one handler). VMUPDATE_E2E_ALL_SIGNALS=1
# runs all 16 combinations.
DEFAULT_CASES = [(point(p), s) for p, s in [
    ("host-update:planned", "INT"), ("save:managed-saved", "HUP"), ("save:managed-saved", "KILL"),
    ("host-update:saved", "TERM"), ("host-update:kexec", "INT")]]


def main():
    hostvm.skip_unless_ready()
    if not e2elib.points_built():
        vmtest.skip("built without test points (configure with -DVMUPDATE_TEST_POINTS=ON)")
    guest = vmtest.find_test_guest()
    cli, hook, helper = e2elib.binaries()
    wd = e2elib.work_dir("host-update-signals")
    t0 = time.monotonic()
    wanted = ([(p, s) for p in POINTS for s in SIGNALS]
              if os.environ.get("VMUPDATE_E2E_ALL_SIGNALS") == "1" else DEFAULT_CASES)
    files = dict(e2elib.guest_files(GUEST, guest), **e2elib.bin_files(cli, hook, helper))
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(e2elib.WORK_ROOT, "cache")) as vm:
        vm.start_stage("host_update_signals",
                       {"GUEST": GUEST, "CASES": " ".join("%s/%s" % c for c in wanted)}, files=files)
        vm.wait_for(r"VMU-STEP libvirtd ok", 300)
        vm.wait_for(r"VMU-STEP guest ok", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        first = serial.last_tick()
        cases = []
        case_re = (r"VMU-CASE point=(\S+) signal=(\S+) rc=(\d+) outcome=(\S+) "
                   r"kexec_loaded=(\d) (.*)")
        since = 0
        for _ in wanted:
            m, t = vm.wait_for(case_re, 300, since=since)
            lines = vm.lines()
            since = 1 + next(i for i in range(since, len(lines))
                             if re.search(case_re, lines[i][1]))
            cases.append((m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5), t))
            log("case %s %s: exit %s, %s, kernel still loaded: %s (at %.0f s)"
                % (m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), t))
        vm.wait_for(r"VMU-STEP cases ok", 120)
        e2elib.finish(vm, 1)
        problems = []
        for (p, s, rc, outcome, loaded, _), (ep, es) in zip(cases, wanted):
            if (p, s) != (ep, es):
                problems.append("case order: got %s %s, expected %s %s" % (p, s, ep, es))
                continue
            if rc == 0:
                problems.append("%s %s: host-update exited 0" % (p, s))
            if s != "KILL":
                # Caught: host-update undoes itself, nothing for the operator to do.
                if outcome != "running" or loaded != "0":
                    problems.append("%s %s: %s, kernel loaded %s (expected: guest running, "
                                    "kernel unloaded)" % (p, s, outcome, loaded))
            else:
                want = "running" if p == "host-update:planned" else "restored"
                if outcome != want:
                    problems.append("%s KILL: %s, expected %s" % (p, outcome, want))
        assert not problems, "; ".join(problems)
        serial.assert_continued(first, serial.last_tick(), consecutive=False)
        # For scripts/reliability-table (docs/reliability.md).
        for p, s, _, outcome, _, _ in cases:
            print("FAULT host-update %s SIG%s -> %s lost=0" % (p, s, outcome), flush=True)
        log("RESULT host-update signals: %d cases, 0 VMs lost, whole test %.0f s"
            % (len(cases), time.monotonic() - t0))
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
