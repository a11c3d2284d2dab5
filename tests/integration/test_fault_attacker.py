"""Fault case 9: a hostile QEMU-user process (libvirt-qemu, through setpriv)
attacks the RAM tree in memory_backing_dir (harness/ram_attacker.py: renames
root's `vmupdate` directory away, plants symlinks and directories of its own
there, swaps them with renameat2(RENAME_EXCHANGE), plants `pc.ram` symlinks in
new `<id>-<name>` directories) WHILE a domain starts, saves, restores and stops.
Root's victim directory /var/lib/vmupdate-victim (with a `<uuid>/pc.ram`
the attacker points vmupdate at) and the root file
/var/lib/vmupdate-victim.file must stay byte for byte unchanged, and the guest
must continue or stay restorable: after the attacker is killed and its
renames undone (an operator's repair), a plain `vmupdate restore` continues it."""
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import faults
import vmtest
import vmucli
from faults import Injections
from vmtest import log

RAM = "/var/lib/libvirt/qemu/ram"
VICTIM = "/var/lib/vmupdate-victim"
VICTIM_FILE = "/var/lib/vmupdate-victim.file"
HERE = os.path.dirname(os.path.abspath(__file__))


def snapshot():
    """(path, type, mode, uid, gid, size, sha256 | link target) of everything at the victims."""
    out = []
    paths = [VICTIM_FILE, VICTIM]
    for root, dirs, files in os.walk(VICTIM):
        paths += [os.path.join(root, n) for n in dirs + files]
    for p in sorted(paths):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            out.append((p, "missing"))
            continue
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                extra = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(p)
        else:
            extra = ""
        out.append((p, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    st.st_size if not stat.S_ISDIR(st.st_mode) else 0, extra))
    return out


def make_victims(uuid):
    shutil.rmtree(VICTIM, ignore_errors=True)
    os.makedirs(os.path.join(VICTIM, uuid), mode=0o755)
    os.chmod(VICTIM, 0o755)
    for rel, data in ((uuid + "/pc.ram", os.urandom(8192)), ("precious", b"root's data\n"),
                      ("pc.ram", os.urandom(4096))):
        with open(os.path.join(VICTIM, rel), "wb") as f:
            f.write(data)
    with open(VICTIM_FILE, "wb") as f:
        f.write(os.urandom(4096))
    os.chmod(VICTIM_FILE, 0o644)


def start_attacker(uuid):
    os.makedirs(RAM, exist_ok=True)
    argv = ["setpriv", "--reuid", "libvirt-qemu", "--regid", "libvirt-qemu", "--clear-groups",
            "python3", os.path.join(HERE, "harness", "ram_attacker.py"), RAM, VICTIM, VICTIM_FILE, uuid]
    log("$ " + " ".join(argv) + " &")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def repair(running_ram_dirs=()):
    """An operator's repair after the attacker is gone: remove what it planted at the
    top of the RAM tree, put root's renamed `vmupdate` directories back, and undo
    pc.ram swaps in libvirt's per-domain directories."""
    qemu_uid = int(subprocess.run(["id", "-u", "libvirt-qemu"], capture_output=True,
                                  text=True).stdout)
    top = os.path.join(RAM, "vmupdate")
    for e in os.listdir(RAM):
        p = os.path.join(RAM, e)
        st = os.lstat(p)
        if st.st_uid == qemu_uid and (e == "vmupdate" or e.startswith(("att", "stolen."))):
            if stat.S_ISLNK(st.st_mode):
                os.unlink(p)
            else:
                shutil.rmtree(p)  # its own directory: symlinks only, never followed
            log("repair: removed the attacker's %s" % p)
    for e in sorted(os.listdir(RAM)):
        p = os.path.join(RAM, e)
        if not e.startswith(("stolen.", "att")) or os.lstat(p).st_uid != 0:
            continue
        if not os.path.lexists(top):
            os.rename(p, top)
            log("repair: renamed root's %s back to %s" % (p, top))
            continue
        for u in os.listdir(p):  # more than one root directory: merge
            if not os.path.lexists(os.path.join(top, u)):
                os.rename(os.path.join(p, u), os.path.join(top, u))
        shutil.rmtree(p)
        log("repair: merged root's %s into %s" % (p, top))
    for e in os.listdir(RAM):
        if not re.match(r"^\d+-", e):
            continue
        d = os.path.join(RAM, e)
        p, s = os.path.join(d, "pc.ram"), os.path.join(d, "pc.ram.swap")
        if os.path.islink(p) and os.path.isfile(s) and not os.path.islink(s):
            os.replace(s, p)
            log("repair: undid a pc.ram swap in %s" % d)
        for n in ("pc.ram", "pc.ram.swap"):
            if os.path.islink(os.path.join(d, n)):
                os.unlink(os.path.join(d, n))


def under_attack(inj, g, cycle):
    """save, restore, destroy + cold start, save again while the attacker runs."""
    r = vmucli.vmupdate("save", g.name)
    st = faults.domstate(g.ref)
    what = "save-rc=%d" % r.returncode
    if st != "running":
        # restore under attack too, whatever the save said
        r2 = vmucli.vmupdate("restore", g.name)
        st = faults.domstate(g.ref)
        what += ",restore-rc=%d" % r2.returncode
    what += "," + st.replace(" ", "-")
    problems, lost = [], 0
    if st == "running":
        try:
            faults.check_continued(g)
        except (AssertionError, TimeoutError) as e:
            problems.append(str(e))
            lost = 1
    inj.record("cycle%d" % cycle, "save+restore", what, lost, problems)
    if st != "running":
        return  # stays saved: judged after the repair
    # stop + cold start under attack (the guest boots afresh: a new baseline)
    vmtest.virsh("destroy", g.ref, check=False)
    started = False
    for _ in range(5):
        r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "start", g.ref], check=False)
        if r.returncode == 0:
            started = True
            break
        time.sleep(0.2)
    # The QEMU user owns libvirt's RAM directories and can plant a `pc.ram` link in
    # the next `<id>-<name>/` before libvirt makes it: QEMU (that same user) then
    # cannot open its RAM. That sabotages only the attacker's own cold start, and
    # vmupdate is not involved; the boot is retried after the repair.
    own_sabotage = not started and "can't open backing store" in r.stderr
    inj.record("cycle%d" % cycle, "destroy+start",
               "started" if started else "start-failed" + ("(own-ram-planted)" if own_sabotage else ""),
               0, [] if started or own_sabotage
               else ["cold start failed 5 times under attack: %s" % r.stderr.strip()])
    if not started:
        g.boot_after_repair = True
        return
    g.dom._start_mark = g.serial.mark()
    g.dom.wait_first_tick()
    g.baseline()
    # and a save left for after the repair
    r = vmucli.vmupdate("save", g.name)
    inj.record("cycle%d" % cycle, "save-after-cold-start", "save-rc=%d,%s" % (
        r.returncode, faults.domstate(g.ref).replace(" ", "-")), 0, [])


def main():
    kernel = faults.suite_setup()
    if not shutil.which("setpriv"):
        raise vmtest.Skip("setpriv (util-linux) missing")
    inj = Injections("attacker")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fatk") as g:
            make_victims(g.uuid)
            before_victims = snapshot()
            for cycle in range(3):
                attacker = start_attacker(g.uuid)
                try:
                    under_attack(inj, g, cycle)
                finally:
                    attacker.send_signal(signal.SIGKILL)
                    out, _ = attacker.communicate(timeout=30)
                    log("attacker output (tail): %s" % "\n".join(out.splitlines()[-2:]))
                    vmtest.run_cmd(["ls", "-la", RAM], check=False)
                    repair()
                changed = [(a, b) for a, b in zip(before_victims, snapshot()) if a != b]
                if len(before_victims) != len(snapshot()):
                    changed.append(("entries", len(before_victims), len(snapshot())))
                inj.record("cycle%d" % cycle, "victims", "unchanged" if not changed else "MODIFIED",
                           0, ["victim changed: %s" % (changed[:5],)] if changed else [])
                if changed:
                    make_victims(g.uuid)
                    before_victims = snapshot()
                if getattr(g, "boot_after_repair", False):
                    # The test itself destroyed it for a cold start: boot it afresh.
                    g.boot_after_repair = False
                    faults.fresh_start(g)
                    inj.record("cycle%d" % cycle, "after-repair", "booted-afresh", 0, [])
                    continue
                # The operator's repair done: a saved guest must restore with a plain restore.
                outcome, lost, problems = faults.settle(g)
                inj.record("cycle%d" % cycle, "after-repair", outcome, lost, problems)
            shutil.rmtree(VICTIM, ignore_errors=True)
            vmtest._unlink(VICTIM_FILE)
    inj.finish()


vmtest.run(main)
