"""Fault case 6: vmupdate's state directory full. A 64 KiB tmpfs is mounted on
/var/lib/vmupdate itself for each injection (the hook runs under libvirtd with
a clean environment, so the state directory cannot be redirected), and filled
with a junk file:
  full-before-save      : `vmupdate save` refuses, the guest runs on;
  full-at-managed-saved : the file system fills while save is stopped after
                          libvirt's managed save (CLI test point), so the final
                          manifest cannot be written; after freeing space a
                          plain `vmupdate restore` must continue the guest;
  full-during-restore   : saved normally, then filled: the restore fails or
                          works, nothing is lost; after freeing space a plain
                          `vmupdate restore` continues the guest.
The real /var/lib/vmupdate is visible again after each injection."""
import contextlib
import errno
import os

import faults
import vmtest
import vmucli
from faults import CliRun, Injections, settle
from vmtest import log

STATE = vmucli.STATE_DIR
JUNK = os.path.join(STATE, "junk")


@contextlib.contextmanager
def small_state_fs():
    vmtest.run_cmd(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", faults.STATE_FS_SOURCE, STATE])
    try:
        yield
    finally:
        r = vmtest.run_cmd(["umount", STATE], check=False)
        if r.returncode != 0:
            vmtest.run_cmd(["umount", "-l", STATE], check=False)


def fill():
    n = 0
    fd = os.open(JUNK, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            n += os.write(fd, b"\xa5" * 4096)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    st = os.statvfs(STATE)
    log("filled %s: +%d bytes of junk, %d bytes free" % (STATE, n, st.f_bavail * st.f_frsize))


def free():
    vmtest._unlink(JUNK)


def main():
    kernel = faults.suite_setup()
    inj = Injections("state-full")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "ffull") as g:
            if faults.selected("save", "full-before-save"):
                with small_state_fs():
                    fill()
                    r = vmucli.vmupdate("save", g.name)
                    problems = []
                    if r.returncode == 0:
                        problems.append("save succeeded on a full state directory")
                    st = faults.domstate(g.ref)
                    outcome = "refused-running" if r.returncode != 0 and st == "running" else \
                        "rc=%d,%s" % (r.returncode, st.replace(" ", "-"))
                    if st != "running":
                        problems.append("domain %s after the refused save" % st)
                    free()
                    after, lost, more = settle(g)
                inj.record("save", "full-before-save", outcome if outcome != "refused-running"
                           or after == "running" else outcome + ",then-" + after, lost, problems + more)

            if faults.selected("save:managed-saved", "full-at-managed-saved"):
                with small_state_fs():
                    run = CliRun("save", g.name, point="save:managed-saved")
                    if run.wait_stopped():
                        fill()
                        run.cont()
                        run.finish()
                        outcome = "save-rc=%d" % run.rc
                    else:
                        outcome = "point-not-reached"
                    log("after the fault: domstate %s, manifest %s"
                        % (faults.domstate(g.ref), faults.manifest_state(g.uuid)))
                    free()
                    after, lost, problems = settle(g)
                if outcome == "point-not-reached":
                    problems.insert(0, "CLI never stopped at save:managed-saved")
                inj.record("save:managed-saved", "full-at-managed-saved",
                           "%s,then-%s" % (outcome, after), lost, problems)

            if faults.selected("restore", "full-during-restore"):
                with small_state_fs():
                    faults.save_ok(g)  # on the empty small file system
                    fill()
                    r = vmucli.vmupdate("restore", g.name)
                    st = faults.domstate(g.ref)
                    first = "restore-rc=%d,%s" % (r.returncode, st.replace(" ", "-"))
                    problems = []
                    if st != "running" and not os.path.exists(vmucli.image_path(g.name)):
                        problems.append("image deleted by the failed restore")
                    free()
                    after, lost, more = settle(g)
                inj.record("restore", "full-during-restore", "%s,then-%s" % (first, after), lost,
                           problems + more)
    inj.finish()


vmtest.run(main)
