"""Benchmark: Nova's <allocation mode='immediate'/> on the restore path.

Part 1, end to end: a Nova-written instance (<allocation mode='immediate'/> and
<discard/>, never prepared, `manage = file-backed`) against a prepared domain of
the same size, RAM on a tmpfs, `vmupdate save` + `vmupdate restore` alternately;
per run the guest pause (libvirt's Suspended -> Resumed events) and the discard
switch's own cost (`vmupdate save` prints it). The restore hook drops the
preallocation from the restoring QEMU's XML, so both pauses should match.

Part 2, QEMU alone: what that preallocation would cost the restoring QEMU. QEMU
is started as libvirt starts it for a restore (-S, a shared memory-backend-file
on an existing, fully allocated RAM file on the same tmpfs) with prealloc=on and
off, and timed from exec until its QMP monitor answers; the difference is the
preallocation, which happens inside the guest's pause.

Prints a table; `scripts/bench-prealloc [--sizes 1,4] [--qemu-sizes 1,4,16] [--runs 3]`.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "harness"))
import bench  # noqa: E402
import vmtest  # noqa: E402
import vmucli  # noqa: E402
from nova import CONF, nova_domain_xml, set_policy  # noqa: E402
from vmtest import log  # noqa: E402

GIB = 1024 * 1024 * 1024
SWITCH_RE = re.compile(r"discard switched off in (\d+) memory backend\(s\) before the pause \(([0-9.]+) ms\)")


def populate(dom):
    """Allocates every page of the guest's RAM file (fallocate keeps the data), as
    in a guest that has used all its memory, without filling it under TCG."""
    path = [b for b in dom.memory_backends() if b.get("qom-type") == "memory-backend-file"][0]["mem-path"]
    subprocess.run(["fallocate", "-l", str(os.path.getsize(path)), path], check=True)
    return path


def one_round(dom):
    ev = bench.Events(dom.name)
    before = dom.serial.last_tick()
    r = vmucli.check("save", dom.name, timeout=600)
    m = SWITCH_RE.search(r.stdout)
    vmucli.check("restore", dom.name, timeout=600)
    resumed = ev.wait("Resumed")
    suspended = ev.first("Suspended")
    ev.close()
    after = dom.serial.wait_for_tick(before.tick + 1, timeout=120)
    assert after.id == before.id and after.sum == before.sum, "guest did not continue"
    bench.settle()
    return {"pause_ms": (resumed - suspended) * 1000, "switch_ms": float(m.group(2)) if m else None}


def end_to_end(kernel, size, runs):
    mib = size * 1024
    rows = {"nova": [], "prepared": []}
    nova = vmtest.TestDomain(kernel, tag="pnova%d" % size, memory_mib=mib, fill_mib=64,
                             start=False)
    nova.xml = nova_domain_xml(nova, discard=True)
    with nova, vmtest.TestDomain(kernel, tag="pprep%d" % size, memory_mib=mib, fill_mib=64,
                                 start=False) as prepared:
        vmucli.check("prepare", prepared.name)
        doms = {"nova": nova, "prepared": prepared}
        for dom in doms.values():
            dom.start()
            dom.wait_first_tick(timeout=120)
            populate(dom)
        for run in range(runs):
            for kind in (["nova", "prepared"] if run % 2 == 0 else ["prepared", "nova"]):
                row = one_round(doms[kind])
                log("RESULT %d GiB %s run %d: %s" % (size, kind, run + 1, row))
                rows[kind].append(row)
    return rows


def qemu_ready_s(path, size, prealloc):
    """Seconds from exec until a -S QEMU on the RAM file answers on QMP."""
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        argv = ["qemu-system-x86_64", "-machine", "pc,accel=tcg,memory-backend=pc.ram",
                "-m", "%dG" % size, "-object",
                json.dumps({"qom-type": "memory-backend-file", "id": "pc.ram", "mem-path": path,
                            "share": True, "size": size * GIB, "prealloc": prealloc}),
                "-S", "-nodefaults", "-display", "none", "-qmp", "unix:%s,server=on,wait=off" % sock]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                if p.poll() is not None:
                    raise AssertionError("QEMU exited: %s" % p.stderr.read().decode())
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(sock)
                    break
                except OSError:
                    s.close()
                    time.sleep(0.002)
            f = s.makefile("rw")
            f.readline()  # greeting
            f.write('{"execute":"qmp_capabilities"}\n')
            f.flush()
            f.readline()
            dt = time.monotonic() - t0
            f.write('{"execute":"quit"}\n')
            f.flush()
            s.close()
            p.wait(timeout=60)
            return dt
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def qemu_alone(size, runs):
    path = os.path.join(bench.BENCH_RAM, "prealloc-%d.ram" % size)
    subprocess.run(["fallocate", "-l", str(size * GIB), path], check=True)
    try:
        out = {True: [], False: []}
        for run in range(runs):
            for prealloc in ((True, False) if run % 2 == 0 else (False, True)):
                out[prealloc].append(qemu_ready_s(path, size, prealloc))
        return out
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,4", help="guest sizes in GiB, end to end")
    ap.add_argument("--qemu-sizes", default="1,4,16", help="RAM sizes in GiB, QEMU alone")
    ap.add_argument("--runs", type=int, default=3)
    args, _ = ap.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    qsizes = [int(s) for s in args.qemu_sizes.split(",") if s]
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    vmtest.cleanup_stale_domains()
    old = open(CONF).read() if os.path.exists(CONF) else None
    e2e, alone = {}, {}
    tmpfs = max([2 * s + 1 for s in sizes] + [s + 1 for s in qsizes])
    try:
        with bench.BenchEnv(tmpfs_gib=tmpfs), vmucli.hook_installed():
            set_policy("file-backed")
            for size in sizes:
                e2e[size] = end_to_end(kernel, size, args.runs)
            for size in qsizes:
                alone[size] = qemu_alone(size, args.runs)
                log("QEMU %d GiB: %s" % (size, alone[size]))
    finally:
        if old is None:
            vmtest._unlink(CONF)
        else:
            with open(CONF, "w") as f:
                f.write(old)
    med = statistics.median
    print("\nEnd to end, guest pause of vmupdate save + restore (median of %d runs):" % args.runs)
    print("RAM      Nova-written (ms)  prepared (ms)  discard switch (ms)")
    for size, rows in e2e.items():
        sw = [r["switch_ms"] for r in rows["nova"] if r["switch_ms"] is not None]
        print("%2d GiB  %17.0f  %13.0f  %19s" % (
            size, med(r["pause_ms"] for r in rows["nova"]), med(r["pause_ms"] for r in rows["prepared"]),
            ("%.1f" % med(sw)) if sw else "-"))
    print("\nQEMU alone, exec until QMP answers, -S, RAM file on tmpfs (median of %d runs):" % args.runs)
    print("RAM      prealloc=on (ms)  prealloc=off (ms)  preallocation (ms)")
    for size, o in alone.items():
        on, off = med(o[True]) * 1000, med(o[False]) * 1000
        print("%2d GiB  %16.0f  %17.0f  %18.0f" % (size, on, off, on - off))


if __name__ == "__main__":
    vmtest.run(main)
