"""Fault case 1: the vmupdate CLI killed by SIGINT, SIGTERM, SIGHUP or SIGKILL at
each test point of save and of restore. Afterwards the guest runs on (same boot
id, same memory checksum, counter continues), or it is saved and a plain
`vmupdate restore DOMAIN` continues it; x-ignore-shared is never left on and no
manifest is left for a running domain. (host-update is covered by the e2e test:
its steps need kexec.)"""
import faults
import vmtest
import vmucli
from faults import CliRun, Injections, SIGNALS, settle

SAVE_POINTS = ["save:locked", "save:manifest-stored", "save:capability-on",
               "save:managed-saved", "save:stored"]
RESTORE_POINTS = ["restore:checked", "restore:started", "restore:done"]


def inject(inj, g, command, point, signame, sig):
    run = CliRun(command, g.name, point=point)
    if not run.wait_stopped():
        # No such point in this build: let the command end, settle, report.
        outcome, lost, problems = settle(g)
        inj.record(point, signame, "point-not-reached", lost,
                   ["CLI never stopped at %s (rc=%s): %s" % (point, run.rc, (run.err or "").strip())]
                   + problems)
        return
    run.signal(sig)
    run.finish()
    outcome, lost, problems = settle(g)
    inj.record(point, signame, outcome, lost, problems)


def main():
    kernel = faults.suite_setup()
    inj = Injections("cli-signal")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fsig") as g:
            for point in SAVE_POINTS:
                for signame, sig in SIGNALS:
                    if faults.selected(point, signame):
                        inject(inj, g, "save", point, signame, sig)
            for point in RESTORE_POINTS:
                for signame, sig in SIGNALS:
                    if not faults.selected(point, signame):
                        continue
                    if faults.try_save(inj, g, point, signame):
                        inject(inj, g, "restore", point, signame, sig)
    inj.finish()


vmtest.run(main)
