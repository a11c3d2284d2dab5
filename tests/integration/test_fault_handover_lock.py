"""Fault case 10: a RAM handover holder that outlived host-update (SIGKILLed or
OOM-killed with vmupdate-handover.service still running) holds
/var/lib/vmupdate/handover.lock, and a handover record names a domain. A stand-in
holder takes the lock the way vmupdate does (flock, 'PID UNIT' in the file):
  held-lock        : `vmupdate restore DOMAIN` of a domain saved on its own (not in
                     the record) must not wait for the lock without bound: it says
                     who holds the lock (PID and unit), exits 1, and restores the
                     domain all the same;
  held-lock SIGINT : Ctrl-C ends the wait for the lock at once (it used to be
                     retried on EINTR); a plain restore afterwards continues the
                     guest.
Before issue 21 item 3 both hung until the holder ended."""
import json
import os
import signal
import subprocess
import sys
import time

import faults
import vmtest
import vmucli
from faults import CliRun, Injections, settle
from vmtest import log

LOCK = os.path.join(vmucli.STATE_DIR, "handover.lock")
RECORD = os.path.join(vmucli.STATE_DIR, "handover.json")
PHANTOM = "00000000-0000-4000-8000-0000000000aa"
UNIT = "vmupdate-handover.service"
# How long restore may take in all (the lock is waited for 5 s, the restore a few).
BOUND = 60

HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, ("%d %s\n" % (os.getpid(), sys.argv[2])).encode())
print("held", flush=True)
time.sleep(3600)
"""


class Holder:
    """A stand-in for a surviving handover holder, with a record naming a domain
    that is not the guest under test."""

    def __enter__(self):
        assert not os.path.exists(RECORD), "a real handover record is in " + RECORD
        record = {"session": "vmupdate-ram", "kernel": "x", "files": [{
            "token": 1, "uuid": PHANTOM, "domain": "phantom", "name": "pc.ram",
            "preserved": "/var/lib/libvirt/qemu/ram/vmupdate/%s/pc.ram" % PHANTOM,
            "size": 4096, "uid": 0, "gid": 0, "mode": 384}]}
        fd = os.open(RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, LOCK, UNIT],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"
        log("handover lock held by pid %d" % self.proc.pid)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        vmtest._unlink(RECORD)
        return False


def held_lock(inj, g):
    faults.save_ok(g)
    problems = []
    with Holder() as h:
        t0 = time.monotonic()
        try:
            r = vmucli.vmupdate("restore", "--", g.name, timeout=BOUND)
        except subprocess.TimeoutExpired:
            r = None
        took = time.monotonic() - t0
        if r is None:
            problems.append("restore still waiting for the handover lock after %d s" % BOUND)
            outcome = "hung"
        else:
            outcome = "rc=%d,%s" % (r.returncode, faults.domstate(g.ref).replace(" ", "-"))
            if r.returncode != 1:
                problems.append("exit %d with the handover lock held, expected 1" % r.returncode)
            if "PID %d (%s)" % (h.proc.pid, UNIT) not in r.stderr:
                problems.append("the message does not name the holder: " + r.stderr.strip())
            if faults.domstate(g.ref) != "running":
                problems.append("a domain not in the handover record was not restored")
        log("restore took %.1f s" % took)
    after, lost, more = settle(g)
    inj.record("restore", "held-lock", "%s,then-%s" % (outcome, after), lost, problems + more)


def held_lock_sigint(inj, g):
    faults.save_ok(g)
    problems = []
    with Holder():
        run = CliRun("restore", "--", g.name)
        time.sleep(1)
        t0 = time.monotonic()
        run.signal(signal.SIGINT)
        run.finish(timeout=BOUND)
        took = time.monotonic() - t0
        log("restore ended %.1f s after SIGINT" % took)
        if took > 3:
            problems.append("restore went on %.1f s after SIGINT" % took)
        if run.rc == 0:
            problems.append("restore exited 0 although interrupted with the lock held")
        outcome = "sigint-rc=%s" % run.rc
    after, lost, more = settle(g)
    inj.record("restore", "held-lock SIGINT", "%s,then-%s" % (outcome, after), lost,
               problems + more)


def main():
    kernel = faults.suite_setup()
    inj = Injections("handover-lock")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fhlock") as g:
            if faults.selected("restore", "held-lock"):
                held_lock(inj, g)
            if faults.selected("restore", "held-lock SIGINT"):
                held_lock_sigint(inj, g)
    inj.finish()


vmtest.run(main)
