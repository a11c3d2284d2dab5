"""Fault case 2: libvirtd killed (SIGKILL) or restarted (SIGTERM, then started
again) in the middle of a save (while libvirt runs the `release end` hook, after
QEMU stopped) and in the middle of a restore (while libvirt runs the `restore
begin`, `start begin` or `started begin` hook). The hook is held at the step
by its file-based test point. Afterwards the guest runs on, or a plain
`vmupdate restore DOMAIN` continues it."""
import signal
import threading
import time

import faults
import vmtest
import vmucli
from faults import CliRun, HookPoint, Injections, settle
from vmtest import log

STEPS = [("save", "hook-release-end"), ("restore", "hook-restore-begin"),
         ("restore", "hook-start-begin"), ("restore", "hook-started-begin")]


def inject(inj, daemons, g, command, point, variant):
    hp = HookPoint(point)
    hp.arm()
    run = CliRun(command, g.name)
    try:
        if not hp.wait_reached(timeout=60, proc=run):
            hp.disarm()
            run.finish()
            outcome, lost, problems = settle(g)
            inj.record("%s/%s" % (command, point), variant, "point-not-reached", lost,
                       ["hook never stopped at %s (CLI rc=%s: %s)"
                        % (point, run.rc, (run.err or "").strip())] + problems)
            return
        if variant == "SIGKILL":
            daemons.kill_libvirtd(signal.SIGKILL)
            hp.release()
        else:
            # An orderly restart: libvirtd may wait for its worker (blocked in the
            # hook) before it exits, so let the hook go on a moment later.
            t = threading.Timer(1.0, hp.release)
            t.start()
            daemons.stop_libvirtd()
            t.join()
        run.finish(timeout=120)
        daemons.ensure_virtlogd()
        daemons.start_libvirtd()
    finally:
        hp.disarm()
    # Let libvirtd finish reconnecting to (or cleaning up) the domain.
    time.sleep(1)
    log("after the fault: domstate %s, manifest %s"
        % (faults.domstate(g.ref), faults.manifest_state(g.uuid)))
    outcome, lost, problems = settle(g)
    inj.record("%s/%s" % (command, point), variant, outcome, lost, problems)


def main():
    kernel = faults.suite_setup()
    inj = Injections("libvirtd")
    with vmucli.hook_installed() as daemons:
        with faults.managed_guest(kernel, "flvd") as g:
            for command, point in STEPS:
                for variant in ("SIGKILL", "restart"):
                    if not faults.selected("%s/%s" % (command, point), variant):
                        continue
                    if command == "restore" and not faults.try_save(
                            inj, g, "%s/%s" % (command, point), variant):
                        continue
                    inject(inj, daemons, g, command, point, variant)
    inj.finish()


vmtest.run(main)
