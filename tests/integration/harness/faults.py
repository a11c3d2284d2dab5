"""faults: helpers for the fault and bad-input suite (ctest label `fault`).

Every injection ends in settle(), which brings the domain to its end state the
way an operator would (a plain `vmupdate restore DOMAIN` if it is saved) and
judges it: the guest must continue (same boot id, memory checksum unchanged,
counter continues) and nothing may be left half done (no x-ignore-shared on in
a running QEMU, no stale manifest). Each injection prints one line

    FAULT <case> <step> <variant> -> <outcome> lost=<0|1>

which scripts/reliability-table turns into docs/reliability.md. A case runs all
its injections, then fails if any outcome was not acceptable (Injections.finish).

Deterministic pause points (build with -DVMUPDATE_TEST_POINTS=ON):
  * CLI: env VMUPDATE_TEST_POINT=<name> makes `vmupdate` SIGSTOP itself at that
    step (after printing "vmupdate: test point <name>" on stderr); CliRun waits
    until /proc/<pid>/stat shows state T.
  * hook (started by libvirtd, so no environment): when
    /run/vmupdate/test-points/<name> exists, the hook creates <name>.reached and
    waits (at most 120 s) until the file <name> is removed (HookPoint).

Every point's name is checked against libvmupdate/src/test_points.def
(test_points.point): a point renamed or dropped there fails the test that
names it, instead of reporting point-not-reached.

Run a single injection: VMUPDATE_FAULT_ONLY='<regex>' (matched against
"<step> <variant>") with `ctest -R fault.<case> -V`.
"""
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time

import test_points
import vmtest
import vmucli
from vmtest import log

TEST_POINT_DIR = "/run/vmupdate/test-points"
SIGNALS = [("SIGINT", signal.SIGINT), ("SIGTERM", signal.SIGTERM),
           ("SIGHUP", signal.SIGHUP), ("SIGKILL", signal.SIGKILL)]
# Exit code of a restore refused by vmupdate's checks (damaged image, preserved RAM
# missing, resized or replaced): 2, "refused, nothing changed", since the checks
# run before libvirt is called (issue 10, item 12: such refusals used to exit 1).
RESTORE_REFUSED_RC = 2
GOOD = ("running", "restored", "running+restore", "running(cap-on)+restore",
        "stock-save,virsh-start")


def points_built():
    return os.environ.get("VMUPDATE_TEST_POINTS", "").upper() in ("ON", "1", "TRUE", "YES")


def selected(step, variant):
    """Whether VMUPDATE_FAULT_ONLY (a regex over "<step> <variant>") selects this injection."""
    only = os.environ.get("VMUPDATE_FAULT_ONLY")
    return not only or re.search(only, "%s %s" % (step, variant)) is not None


# ---------------------------------------------------------------- CLI runs ---

class CliRun:
    """`vmupdate -c URI ARGS` in the background, optionally stopping at a test point."""

    def __init__(self, *args, point=None):
        env = dict(os.environ)
        env.pop("VMUPDATE_TEST_POINT", None)
        if point:
            env["VMUPDATE_TEST_POINT"] = test_points.point(point)
        self.args, self.point = args, point
        self.argv = [vmucli.CLI, "-c", vmtest.URI, *args]
        log("$ %s%s &" % ("VMUPDATE_TEST_POINT=%s " % point if point else "", " ".join(self.argv)))
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)
        self.rc = self.out = self.err = None

    @property
    def pid(self):
        return self.proc.pid

    def wait_stopped(self, timeout=60):
        """True once the CLI stopped itself (state T); False if it exited first
        (the point does not exist in this build, or was never reached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.finish()
                log("CLI exited (rc=%s) without stopping at test point %s" % (self.rc, self.point))
                return False
            if vmtest._proc_state(self.pid) == "T":
                log("CLI pid %d stopped at test point %s after %.3fs"
                    % (self.pid, self.point, time.monotonic() - self.t0))
                return True
            time.sleep(0.01)
        raise TimeoutError("CLI did not reach test point %s in %ds" % (self.point, timeout))

    def signal(self, sig):
        """Send sig, then SIGCONT (a stopped process gets a pending signal only then)."""
        log("kill -%s %d" % (signal.Signals(sig).name, self.pid))
        os.kill(self.pid, sig)
        if sig != signal.SIGKILL:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def cont(self):
        os.kill(self.pid, signal.SIGCONT)

    def finish(self, timeout=180):
        if self.rc is None:
            try:
                self.out, self.err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("CLI pid %d still running after %ds: SIGKILL" % (self.pid, timeout))
                self.proc.kill()
                self.out, self.err = self.proc.communicate()
            self.rc = self.proc.returncode
            log("vmupdate %s -> %s\n  stdout: %s\n  stderr: %s"
                % (" ".join(self.args), self.rc, (self.out or "").strip(), (self.err or "").strip()))
        return self.rc


# ------------------------------------------------------------- hook points ---

class HookPoint:
    """A file-based pause point of the hook (or of the restore helper, which the
    hook starts): arm() before the libvirt operation, wait_reached(), act, release()."""

    def __init__(self, name):
        self.name = test_points.point(name)
        self.path = os.path.join(TEST_POINT_DIR, name)

    def arm(self):
        os.makedirs(TEST_POINT_DIR, mode=0o700, exist_ok=True)
        os.chmod(TEST_POINT_DIR, 0o700)
        vmtest._unlink(self.path + ".reached")
        open(self.path, "w").close()
        log("armed hook test point %s" % self.name)

    def wait_reached(self, timeout=60, proc=None):
        """True once the hook waits there; False if `proc` (a CliRun) ended first or the
        time ran out (the point does not exist in this build)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.path + ".reached"):
                log("hook reached test point %s" % self.name)
                return True
            if proc is not None and proc.proc.poll() is not None:
                proc.finish()
                break
            time.sleep(0.01)
        log("hook test point %s NOT reached" % self.name)
        return False

    def release(self):
        vmtest._unlink(self.path)
        log("released hook test point %s" % self.name)

    def disarm(self):
        self.release()
        vmtest._unlink(self.path + ".reached")


HELPER = "vmupdate-restore-helper"


def helper_pids(uuid):
    """The restore helpers running for the domain `uuid` (argv: helper UUID ATTEMPT SOCKET DOMAIN)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]).decode(errors="replace") == HELPER and \
                len(argv) > 1 and argv[1].decode(errors="replace") == uuid:
            pids.append(int(p))
    return pids


def clear_hook_points():
    if os.path.isdir(TEST_POINT_DIR):
        for f in os.listdir(TEST_POINT_DIR):
            vmtest._unlink(os.path.join(TEST_POINT_DIR, f))


# ------------------------------------------------------------------ state ---

def manifest_path(uuid):
    return os.path.join(vmucli.STATE_DIR, "manifests", uuid + ".xml")


def manifest_state(uuid):
    """The manifest's save state ('saving', 'saved', ...), or None without a manifest."""
    try:
        with open(manifest_path(uuid)) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    m = re.search(r"<state>\s*([a-z]+)\s*</state>", text) or re.search(r"state=['\"]([a-z]+)", text)
    return m.group(1) if m else "unknown"


def capability_on(name_or_uuid):
    """x-ignore-shared in the running QEMU (None if it cannot be asked)."""
    out = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "qemu-monitor-command", name_or_uuid,
                          '{"execute":"query-migrate-capabilities"}'], check=False, quiet=True)
    if out.returncode != 0:
        return None
    for c in json.loads(out.stdout)["return"]:
        if c["capability"] == "x-ignore-shared":
            return c["state"]
    return None


def set_capability_off(name_or_uuid):
    vmtest.run_cmd(["virsh", "-c", vmtest.URI, "qemu-monitor-command", name_or_uuid,
                    '{"execute":"migrate-set-capabilities","arguments":{"capabilities":'
                    '[{"capability":"x-ignore-shared","state":false}]}}'], check=False)


def domstate(ref):
    return vmtest.virsh("domstate", ref, check=False, quiet=True).strip()


def has_managed_save(ref):
    return "Managed save:   yes" in vmtest.virsh("dominfo", ref, check=False, quiet=True)


# --------------------------------------------------------------- settling ---

class Guest:
    """What settle() needs of a domain: `ref` for virsh (the UUID, safe for any
    name), `name` for vmupdate, the serial log and the last tick known good."""

    def __init__(self, dom, before=None):
        self.dom = dom
        self.name = dom.name
        self.uuid = getattr(dom, "uuid", None) or vmucli.uuid_of(dom.name)
        self.ref = self.uuid
        self.serial = dom.serial
        self.before = before

    def baseline(self, timeout=60):
        """A fresh tick to compare the next injection with."""
        mark = self.serial.mark()
        self.before = self.serial.wait_for_tick(1, timeout=timeout, since=mark)
        return self.before


def new_tick(g, count=2, timeout=30):
    """The count-th tick line printed after g.before (whatever its number: a guest
    that rebooted starts counting again, and old lines of the appended serial log
    must not count)."""
    since = g.before.line + 1 if g.before is not None and g.before.line >= 0 else 0

    def cond(s):
        t = s.ticks(since)
        return t[count - 1] if len(t) >= count else None
    cond.__name__ = "%d new tick(s)" % count
    return g.serial.wait_for(cond, timeout)


def check_continued(g):
    """Assert the guest continued from g.before; advances g.before."""
    after = new_tick(g)
    g.serial.assert_continued(g.before, after, consecutive=False)
    g.before = after
    return after


def settle(g, expect=GOOD, restore_args=()):
    """Bring the domain to its end state and judge it. Returns (outcome, lost, problems).

    running  : the guest continued without any vmupdate command.
    restored : it was saved; a plain `vmupdate restore NAME` continued it.
    restore-failed(<rc>) : that restore failed (then recovery is attempted for
               the next injection: `virsh start`, else a fresh boot: lost=1).
    A stale manifest or x-ignore-shared left on in a running guest is a problem
    (listed in problems) whatever the outcome."""
    problems = []
    lost = 0
    st = domstate(g.ref)
    paused = ""
    if st == "paused":
        # libvirt reconnected to a QEMU that loaded the state but was never resumed:
        # the operator's plain `vmupdate restore` must finish the job.
        r = vmucli.vmupdate("restore", "--", g.name)
        st = domstate(g.ref)
        if st == "running":
            paused = "paused+restore(%d)," % r.returncode
        else:
            problems.append("domain left paused; `vmupdate restore` (rc=%d) did not resume it: %s"
                            % (r.returncode, r.stderr.strip()))
            vmtest.virsh("resume", g.ref, check=False)
            st = domstate(g.ref)
            paused = "paused+virsh-resume,"
    if st == "running":
        outcome = "running"
        mstate = manifest_state(g.uuid)
        if mstate is not None:
            # A run that died with QEMU still running: a plain restore completes
            # it. Whether x-ignore-shared was left on until then goes in the outcome.
            cap = capability_on(g.ref)
            r = vmucli.vmupdate("restore", "--", g.name)
            outcome = "running%s+restore" % ("(cap-on)" if cap else "") if r.returncode == 0 \
                else "running+restore-failed(%d)" % r.returncode
            if manifest_state(g.uuid) is not None:
                problems.append("manifest '%s' left for a running domain" % manifest_state(g.uuid))
    else:
        r = vmucli.vmupdate("restore", *restore_args, "--", g.name)
        outcome = "restored" if r.returncode == 0 else "restore-failed(%d)" % r.returncode
        if r.returncode == 2 and "not vmupdate's: start it with 'virsh start'" in r.stderr:
            # The concurrent stock `virsh managedsave` won: libvirt's own image,
            # which `virsh start` restores (as vmupdate says).
            vmtest.virsh("start", g.ref, check=False)
            outcome = "stock-save,virsh-start"
        elif r.returncode != 0:
            problems.append("plain restore failed: %s" % r.stderr.strip())
    st = domstate(g.ref)
    if st != "running":
        if has_managed_save(g.ref) or st == "shut off":
            # Last resort for the next injection: libvirt's own start (restores through the hook).
            vmtest.virsh("start", g.ref, check=False)
        st = domstate(g.ref)
    if st == "running":
        try:
            check_continued(g)
        except (AssertionError, TimeoutError) as e:
            lost = 1
            problems.append(str(e))
        if manifest_state(g.uuid) is not None and not any("manifest" in p for p in problems):
            problems.append("manifest '%s' left for a running domain" % manifest_state(g.uuid))
        cap = capability_on(g.ref)
        if cap:
            problems.append("x-ignore-shared left on in the running QEMU")
            set_capability_off(g.ref)
    else:
        lost = 1
        problems.append("domain is %s after recovery" % st)
    if paused:
        outcome = paused + outcome
    if lost:
        outcome = "lost" if outcome in GOOD else outcome
        keep_evidence(g)
        fresh_start(g)
    elif outcome.split(",")[-1] not in expect and outcome.split(",")[-1] in GOOD:
        problems.append("outcome %s, expected %s" % (outcome, "|".join(expect)))
    if not lost:
        g.before = g.serial.last_tick()
    return outcome, lost, problems


EVIDENCE_DIR = os.environ.get("VMUPDATE_FAULT_EVIDENCE", "/var/tmp/vmupdate-fault-evidence")


def keep_evidence(g):
    """Copies what a lost guest left (managed-save image, manifest, the first MiB
    of each preserved RAM file: low RAM with the BIOS and option ROM shadow, and
    the domain's QEMU log) to EVIDENCE_DIR/<name>-<time>, before fresh_start
    throws it away: a lost VM is a defect to be explained, not only counted."""
    dst = os.path.join(EVIDENCE_DIR, "%s-%d" % (g.name, time.time()))
    try:
        os.makedirs(dst, exist_ok=True)
        srcs = [vmucli.image_path(g.name), manifest_path(g.uuid),
                os.path.join(vmtest.QEMU_LOG_DIR, g.name + ".log")]
        for src in srcs:
            if os.path.isfile(src):
                with open(src, "rb") as f, open(os.path.join(dst, os.path.basename(src)), "wb") as o:
                    o.write(f.read())
        held = os.path.join("/var/lib/libvirt/qemu/ram/vmupdate", g.uuid)
        for n in (os.listdir(held) if os.path.isdir(held) else []):
            p = os.path.join(held, n)
            st = os.lstat(p)
            with open(os.path.join(dst, n + ".stat"), "w") as o:
                o.write("size %d inode %d mode %o uid %d\n" % (st.st_size, st.st_ino, st.st_mode, st.st_uid))
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f, open(os.path.join(dst, n + ".first-mib"), "wb") as o:
                    o.write(f.read(1 << 20))
        log("evidence of the lost guest kept in %s" % dst)
    except OSError as e:
        log("could not keep the evidence of the lost guest: %s" % e)


def fresh_start(g):
    """The guest is lost: clear everything and boot it fresh for the next injection."""
    log("guest %s lost: clearing state and booting it fresh" % g.name)
    vmtest.virsh("destroy", g.ref, check=False)
    vmtest._forget_vmupdate_state(g.uuid)
    vmtest.virsh("managedsave-remove", g.ref, check=False)
    # libvirt forgets an image it deleted itself; a file put back behind its back
    # is still restored by `virsh start`, and managedsave-remove skips it.
    if hasattr(g.dom, "name") and "/" not in g.dom.name:
        vmtest._unlink(vmucli.image_path(g.dom.name))
    vmtest.virsh("start", g.ref, check=False)
    if domstate(g.ref) == "running":
        g.baseline()
    else:
        raise RuntimeError("cannot boot %s fresh after losing it" % g.name)


# -------------------------------------------------------------- reporting ---

class Injections:
    """Collects the FAULT lines of one case; finish() fails the test if any was bad."""

    def __init__(self, case):
        self.case = case
        self.results = []

    def record(self, step, variant, outcome, lost, problems=()):
        line = "FAULT %s %s %s -> %s lost=%d" % (self.case, step, variant, outcome, lost)
        print(line, flush=True)
        for p in problems:
            log("  problem (%s %s): %s" % (step, variant, p))
        self.results.append((step, variant, outcome, lost, list(problems)))

    def finish(self):
        bad = [r for r in self.results if r[4]]
        log("%s: %d injections, %d with problems" % (self.case, len(self.results), len(bad)))
        for step, variant, outcome, lost, problems in bad:
            log("  BAD %s %s -> %s lost=%d: %s" % (step, variant, outcome, lost, "; ".join(problems)))
        if not self.results:
            raise vmtest.Skip("no injection selected (VMUPDATE_FAULT_ONLY)")
        if bad:
            raise AssertionError("%d of %d injections failed" % (len(bad), len(self.results)))


def require_points():
    if not points_built():
        log("WARNING: this build has no test points (configure with -DVMUPDATE_TEST_POINTS=ON); "
            "injections at test points will report point-not-reached")


@contextlib.contextmanager
def background(fn, *args):
    """Run fn(*args) on a thread for the duration of the block; its exception is re-raised."""
    box = {}

    def target():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa
            box["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        yield box
    finally:
        t.join(timeout=180)
        if "error" in box:
            raise box["error"]


@contextlib.contextmanager
def managed_guest(kernel, tag, memory_mib=128, fill_mib=16):
    """A prepared (file-backed, vmupdate-managed) running counter guest as a Guest."""
    with vmtest.TestDomain(kernel, tag=tag, memory_mib=memory_mib, fill_mib=fill_mib,
                           start=False) as dom:
        vmucli.check("prepare", dom.name)
        dom.start()
        dom.wait_first_tick()
        g = Guest(dom)
        g.baseline()
        yield g


def save_ok(g):
    """A plain save that must work (to set up a restore injection)."""
    vmucli.check("save", g.name)
    assert domstate(g.ref) == "shut off" and manifest_state(g.uuid) == "saved", \
        (domstate(g.ref), manifest_state(g.uuid))


def suite_setup():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    require_points()
    vmtest.cleanup_stale_domains()
    clear_hook_points()
    unmount_stale_state_fs()
    return kernel


STATE_FS_SOURCE = "vmupdate-fault-full"  # the small tmpfs of test_fault_state_full


def unmount_stale_state_fs():
    """A killed state_full test leaves its small tmpfs on /var/lib/vmupdate: remove it."""
    with open("/proc/self/mounts") as f:
        stale = [l.split()[1] for l in f if l.split()[0] == STATE_FS_SOURCE]
    for mnt in reversed(stale):
        log("unmounting the stale %s tmpfs on %s" % (STATE_FS_SOURCE, mnt))
        vmtest.run_cmd(["umount", "-l", mnt], check=False)


def try_save(inj, g, step, variant):
    """save_ok() for setting up a restore injection; a failure is recorded as
    that injection's result (then the domain is settled) and False returned."""
    r = vmucli.vmupdate("save", g.name)
    if r.returncode == 0 and domstate(g.ref) == "shut off" and manifest_state(g.uuid) == "saved":
        return True
    problems = ["setup save failed: rc=%d, domain %s, manifest %s: %s"
                % (r.returncode, domstate(g.ref), manifest_state(g.uuid), r.stderr.strip())]
    outcome, lost, more = settle(g)
    inj.record(step, variant, "setup-save-failed,then-" + outcome, lost, problems + more)
    return False
