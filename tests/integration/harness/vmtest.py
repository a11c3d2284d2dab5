"""vmtest: helpers for vmupdate's integration tests (Python 3 standard library only).

Each integration test is a standalone script run by ctest:
    exit 0 = pass, 1 = fail, 77 = skipped (prints "SKIPPED: <reason>").
Typical use:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "harness"))
    import vmtest

    def main():
        vmtest.require_root_and_tools()
        kernel = vmtest.find_test_guest()
        vmtest.LibvirtDaemons().ensure()
        with vmtest.TestDomain(kernel, tag="save", file_backed=True) as dom:
            before = dom.wait_first_tick()
            ...                                  # save / restore / update
            dom.managedsave()
            dom.start()                          # restore
            after = dom.wait_first_tick()        # first tick printed after it
            dom.serial.assert_continued(before, after)

    vmtest.run(main)

Everything the harness does (commands, exit codes, durations) is logged to
stdout with a timestamp relative to the start of the test, so a CI log alone
explains a failure. When a test fails inside a TestDomain, the tails of the
guest serial log, the QEMU log and the libvirtd log are printed before cleanup.

The test guest (tests/guest, target `counter_guest`) prints on COM1:
    VMUGUEST boot id=<16 hex>
    VMUGUEST filled mib=<N> sum=<16 hex>
    VMUGUEST tick=<n> id=<16 hex> sum=<16 hex>      once per RTC second
    VMUGUEST fault                                   CPU exception, guest stopped

Machine setup (Debian 12 + bookworm-backports QEMU 10.0 / libvirt 11.3, PID 1
not systemd), as found on the development machines:
  * Nothing in /etc/libvirt needs changing. The stock qemu.conf (user
    libvirt-qemu, dynamic_ownership=1, DAC security driver, no AppArmor/SELinux
    active) works: libvirt chowns the kernel image for the QEMU user and opens
    the serial log file itself (passed to QEMU as /dev/fdset/N).
  * cgroups: the sandbox mounts cgroup v1 controllers (cpu, cpuset, memory,
    blkio, freezer, devices, pids) under /sys/fs/cgroup and libvirt puts each
    QEMU into /machine/qemu-<id>-<name>.libvirt-qemu there without machined or
    systemd. Nothing to configure.
  * The daemons are started here, as root: `virtlogd -d` (libvirt sends QEMU's
    stdout/stderr through it, /var/log/libvirt/qemu/<name>.log; a domain
    cannot start without it) and `setsid tini -s -- libvirtd` with output to
    /var/log/vmupdate-tests/libvirtd.log. tini -s makes a child subreaper that
    reaps the daemonized (orphaned) QEMU processes at once; this machine's
    PID 1 reaps orphans only about once a second, and libvirt waits for a
    stopped QEMU by polling kill(pid, 0), which adds 1-2 s to every domain stop.
    Not `libvirtd -d`: it would daemonize away from tini.
    QEMU processes started by an earlier libvirtd lose that subreaper when
    libvirtd is restarted (its tini exits with it; they are reparented to
    PID 1), so stopping such domains is slow again.
  * libvirtd logs harmless errors: at start no /sys/.../dmi/id and no
    /dev/mem for dmidecode, a DBus/firewalld warning; when reconnecting to a
    running QEMU after a restart, "Unable to read ... cpuset/.../cgroup.threads"
    (a cgroup v2 file; the domain keeps running); on later stops "Invalid XATTR
    timestamp detected on <kernel> secdriver=dac".
  * libvirtd 11.3 sometimes (about 1 SIGTERM in 20-25 here) hangs in its
    daemon-shutdown thread and exits by itself only after 30 s ("Make
    forcefull daemon shutdown"). stop_libvirtd() waits 5 s, logs the
    threads and sends SIGKILL; running domains survive either way.
  * File-backed guest RAM goes to memory_backing_dir, by default
    /var/lib/libvirt/qemu/ram/<id>-<name>/pc.ram on the root (disk) file
    system; nothing in the harness changes that.
  * The daemons are left running when a test ends, for the next test.
  * Domains use TCG (`<domain type='qemu'>`): /dev/kvm is unusable (nested).
"""

import collections
import fcntl
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import time
import traceback
from xml.sax.saxutils import escape, quoteattr

URI = "qemu:///system"
LOG_DIR = "/var/log/vmupdate-tests"
STAGE_DIR = "/var/lib/vmupdate-tests"  # per-domain copies of the kernel image
LIBVIRTD_PIDFILE = "/run/libvirtd.pid"
VIRTLOGD_PIDFILE = "/run/virtlogd.pid"
QEMU_LOG_DIR = "/var/log/libvirt/qemu"
QEMU_RUN_DIR = "/run/libvirt/qemu"
NAME_PREFIX = "vmut-"
SKIP_EXIT = 77

_T0 = time.monotonic()


# ---------------------------------------------------------------- logging ---

def log(msg):
    """Print one timestamped harness line (seconds since the test started)."""
    print("[vmtest %8.3fs] %s" % (time.monotonic() - _T0, msg), flush=True)


def _tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e.strerror)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:]) if text else "(empty)"


def dump_file(path, lines=30, title=None):
    """Log the last lines of a file (for failure diagnostics)."""
    log("----- %s: last %d lines of %s -----" % (title or "file", lines, path))
    print(_tail(path, lines), flush=True)
    log("----- end of %s -----" % path)


# ------------------------------------------------------- skip / pass / fail ---

class Skip(Exception):
    """Raise to skip the test (exit 77)."""


def skip(reason):
    """Print `SKIPPED: reason` and exit 77 (ctest SKIP_RETURN_CODE)."""
    print("SKIPPED: %s" % reason, flush=True)
    sys.exit(SKIP_EXIT)


def run(main, *args, **kwargs):
    """Run a test's main function and exit 0 (pass), 1 (fail) or 77 (skip)."""
    try:
        main(*args, **kwargs)
    except Skip as e:
        skip(str(e))
    except SystemExit:
        raise
    except BaseException as e:  # includes AssertionError and KeyboardInterrupt
        log("FAIL: %s: %s" % (type(e).__name__, e))
        traceback.print_exc(file=sys.stdout)
        print("FAILED (after %.1f s)" % (time.monotonic() - _T0), flush=True)
        sys.exit(1)
    print("PASSED (after %.1f s)" % (time.monotonic() - _T0), flush=True)
    sys.exit(0)


# ---------------------------------------------------------------- commands ---

def _which(tool):
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def require_root_and_tools(extra=()):
    """Exit 77 unless running as root with virsh, libvirtd, virtlogd,
    qemu-system-x86_64 and tini (plus `extra` tools) installed."""
    if os.geteuid() != 0:
        skip("integration tests need root (system libvirtd, qemu:///system)")
    tools = ("virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "tini") + tuple(extra)
    missing = [t for t in tools if not _which(t)]
    if missing:
        skip("missing tools: %s (run scripts/install-deps)" % " ".join(missing))


class CommandError(Exception):
    def __init__(self, argv, returncode, stdout, stderr):
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr
        super().__init__("%s exited %s: %s" % (" ".join(argv), returncode,
                                               (stderr or stdout or "").strip()))


def run_cmd(argv, check=True, timeout=120, quiet=False, input=None, log_failure=True):
    """Run argv (a list, no shell) with a timeout; log it with its duration.
    Returns a subprocess.CompletedProcess; raises CommandError if check and rc != 0,
    subprocess.TimeoutExpired on timeout."""
    argv = [str(a) for a in argv]
    if not quiet:
        log("$ " + " ".join(argv))
    t = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL if input is None else None,
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log("  -> TIMEOUT after %.3fs: %s" % (time.monotonic() - t, " ".join(argv)))
        raise
    dt = time.monotonic() - t
    if not quiet or (p.returncode != 0 and log_failure):
        if quiet:
            log("$ " + " ".join(argv))
        log("  -> rc=%d in %.3fs%s" % (p.returncode, dt,
                                        (": " + p.stderr.strip()) if p.returncode and p.stderr.strip() else ""))
    if check and p.returncode != 0:
        raise CommandError(argv, p.returncode, p.stdout, p.stderr)
    return p


def virsh(*args, check=True, timeout=120, uri=URI, quiet=False):
    """Run `virsh -c URI args...` and return its stdout (raises CommandError
    if check and it fails; with check=False returns stdout regardless)."""
    return run_cmd(["virsh", "-c", uri] + [str(a) for a in args],
                   check=check, timeout=timeout, quiet=quiet).stdout


# ------------------------------------------------------------- processes ---

def _proc_state(pid):
    """'R', 'S', 'Z', ... or None if the process does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    s = _proc_state(pid)
    return s is not None and s not in ("Z", "X")


def _pid_from_file(path, comm):
    """PID in pidfile `path` if it names a live process called `comm`."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) and _proc_comm(pid) == comm else None


def _pidfile_locked(path):
    """True while some process holds libvirt's fcntl lock on the pidfile."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our lock at once
    return False


def _log_threads(pid):
    """Log each thread's name, state and kernel wait channel (hang diagnostics)."""
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError:
        return
    for tid in tids:
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                comm = f.read().strip()
            with open(base + "wchan") as f:
                wchan = f.read().strip()
        except OSError:
            continue
        log("  thread %s %-16s state=%s wchan=%s" % (tid, comm, _proc_state(int(tid)), wchan))


def wait_until(cond, timeout, what, interval=0.05):
    """Poll cond() until truthy (returned) or raise TimeoutError after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# --------------------------------------------------------------- daemons ---

class LibvirtDaemons:
    """The system virtlogd + libvirtd (qemu:///system), started here if needed.

    libvirtd runs as `setsid tini -s -- libvirtd` (see the module docstring);
    its output goes to LOG_DIR/libvirtd.log. A libvirtd started earlier by
    someone else is found through /run/libvirtd.pid and used as it is (a
    warning is logged if it has no tini subreaper); restart_libvirtd()
    brings it under tini. Daemons are left running on exit.
    """

    def __init__(self, uri=URI, timeout=30, log_dir=LOG_DIR):
        self.uri = uri
        self.timeout = timeout
        self.log_path = os.path.join(log_dir, "libvirtd.log")
        self._tini = None  # Popen of the tini we started, reaped on stop

    def __enter__(self):
        return self.ensure()

    def __exit__(self, *exc):
        return False

    @staticmethod
    def libvirtd_pid():
        return _pid_from_file(LIBVIRTD_PIDFILE, "libvirtd")

    @staticmethod
    def virtlogd_pid():
        return _pid_from_file(VIRTLOGD_PIDFILE, "virtlogd")

    def ensure(self):
        """Start whatever is not running; wait until libvirtd answers."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.ensure_virtlogd()
        pid = self.libvirtd_pid()
        if pid:
            parent = _proc_ppid(pid)
            under = _proc_comm(parent) if parent else None
            log("libvirtd already running: pid %d (parent %s %s)" % (pid, parent, under))
            if under != "tini":
                log("WARNING: libvirtd has no tini subreaper: every domain stop "
                    "will wait 1-2 s for PID 1 to reap QEMU; restart_libvirtd() fixes that")
            self.wait_ready()
        else:
            self.start_libvirtd()
        return self

    def ensure_virtlogd(self):
        pid = self.virtlogd_pid()
        if pid:
            log("virtlogd already running: pid %d" % pid)
            return
        run_cmd(["virtlogd", "-d"], timeout=30)
        wait_until(self.virtlogd_pid, self.timeout, "virtlogd pidfile")
        wait_until(lambda: os.path.exists("/run/libvirt/virtlogd-sock"), self.timeout,
                   "virtlogd socket")
        log("virtlogd started: pid %d" % self.virtlogd_pid())

    def start_libvirtd(self):
        """Start `setsid tini -s -- libvirtd` in the background."""
        if self.libvirtd_pid():
            raise RuntimeError("libvirtd is already running (pid %d)" % self.libvirtd_pid())
        wait_until(lambda: not _pidfile_locked(LIBVIRTD_PIDFILE), self.timeout,
                   "release of the lock on " + LIBVIRTD_PIDFILE)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(("==== %s vmtest: starting libvirtd (setsid tini -s -- libvirtd)\n"
                       % time.strftime("%Y-%m-%d %H:%M:%S")).encode())
            out.flush()
            argv = ["setsid", "tini", "-s", "--", "libvirtd"]
            log("$ %s >>%s 2>&1 &" % (" ".join(argv), self.log_path))
            self._tini = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, close_fds=True)
        t = time.monotonic()
        self.wait_ready()
        log("libvirtd started: pid %s under tini pid %d, ready after %.3fs"
            % (self.libvirtd_pid(), self._tini.pid, time.monotonic() - t))

    def wait_ready(self):
        """Wait (bounded) until `virsh -c URI version` answers."""
        deadline = time.monotonic() + self.timeout
        t = time.monotonic()
        while True:
            if self._tini is not None and self._tini.poll() is not None:
                dump_file(self.log_path, 40, "libvirtd log")
                raise RuntimeError("libvirtd exited (tini rc=%s) before answering"
                                   % self._tini.returncode)
            try:
                p = run_cmd(["virsh", "-c", self.uri, "version"], check=False, timeout=10,
                            quiet=True, log_failure=False)
                if p.returncode == 0:
                    log("libvirtd answers on %s (waited %.3fs)" % (self.uri, time.monotonic() - t))
                    return
                err = p.stderr.strip()
            except subprocess.TimeoutExpired:
                err = "virsh version timed out"
            if time.monotonic() >= deadline:
                dump_file(self.log_path, 40, "libvirtd log")
                raise TimeoutError("libvirtd not answering after %ds: %s" % (self.timeout, err))
            time.sleep(0.2)

    def stop_libvirtd(self, grace=5):
        """SIGTERM libvirtd and wait until it is gone and its pidfile lock is
        released. Running domains keep running (libvirtd reconnects to their
        QEMU when it starts again).

        libvirt 11.3 here sometimes (about 1 stop in 25) hangs in its
        "daemon-shutdown" thread and only leaves after its own 30 s limit
        ("Make forcefull daemon shutdown", exit 1). So after `grace` seconds
        the threads are logged and libvirtd gets SIGKILL, which is no worse
        than that forced exit; the domains survive it as well."""
        pid = self.libvirtd_pid()
        if pid is None:
            log("libvirtd not running")
        else:
            t = time.monotonic()
            log("stopping libvirtd: kill -TERM %d" % pid)
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not _alive(pid), grace, "libvirtd %d to exit" % pid)
            except TimeoutError:
                log("libvirtd %d still running %gs after SIGTERM (known shutdown hang); "
                    "its threads:" % (pid, grace))
                _log_threads(pid)
                log("SIGKILL libvirtd %d" % pid)
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not _alive(pid), 10, "libvirtd %d to die" % pid)
            wait_until(lambda: not _pidfile_locked(LIBVIRTD_PIDFILE), self.timeout,
                       "release of the lock on " + LIBVIRTD_PIDFILE)
            log("libvirtd %d stopped in %.3fs" % (pid, time.monotonic() - t))
        if self._tini is not None:
            try:  # tini exits with its child; reap it so no zombie is left
                self._tini.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                log("WARNING: tini %d still running" % self._tini.pid)
            self._tini = None

    def kill_libvirtd(self, sig=signal.SIGKILL):
        """Send libvirtd `sig` (default SIGKILL, a crash) and wait until it is gone
        and its pidfile lock is released; running QEMUs survive. Start it again
        with start_libvirtd()."""
        pid = self.libvirtd_pid()
        if pid is None:
            log("libvirtd not running")
            return
        log("kill -%s libvirtd %d" % (signal.Signals(sig).name, pid))
        os.kill(pid, sig)
        wait_until(lambda: not _alive(pid), 40, "libvirtd %d to exit" % pid)
        wait_until(lambda: not _pidfile_locked(LIBVIRTD_PIDFILE), self.timeout,
                   "release of the lock on " + LIBVIRTD_PIDFILE)
        if self._tini is not None:
            try:
                self._tini.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                log("WARNING: tini %d still running" % self._tini.pid)
            self._tini = None
        log("libvirtd %d gone" % pid)

    def restart_libvirtd(self):
        """Stop libvirtd and start it again under tini (domains survive)."""
        t = time.monotonic()
        self.stop_libvirtd()
        self.ensure_virtlogd()
        self.start_libvirtd()
        log("libvirtd restarted in %.3fs" % (time.monotonic() - t))


_daemons = None


def ensure_daemons():
    """Module-level shortcut: the shared LibvirtDaemons, ensured running."""
    global _daemons
    if _daemons is None:
        _daemons = LibvirtDaemons()
    return _daemons.ensure()


def restart_libvirtd():
    """Module-level shortcut for LibvirtDaemons.restart_libvirtd()."""
    global _daemons
    if _daemons is None:
        _daemons = LibvirtDaemons()
    _daemons.restart_libvirtd()


# ------------------------------------------------------------ test guest ---

def find_test_guest(argv=None):
    """Path of counter-guest.elf: $VMUPDATE_TEST_GUEST, a `--guest PATH`
    argument, or the usual build directories; skips (77) if not found."""
    argv = sys.argv[1:] if argv is None else argv
    cands = []
    if os.environ.get("VMUPDATE_TEST_GUEST"):
        cands.append(os.environ["VMUPDATE_TEST_GUEST"])
    for i, a in enumerate(argv):
        if a == "--guest" and i + 1 < len(argv):
            cands.insert(0, argv[i + 1])
        elif a.startswith("--guest="):
            cands.insert(0, a.split("=", 1)[1])
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    for b in ("build", "build-debug", "build-release", "_build"):
        cands.append(os.path.join(repo, b, "tests", "guest", "counter-guest.elf"))
    for c in cands:
        if c and os.path.isfile(c):
            return os.path.abspath(c)
    raise Skip("test guest not found (build target counter_guest, or set "
               "VMUPDATE_TEST_GUEST / pass --guest PATH); tried: %s" % ", ".join(cands))


def domain_xml(name, kernel, memory_mib=256, fill_mib=32, serial_log=None,
               file_backed=False, check_mib=None, extra_cmdline=""):
    """A minimal TCG domain that boots the counter guest directly: machine pc,
    1 vCPU, no disks/network/graphics/USB/balloon, serial to an appended file.
    file_backed adds a shared file memory backend (RAM in a file)."""
    if serial_log is None:
        serial_log = os.path.join(LOG_DIR, name + ".serial")
    cmdline = "fill=%d" % fill_mib
    if check_mib is not None:
        cmdline += " check=%d" % check_mib
    if extra_cmdline:
        cmdline += " " + extra_cmdline
    backing = ""
    if file_backed:
        backing = ("  <memoryBacking>\n"
                   "    <source type='file'/>\n"
                   "    <access mode='shared'/>\n"
                   "  </memoryBacking>\n")
    return ("<domain type='qemu'>\n"
            "  <name>%s</name>\n"
            "  <memory unit='MiB'>%d</memory>\n"
            "%s"
            "  <vcpu>1</vcpu>\n"
            "  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n"
            "    <kernel>%s</kernel>\n"
            "    <cmdline>%s</cmdline>\n"
            "  </os>\n"
            "  <clock offset='utc'/>\n"
            "  <on_poweroff>destroy</on_poweroff>\n"
            "  <devices>\n"
            "    <controller type='usb' model='none'/>\n"
            "    <serial type='file'>\n"
            "      <source path=%s append='on'/>\n"
            "    </serial>\n"
            "    <memballoon model='none'/>\n"
            "  </devices>\n"
            "</domain>\n") % (escape(name), memory_mib, backing, escape(kernel),
                              escape(cmdline), quoteattr(serial_log))


# ------------------------------------------------------------ serial log ---

_BOOT_RE = re.compile(r"^VMUGUEST boot id=([0-9a-f]{16})$")
_FILLED_RE = re.compile(r"^VMUGUEST filled mib=(\d+) sum=([0-9a-f]{16})$")
_TICK_RE = re.compile(r"^VMUGUEST tick=(\d+) id=([0-9a-f]{16}) sum=([0-9a-f]{16})$")
_FAULT_RE = re.compile(r"^VMUGUEST fault")


class Tick(collections.namedtuple("Tick", "tick id sum")):
    """(tick, id, sum) of one tick line; .line is its index in SerialLog.lines()."""
    line = -1


class SerialLog:
    """The guest's serial output file (may not exist yet). Only complete lines
    count; a partial last line (the guest stopped mid-line) is ignored until
    its newline arrives."""

    def __init__(self, path):
        self.path = path

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        text = data.decode("ascii", "replace")
        lines = text.split("\n")[:-1]  # drop the incomplete tail
        return [l.rstrip("\r") for l in lines]

    def mark(self):
        """Current number of complete lines: pass as `since` to wait_for."""
        return len(self.lines())

    def boots(self, since=0):
        """Boot ids, in order, of every `VMUGUEST boot` line (from line `since`)."""
        return [m.group(1) for m in map(_BOOT_RE.match, self.lines()[since:]) if m]

    def filled(self):
        """[(mib, sum)] of every `VMUGUEST filled` line."""
        return [(int(m.group(1)), m.group(2)) for m in map(_FILLED_RE.match, self.lines()) if m]

    def ticks(self, since=0):
        out = []
        for i, l in enumerate(self.lines()):
            if i < since:
                continue
            m = _TICK_RE.match(l)
            if m:
                t = Tick(int(m.group(1)), m.group(2), m.group(3))
                t.line = i
                out.append(t)
        return out

    def last_tick(self):
        """The last Tick (tick, id, sum), or None."""
        t = self.ticks()
        return t[-1] if t else None

    def faults(self, since=0):
        return [l for l in self.lines()[since:] if _FAULT_RE.match(l)]

    def wait_for(self, what, timeout=30, since=0, desc=None, interval=0.05):
        """Wait until `what` holds and return its value:
          - a regex (str or compiled): the re.Match of the first line at or
            after index `since` that it matches (re.search);
          - a callable: called with this SerialLog, its first truthy result.
        Raises TimeoutError (naming the last lines) after `timeout` seconds."""
        desc = desc or (what if isinstance(what, str) else getattr(what, "pattern", None)
                        or getattr(what, "__name__", "condition"))
        if callable(what) and not hasattr(what, "search"):
            cond = lambda: what(self)
        else:
            rx = re.compile(what) if isinstance(what, str) else what

            def cond():
                for l in self.lines()[since:]:
                    m = rx.search(l)
                    if m:
                        return m
                return None
        t = time.monotonic()
        try:
            v = wait_until(cond, timeout, "serial %r" % desc, interval)
        except TimeoutError as e:
            raise TimeoutError("%s; last serial lines: %s" % (e, self.lines()[-3:])) from None
        log("serial: got %s after %.3fs" % (desc, time.monotonic() - t))
        return v

    def wait_for_tick(self, min_tick=1, timeout=30, since=0):
        """Wait for a tick line with tick >= min_tick (at or after line `since`)."""
        def cond(s):
            ts = [t for t in s.ticks(since) if t.tick >= min_tick]
            return ts[0] if ts else None
        cond.__name__ = "tick>=%d" % min_tick
        return self.wait_for(cond, timeout)

    def assert_continued(self, before, after=None, consecutive=True, verbose=True):
        """Assert the guest kept running from `before` to `after` (Ticks; after
        defaults to the last tick): same boot id, tick increased, checksum
        unchanged, no `VMUGUEST boot` or `fault` line after `before`, and (if
        consecutive) the tick lines in between count up by exactly 1.
        verbose=False only raises, without logging the failure and the log tail."""
        after = after or self.last_tick()
        lines = self.lines()
        problems = []
        if before is None or after is None:
            problems.append("missing tick (before=%r after=%r)" % (before, after))
        else:
            if after.id != before.id:
                problems.append("boot id changed: %s -> %s" % (before.id, after.id))
            if after.tick <= before.tick:
                problems.append("tick did not increase: %d -> %d" % (before.tick, after.tick))
            if after.sum != before.sum:
                problems.append("memory checksum changed: %s -> %s" % (before.sum, after.sum))
            start = before.line + 1 if before.line >= 0 else 0
            new_boots = self.boots(start)
            if new_boots:
                problems.append("guest rebooted: boot line(s) %s after tick %d"
                                % (", ".join(new_boots), before.tick))
            if self.faults(start):
                problems.append("guest reported a CPU fault")
            if consecutive and before.line >= 0 and after.line >= 0:
                seq = [t.tick for t in self.ticks(before.line) if t.line <= after.line]
                gaps = [(a, b) for a, b in zip(seq, seq[1:]) if b != a + 1]
                if gaps:
                    problems.append("tick sequence not consecutive: %s" % gaps[:5])
        if problems:
            if verbose:
                log("assert_continued FAILED: " + "; ".join(problems))
                print("\n".join(lines[-15:]), flush=True)
            raise AssertionError("guest did not continue: " + "; ".join(problems))
        log("guest continued: tick %d -> %d, id %s, sum %s"
            % (before.tick, after.tick, after.id, after.sum))


# ---------------------------------------------------------------- domain ---

def _unique_name(tag):
    rnd = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(4))
    return "%s%s-%d-%s" % (NAME_PREFIX, re.sub(r"[^A-Za-z0-9_.-]", "_", tag), os.getpid(), rnd)


def remove_domain(name, quiet=False):
    """Destroy and undefine a domain (with managed-save image and NVRAM),
    ignoring whatever is already gone."""
    if virsh("domstate", name, check=False, quiet=True).strip() in ("", None):
        return
    uuid = virsh("domuuid", name, check=False, quiet=True).strip()
    virsh("destroy", name, check=False, quiet=quiet, timeout=60)
    _forget_vmupdate_state(uuid)
    out = run_cmd(["virsh", "-c", URI, "undefine", "--managed-save", "--nvram", name],
                  check=False, timeout=60, quiet=quiet)
    if out.returncode != 0:  # e.g. transient domain or older flags: try plainer forms
        virsh("managedsave-remove", name, check=False, quiet=quiet)
        virsh("undefine", name, check=False, quiet=quiet)


def _forget_vmupdate_state(uuid):
    """A test domain that is undefined while vmupdate has it saved would leave
    its manifest and preserved RAM behind: remove them."""
    if not re.match(r"^[0-9a-f-]{36}$", uuid or ""):
        return
    _unlink("/var/lib/vmupdate/manifests/%s.xml" % uuid)
    for base in ("/var/lib/libvirt/qemu/ram", "/var/lib/vmupdate-bench/ram/libvirt/qemu"):
        shutil.rmtree(os.path.join(base, "vmupdate", uuid), ignore_errors=True)


def cleanup_stale_domains():
    """Remove vmut-* domains whose creating test process no longer exists
    (left behind by a test that was killed)."""
    out = virsh("list", "--all", "--name", check=False, quiet=True)
    for name in out.split():
        m = re.match(r"^%s.*-(\d+)-[a-z0-9]{4}$" % re.escape(NAME_PREFIX), name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            log("removing stale test domain %s" % name)
            remove_domain(name)
            _unlink(os.path.join(LOG_DIR, name + ".serial"))
            shutil.rmtree(os.path.join(STAGE_DIR, name), ignore_errors=True)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class TestDomain:
    """A defined + started counter-guest domain named vmut-<tag>-<pid>-<rand>.

    On exit (whatever happened) it is destroyed and undefined with its
    managed-save image and NVRAM, and its serial log and staged kernel are
    removed. If the block raised, the tails of the serial, QEMU and libvirtd
    logs are printed first (keep_logs=True keeps the serial log instead).

    The kernel is copied to STAGE_DIR/<name>/ so the QEMU user can read it
    whatever the permissions of the build tree (e.g. under /root).
    """

    def __init__(self, kernel, tag="t", memory_mib=256, fill_mib=32, file_backed=False,
                 check_mib=None, extra_cmdline="", xml=None, start=True, keep_logs=False):
        self.name = _unique_name(tag)
        self.serial_path = os.path.join(LOG_DIR, self.name + ".serial")
        self.serial = SerialLog(self.serial_path)
        self.stage = os.path.join(STAGE_DIR, self.name)
        self.kernel = os.path.join(self.stage, "counter-guest.elf")
        self._src_kernel = kernel
        self.xml = xml or domain_xml(self.name, self.kernel, memory_mib, fill_mib,
                                     self.serial_path, file_backed, check_mib, extra_cmdline)
        self._autostart = start
        self.keep_logs = keep_logs
        self.t_start = None  # monotonic time of the last `virsh start`
        self.first_tick_after = None  # seconds from that start to the first tick
        self._start_mark = 0  # serial lines before the last start

    # -- lifecycle
    def __enter__(self):
        try:
            self.define()
            if self._autostart:
                self.start()
        except BaseException:
            self.cleanup(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(failed=exc_type is not None)
        return False

    def define(self):
        os.makedirs(LOG_DIR, exist_ok=True)
        os.makedirs(self.stage, exist_ok=True)
        os.chmod(STAGE_DIR, 0o755)
        os.chmod(self.stage, 0o755)
        shutil.copyfile(self._src_kernel, self.kernel)
        os.chmod(self.kernel, 0o644)
        _unlink(self.serial_path)
        xml_path = os.path.join(self.stage, "domain.xml")
        with open(xml_path, "w") as f:
            f.write(self.xml)
        log("defining %s (kernel %s, serial %s)" % (self.name, self._src_kernel, self.serial_path))
        virsh("define", xml_path)

    def start(self, *args):
        """`virsh start` (restores from a managed-save image if there is one)."""
        self._start_mark = self.serial.mark()
        self.t_start = time.monotonic()
        virsh("start", self.name, *args)

    def wait_first_tick(self, timeout=60):
        """Wait for the first tick line printed after the last start() (after
        a restore too) and return it; logs the time from `virsh start` to it
        (self.first_tick_after)."""
        t = self.serial.wait_for_tick(1, timeout, since=self._start_mark)
        if self.t_start is not None:
            self.first_tick_after = time.monotonic() - self.t_start
            log("%s: first tick %.3fs after virsh start" % (self.name, self.first_tick_after))
        return t

    def virsh(self, cmd, *args, **kw):
        """virsh CMD NAME ARGS... for this domain."""
        return virsh(cmd, self.name, *args, **kw)

    def state(self):
        return virsh("domstate", self.name, quiet=True).strip()

    def destroy(self):
        virsh("destroy", self.name)

    def managedsave(self, *args):
        virsh("managedsave", self.name, *args)

    def cleanup(self, failed=False):
        if failed:
            log("test failed: diagnostics for %s" % self.name)
            dump_file(self.serial_path, 20, "serial log")
            dump_file(os.path.join(QEMU_LOG_DIR, self.name + ".log"), 30, "QEMU log")
            dump_file(os.path.join(LOG_DIR, "libvirtd.log"), 20, "libvirtd log")
        log("cleaning up %s" % self.name)
        try:
            remove_domain(self.name)
        except Exception as e:  # never mask the test's own error
            log("WARNING: cleanup of %s failed: %s" % (self.name, e))
        if not self.keep_logs:
            _unlink(self.serial_path)
        shutil.rmtree(self.stage, ignore_errors=True)

    # -- QEMU process
    def qemu_pid(self):
        try:
            with open(os.path.join(QEMU_RUN_DIR, self.name + ".pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def qemu_argv(self):
        """argv of the running QEMU (from /proc), or [] if none."""
        pid = self.qemu_pid()
        if not pid:
            return []
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            return []

    def qemu_log(self):
        """Text of /var/log/libvirt/qemu/NAME.log (command lines of every start)."""
        try:
            with open(os.path.join(QEMU_LOG_DIR, self.name + ".log")) as f:
                return f.read()
        except OSError:
            return ""

    def memory_backends(self):
        """QEMU memory backends of the running QEMU as dicts (from its -object
        arguments, JSON or key=value form), e.g. {'qom-type':
        'memory-backend-file', 'id': 'pc.ram', 'mem-path': ..., 'share': True}."""
        argv = self.qemu_argv()
        out = []
        for opt, val in zip(argv, argv[1:]):
            if opt != "-object":
                continue
            if val.startswith("{"):
                try:
                    obj = json.loads(val)
                except ValueError:
                    continue
            else:
                parts = val.split(",")
                obj = {"qom-type": parts[0]}
                for p in parts[1:]:
                    k, _, v = p.partition("=")
                    obj[k] = {"on": True, "off": False, "true": True, "false": False}.get(v, v)
            if str(obj.get("qom-type", "")).startswith("memory-backend"):
                out.append(obj)
        return out
