"""Fault case 3: the restoring QEMU killed (SIGKILL) during the restore: while
libvirt runs the `started begin` hook (QEMU exists, the device state is not
loaded yet), and right after QEMU's process appears (racing libvirt's start).
The restore fails; image and preserved RAM are kept; a plain `vmupdate restore
DOMAIN` then continues the guest."""
import os
import signal
import time

import faults
import vmtest
import vmucli
from faults import CliRun, HookPoint, Injections, settle
from vmtest import log


def kill_qemu(g):
    pid = g.dom.qemu_pid()
    if pid:
        log("kill -KILL qemu %d" % pid)
        os.kill(pid, signal.SIGKILL)
    return pid


def at_hook(inj, g):
    hp = HookPoint("hook-started-begin")
    hp.arm()
    run = CliRun("restore", g.name)
    try:
        reached = hp.wait_reached(timeout=60, proc=run)
        pid = kill_qemu(g) if reached else None
        hp.release()
        run.finish()
    finally:
        hp.disarm()
    outcome, lost, problems = settle(g)
    if not reached:
        problems.insert(0, "hook never stopped at hook-started-begin (CLI rc=%s)" % run.rc)
        outcome = "point-not-reached"
    elif not pid:
        problems.insert(0, "no QEMU process at hook-started-begin")
    elif run.rc != 1:
        problems.insert(0, "restore with its QEMU killed exited %s, not 1" % run.rc)
    inj.record("restore/hook-started-begin", "SIGKILL-qemu", outcome, lost, problems)


def racing(inj, g):
    """SIGKILL the new QEMU as soon as libvirt has written its pid file."""
    pidfile = os.path.join(vmtest.QEMU_RUN_DIR, g.dom.name + ".pid")
    vmtest._unlink(pidfile) if not g.dom.qemu_pid() else None
    run = CliRun("restore", g.name)
    pid = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run.proc.poll() is None:
        pid = g.dom.qemu_pid()
        if pid:
            break
        time.sleep(0.002)
    if pid:
        kill_qemu(g)
    run.finish()
    outcome, lost, problems = settle(g)
    if not pid:
        problems.insert(0, "QEMU pid never seen during the restore (CLI rc=%s)" % run.rc)
    inj.record("restore/qemu-appears", "SIGKILL-qemu", outcome, lost, problems)


def main():
    kernel = faults.suite_setup()
    inj = Injections("qemu-kill")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fqk") as g:
            for i in range(2):
                if faults.selected("restore/hook-started-begin", "SIGKILL-qemu"):
                    if faults.try_save(inj, g, "restore/hook-started-begin", "SIGKILL-qemu"):
                        at_hook(inj, g)
            for i in range(2):
                if faults.selected("restore/qemu-appears", "SIGKILL-qemu"):
                    if faults.try_save(inj, g, "restore/qemu-appears", "SIGKILL-qemu"):
                        racing(inj, g)
    inj.finish()


vmtest.run(main)
