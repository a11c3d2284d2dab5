"""Fault case: the restore helper interrupted at its test point
`restore-helper-connected` (connected to the new QEMU's private monitor,
x-ignore-shared not switched on yet). libvirt starts the hook and the hook the
helper, so the point is armed by its file (/run/vmupdate/test-points/NAME).

  SIGKILL-helper: the helper is killed there;
  released-late:  the helper is held there until the restore has failed, then
                  let go on a QEMU that is gone.

Either way QEMU refuses the image (its capability is off, the stream's on): the
restore fails, image and preserved RAM are kept, and a plain `vmupdate restore
DOMAIN` continues the guest (same boot id, memory checksum unchanged, counter
on); x-ignore-shared is never left on and no manifest is left behind."""
import os
import signal
import time

import faults
import vmtest
import vmucli
from faults import HELPER, CliRun, HookPoint, Injections, helper_pids, settle
from vmtest import log

POINT = "restore-helper-connected"


def wait_gone(pids, timeout=30):
    """Until the released helpers have ended (their failure recorded), so that
    the plain restore that follows does not race them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % p) for p in pids):
        time.sleep(0.05)


def inject(inj, g, variant):
    hp = HookPoint(POINT)
    hp.arm()
    run = CliRun("restore", g.name)
    pids = []
    try:
        reached = hp.wait_reached(timeout=60, proc=run)
        if reached:
            pids = helper_pids(g.uuid)
            if variant == "SIGKILL-helper":
                for pid in pids:
                    log("kill -KILL %s %d" % (HELPER, pid))
                    os.kill(pid, signal.SIGKILL)
                hp.release()
                run.finish()
            else:
                run.finish()
                hp.release()
                wait_gone(pids)
    finally:
        hp.disarm()
        if run.rc is None:
            run.finish()
    outcome, lost, problems = settle(g, expect=("restored",))
    if not reached:
        problems.insert(0, "the restore helper never stopped at %s (CLI rc=%s)" % (POINT, run.rc))
        outcome = "point-not-reached"
    elif not pids:
        problems.insert(0, "no %s process for %s at %s" % (HELPER, g.uuid, POINT))
    elif run.rc == 0:
        problems.insert(0, "the restore succeeded without the helper switching x-ignore-shared on")
    inj.record("restore/" + POINT, variant, outcome, lost, problems)


def main():
    kernel = faults.suite_setup()
    inj = Injections("restore-helper")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "frh") as g:
            for variant in ("SIGKILL-helper", "released-late"):
                if faults.selected("restore/" + POINT, variant):
                    if faults.try_save(inj, g, "restore/" + POINT, variant):
                        inject(inj, g, variant)
    inj.finish()


vmtest.run(main)
