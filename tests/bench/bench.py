"""Benchmark: stock libvirt managed save + start versus vmupdate save + restore.

For guests of several sizes whose RAM is filled with random data, runs both
methods alternately (A/B, B/A, ...) on a real libvirtd + QEMU (TCG) and
measures per run: the guest pause (libvirt Suspended -> Resumed event times,
from `virsh event --timestamp`), save and restore wall time, bytes written to
disk (the save directory's block device, after a sync that is not timed), and
the peak extra host memory (drop of MemAvailable during the run). Prints and
writes a CSV; `report.py` turns it into docs/benchmarks.md and a PNG plot.

Guest RAM lives on a tmpfs mounted for the benchmark (memory_backing_dir is
pointed there for the run and restored afterwards), as it would for a QEMU
update. Both domains are file-backed alike; only the stock one is not managed
by vmupdate, so the only difference is how the state is saved. The counter
guest fills the RAM below 4 GiB with random data; the benchmark fills the rest
of the RAM file (above 4 GiB of guest memory) from the host.
"""
import argparse
import calendar
import csv
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "harness"))
import vmtest  # noqa: E402
import vmucli  # noqa: E402
from vmtest import log  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
QEMU_CONF = "/etc/libvirt/qemu.conf"
BENCH_RAM = "/var/lib/vmupdate-bench/ram"
LOW_MEM_MIB = 3072  # pc machine: RAM below 4 GiB for guests of 4 GiB and more
EVENT_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+0000: event 'lifecycle' for domain '([^']+)': (\w+) (\w+)")


def ts(text):
    """Seconds since the epoch of virsh's UTC timestamp."""
    whole, frac = text.split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + float("0." + frac)


class Events:
    """`virsh event --loop --timestamp` for one domain, parsed on a thread."""

    def __init__(self, name):
        self.events = []
        self.proc = subprocess.Popen(["virsh", "-c", vmtest.URI, "event", "--domain", name, "--loop",
                                      "--timestamp", "--event", "lifecycle"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # let virsh subscribe

    def _read(self):
        for line in self.proc.stdout:
            m = EVENT_RE.match(line)
            if m:
                self.events.append((ts(m.group(1)), m.group(3), m.group(4)))

    def wait(self, event, timeout=120):
        t = time.monotonic() + timeout
        while time.monotonic() < t:
            for e in self.events:
                if e[1] == event:
                    return e[0]
            time.sleep(0.01)
        raise AssertionError("no %s event" % event)

    def first(self, event):
        return next((e[0] for e in self.events if e[1] == event), None)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class MemSampler:
    """Lowest MemAvailable while running."""

    def __init__(self):
        self.base = self.available()
        self.low = self.base
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def available():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self.stop:
            self.low = min(self.low, self.available())
            time.sleep(0.01)

    def finish(self):
        self.stop = True
        self.thread.join()
        return max(0, self.base - self.low)


def device_of(path):
    dev = os.stat(path).st_dev
    return os.major(dev), os.minor(dev)


def sectors_written(major, minor):
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if int(p[0]) == major and int(p[1]) == minor:
                return int(p[9])
    return 0


def fill_high(path, size_mib):
    """Random data into the RAM file above the guest's low memory."""
    if size_mib <= LOW_MEM_MIB:
        return
    t = time.monotonic()
    with open("/dev/urandom", "rb") as src, open(path, "r+b") as dst:
        dst.seek(LOW_MEM_MIB * MIB)
        left = (size_mib - LOW_MEM_MIB) * MIB
        while left > 0:
            chunk = src.read(min(left, 64 * MIB))
            dst.write(chunk)
            left -= len(chunk)
    log("filled %d MiB of %s from the host in %.1fs" % (size_mib - LOW_MEM_MIB, path, time.monotonic() - t))


PHASES = {}  # size in GiB -> one [(phase, ms), ...] per vmupdate run, from `restore --verbose`
PHASE_RE = re.compile(r"^  (.*\S)\s+([0-9.]+) ms$")


def settle():
    """Lets the previous run's writeback and page-cache churn finish, untimed, so
    that neither method pays for the other's disk traffic."""
    subprocess.run(["sync"], check=True)
    t = time.monotonic() + 60
    while time.monotonic() < t:
        with open("/proc/meminfo") as f:
            kb = {l.split(":")[0]: int(l.split()[1]) for l in f}
        if kb.get("Dirty", 0) + kb.get("Writeback", 0) < 16 * 1024:
            break
        time.sleep(0.2)
    time.sleep(1)


def busy_cpu_s():
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as f:
        p = [int(x) for x in f.readline().split()[1:]]
    return (sum(p) - p[3] - p[4]) / os.sysconf("SC_CLK_TCK")


def run_once(method, dom, save_major_minor, size):
    ev = Events(dom.name)
    mem = MemSampler()
    written0 = sectors_written(*save_major_minor)
    before = dom.serial.last_tick()
    t0 = time.monotonic()
    if method == "stock":
        vmtest.virsh("managedsave", dom.name, timeout=600)
    else:
        vmucli.check("save", dom.name, timeout=600)
    t1 = time.monotonic()
    image = os.path.getsize(vmucli.image_path(dom.name))
    if method == "stock":
        vmtest.virsh("start", dom.name, timeout=600)
    else:
        r = vmucli.check("restore", "--verbose", dom.name, timeout=600)
        PHASES.setdefault(size, []).append(
            [(m.group(1), float(m.group(2))) for m in map(PHASE_RE.match, r.stdout.splitlines()) if m])
    t2 = time.monotonic()
    resumed = ev.wait("Resumed")
    suspended = ev.first("Suspended")
    extra = mem.finish()
    ev.close()
    subprocess.run(["sync"], check=True)
    written = (sectors_written(*save_major_minor) - written0) * 512
    after = dom.serial.wait_for_tick(before.tick + 1, timeout=120)
    assert after.id == before.id and after.sum == before.sum, "guest did not continue"
    settle()
    return {"method": method, "pause_ms": round((resumed - suspended) * 1000, 1),
            "save_s": round(t1 - t0, 3), "restore_s": round(t2 - t1, 3), "image_bytes": image,
            "disk_written_bytes": written, "peak_extra_mem_bytes": extra}


def fleet(kernel, n, runs):
    """Save and restore of 1, 2 and n VMs, each group with one call each way, and
    the CPU time the whole machine spent on the restore."""
    rows = []
    doms = [vmtest.TestDomain(kernel, tag="fleet%d" % i, memory_mib=256, fill_mib=64, check_mib=16, start=False)
            for i in range(n)]
    entered = []
    try:
        for d in doms:
            d.__enter__()
            entered.append(d)
            vmucli.check("prepare", d.name)
            d.start()
        for d in doms:
            d.serial.wait_for_tick(1, timeout=300)
        for run in range(runs):
            for k in sorted({1, min(2, n), n}):
                # All n through `--all`, as an operator would; fewer by name.
                names = ["--all"] if k == n else [d.name for d in doms[:k]]
                settle()
                t0 = time.monotonic()
                vmucli.check("save", "--parallel", str(k), *names)
                t1 = time.monotonic()
                cpu0 = busy_cpu_s()
                vmucli.check("restore", "--parallel", str(k), *names)
                t2 = time.monotonic()
                cpu = busy_cpu_s() - cpu0
                rows.append({"vms": k, "run": run + 1, "save_s": round(t1 - t0, 3), "restore_s": round(t2 - t1, 3),
                             "total_s": round(t2 - t0, 3), "restore_cpu_s": round(cpu, 2)})
                log("FLEET %s" % rows[-1])
                for d in doms[:k]:
                    d.serial.wait_for_tick(d.serial.last_tick().tick + 1, timeout=120)
    finally:
        for d in reversed(entered):
            d.__exit__(None, None, None)
    return rows


def probe_cost():
    """What libvirt's guest-CPU probe costs QEMU on its own: one qom-get per boolean
    property of the first vCPU, as libvirt 11.3 sends them to QEMU 10.0 during every
    start, timed on a bare QEMU (no libvirt) with its vCPUs stopped (-S), as they are
    while libvirt probes a restoring QEMU."""
    import json
    import socket
    sock = "/run/vmupdate-bench-probe.sock"
    if os.path.exists(sock):
        os.unlink(sock)
    t0 = time.monotonic()
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "256", "-nodefaults",
                             "-nographic", "-S", "-qmp", "unix:%s,server=on,wait=off" % sock],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s = socket.socket(socket.AF_UNIX)
        while True:
            try:
                s.connect(sock)
                break
            except OSError:
                if qemu.poll() is not None or time.monotonic() - t0 > 30:
                    raise AssertionError("bare QEMU for the probe did not start")
                time.sleep(0.001)
        s.settimeout(30)
        f = s.makefile("rw")
        f.readline()
        t_up = time.monotonic() - t0

        def cmd(name, args=None):
            f.write(json.dumps({"execute": name, "arguments": args or {}}) + "\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "return" in r or "error" in r:
                    return r

        cmd("qmp_capabilities")
        path = "/machine/unattached/device[0]"
        props = [p["name"] for p in cmd("qom-list", {"path": path})["return"] if p["type"] == "bool"]
        tick = os.sysconf("SC_CLK_TCK")

        def qemu_cpu():
            with open("/proc/%d/stat" % qemu.pid) as st:
                p = st.read().rsplit(")", 1)[1].split()
            return (int(p[11]) + int(p[12])) / tick

        q0 = qemu_cpu()
        t = time.monotonic()
        for p in props:
            cmd("qom-get", {"path": path, "property": p})
        wall = time.monotonic() - t
        q1 = qemu_cpu()
        cmd("quit")
        qemu.wait(timeout=10)
        return {"qom_gets": len(props), "probe_wall_ms": round(wall * 1000, 1),
                "probe_qemu_cpu_ms": round((q1 - q0) * 1000, 1), "qemu_up_ms": round(t_up * 1000, 1)}
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        if os.path.exists(sock):
            os.unlink(sock)


class BenchEnv:
    """memory_backing_dir on a dedicated tmpfs for the run; restored afterwards."""

    def __init__(self, tmpfs_gib):
        self.tmpfs_gib = tmpfs_gib
        self.conf = None

    def __enter__(self):
        os.makedirs(BENCH_RAM, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dg,mode=0755" % self.tmpfs_gib, "tmpfs", BENCH_RAM], check=True)
        with open(QEMU_CONF) as f:
            self.conf = f.read()
        with open(QEMU_CONF, "a") as f:
            f.write('\n# vmupdate benchmark (temporary)\nmemory_backing_dir = "%s"\n' % BENCH_RAM)
        return self

    def __exit__(self, *exc):
        with open(QEMU_CONF, "w") as f:
            f.write(self.conf)
        vmtest.LibvirtDaemons().restart_libvirtd()
        subprocess.run(["umount", BENCH_RAM], check=False)
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,2,4,8", help="guest sizes in GiB")
    ap.add_argument("--runs", type=int, default=5, help="runs per method and size")
    ap.add_argument("--csv", default="bench-results.csv")
    ap.add_argument("--fleet", type=int, default=10, help="VMs for the save/restore --all run (0: skip)")
    args, _ = ap.parse_known_args()
    # A SIGTERM must unwind too: BenchEnv puts qemu.conf back and unmounts the tmpfs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",")]
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    vmtest.cleanup_stale_domains()
    rows = []
    save_dev = device_of("/var/lib/libvirt/qemu/save")
    with BenchEnv(tmpfs_gib=2 * max(sizes) + 2), vmucli.hook_installed():
        for size in sizes:
            mib = size * 1024
            fill = min(mib - 64, LOW_MEM_MIB - 72)
            doms = {}
            with vmtest.TestDomain(kernel, tag="bstock%d" % size, memory_mib=mib, fill_mib=fill, check_mib=16,
                                   file_backed=True) as stock, \
                    vmtest.TestDomain(kernel, tag="bvmu%d" % size, memory_mib=mib, fill_mib=fill, check_mib=16,
                                      start=False) as ours:
                vmucli.check("prepare", ours.name)
                ours.start()
                doms = {"stock": stock, "vmupdate": ours}
                for dom in doms.values():
                    dom.serial.wait_for(r"^VMUGUEST filled", timeout=600)
                    dom.serial.wait_for_tick(1, timeout=120)
                    path = [b for b in dom.memory_backends() if b.get("qom-type") == "memory-backend-file"][0]["mem-path"]
                    fill_high(path, mib)
                for run in range(args.runs):
                    order = ["stock", "vmupdate"] if run % 2 == 0 else ["vmupdate", "stock"]
                    for method in order:
                        row = run_once(method, doms[method], save_dev, size)
                        row.update(size_gib=size, run=run + 1)
                        log("RESULT %s" % row)
                        rows.append(row)
                stock.destroy()
                ours.destroy()
        if args.fleet:
            fleet_rows = fleet(kernel, args.fleet, args.runs)
            with open(args.csv.replace(".csv", "-fleet.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["vms", "run", "save_s", "restore_s", "total_s", "restore_cpu_s"])
                w.writeheader()
                w.writerows(fleet_rows)
    probes = [probe_cost() for _ in range(5)]
    log("PROBE %s" % probes)
    with open(args.csv.replace(".csv", "-probe.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(probes[0]))
        w.writeheader()
        w.writerows(probes)
    # Median of each phase over the runs of a size, in the order the phases happen.
    with open(args.csv.replace(".csv", "-phases.txt"), "w") as f:
        for size in sorted(PHASES):
            names = []
            for run in PHASES[size]:
                names += [n for n, _ in run if n not in names]
            f.write("%d GiB (median of %d runs)\n" % (size, len(PHASES[size])))
            for n in names:
                vals = [ms for run in PHASES[size] for name, ms in run if name == n]
                f.write("  %-56s %7.1f ms\n" % (n, statistics.median(vals)))
    fields = ["size_gib", "method", "run", "pause_ms", "save_s", "restore_s", "image_bytes",
              "disk_written_bytes", "peak_extra_mem_bytes"]
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in fields})
    print("\nsize  method    pause_ms(median)  save_s  restore_s  image_bytes")
    for size in sizes:
        for method in ("stock", "vmupdate"):
            rs = [r for r in rows if r["size_gib"] == size and r["method"] == method]
            print("%-5d %-9s %16.1f %7.3f %10.3f %12d" % (
                size, method, statistics.median(r["pause_ms"] for r in rs),
                statistics.median(r["save_s"] for r in rs), statistics.median(r["restore_s"] for r in rs),
                int(statistics.median(r["image_bytes"] for r in rs))))
    print("wrote %s" % args.csv)


if __name__ == "__main__":
    vmtest.run(main)
