#!/usr/bin/env python3
"""End-to-end: a kernel update without persistent memory. `vmupdate host-update`
hands guest RAM on tmpfs to the next kernel in memfds (Kexec HandOver + the Live
Update Orchestrator), in a throwaway host VM (tests/e2e/hostvm.py) booted with a
kernel that has them (scripts/build-luo-kernel) and `kho=on liveupdate=on`.

One run, three boots of the host VM, the same kernel throughout:
  1. guest A with its RAM on a DAX mount of memmap= pmem: host-update (the pmem
     path), kexec;
  2. `vmupdate restore --all` brings A back; A is destroyed; memory_backing_dir
     moves to a tmpfs mount. host-update whose new command line lacks
     liveupdate=on is refused (exit 2, guest B running); --dry-run names the
     handover; with test points, host-update interrupted (SIGINT) once B's RAM
     is in the LUO session takes it back and restores B; then host-update for
     real: B's RAM is handed over by LUO, kexec;
  3. the tmpfs is empty and new; two write-back failures are injected, each
     `vmupdate restore --all` exiting 1 with B's RAM kept by `vmupdate ram-hold`:
     the tmpfs remounted too small (ENOSPC), then <memory_backing_dir>/vmupdate
     planted as the QEMU user's; with the cause removed, a plain `vmupdate
     restore --all` writes the RAM back from the holder and restores B.
Asserted: three host boot ids, each guest continued (same guest boot id, ticks
go on, memory checksum unchanged), and the RAM came from the handover. The
RESULT line gives both guest pauses.

Skipped when the LUO kernel has not been built (it takes 20-30 min on two
cores; `scripts/build-luo-kernel` caches it). The stages:
tests/e2e/stages/host_update_luo.sh and (--systemd: the LUO path on a host whose
PID 1 is systemd, the handover held by vmupdate-handover.service through
`systemctl kexec`) host_update_luo_systemd.sh. Exit 0 pass, 1 fail, 77 skipped."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import REPO, log, pause_of, step  # noqa: E402
from test_points import point  # noqa: E402


def luo_kernel():
    """The cached KHO + LUO kernel, or skip (building it is not a test's job)."""
    if os.environ.get("VMU_LUO_KERNEL"):
        return os.environ["VMU_LUO_KERNEL"]
    p = subprocess.run([os.path.join(REPO, "scripts", "build-luo-kernel"), "--print"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    path = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else ""
    if not path or not os.path.exists(path):
        vmtest.skip("no kernel with Kexec HandOver and LUO: run scripts/build-luo-kernel first "
                    "(Debian's kernels do not enable them)")
    return path


def files_for(guest, cli, hook, helper, kernel):
    files = dict(e2elib.bin_files(cli, hook, helper), **{"bin/vmlinuz-luo": "@" + kernel})
    for g in ("a", "b"):
        files.update(e2elib.guest_files("vmu-e2e-luo-" + g, guest, xml=g, serial=g))
    return files


def main_systemd(kernel, files, work_root):
    unit = os.environ.get("VMUPDATE_RESTORE_UNIT",
                          os.path.join(REPO, "build", "vmupdate-restore.service"))
    if not os.path.exists("/lib/systemd/systemd"):
        vmtest.skip("systemd is not installed (the host VM boots this machine's system)")
    if not os.path.exists(unit):
        vmtest.skip("%s not built" % unit)
    files = dict(files)
    files["bin/vmupdate-restore.service"] = "@" + unit
    files["bin/apparmor-vmupdate"] = "@" + os.path.join(
        REPO, "packaging/apparmor/libvirt-qemu.d-vmupdate")
    wd = e2elib.work_dir("host-update-luo-systemd")
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem=None, persist_root=True, kernel=kernel, init="systemd",
                       extra_append="kho=on liveupdate=on",
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start_stage("host_update_luo_systemd", files=files)
        step(vm, "systemd", 600)
        step(vm, "guest-b", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "b.serial"))
        before = serial.last_tick()
        vm.wait_for(r"^VMU-HOST-UPDATE luo", 120)
        # From the share: the shutdown may stop the stage before its `cat`.
        m, _ = vm.wait_file("update.out", r"saved (\d+) domain\(s\) in ([0-9.]+) s; "
                            r"state synced; kexec now \(systemctl kexec\)", 300)
        assert m.group(1) == "1", m.group(0)
        _, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 600)
        step(vm, "restore", 300)
        step(vm, "continued", 180)
        serial.assert_continued(before, serial.last_tick(), consecutive=False)
        out = e2elib.read_shared(vm, "restore-luo.out")
        e2elib.finish(vm, 2, exit_timeout=180)
        handed = re.search(r"RAM handed over .*? in ([0-9.]+) s", out)
        log("RESULT host-update luo (systemd): save %s s, systemctl kexec with "
            "vmupdate-handover.service holding the RAM; guest pause %s s (RAM written back in "
            "%s s); whole test %.0f s"
            % (m.group(2), pause_of(out), handed.group(1) if handed else "?",
               time.monotonic() - t0))
        log("host-update:\n" + e2elib.read_shared(vm, "update.out"))
        log("vmupdate-restore.service:\n" + out)
    shutil.rmtree(wd, ignore_errors=True)


def main():
    hostvm.skip_unless_ready()
    kernel = luo_kernel()
    guest = vmtest.find_test_guest()
    cli, hook, helper = e2elib.binaries()
    work_root = e2elib.WORK_ROOT
    if "--systemd" in sys.argv[1:]:
        return main_systemd(kernel, files_for(guest, cli, hook, helper, kernel), work_root)
    wd = e2elib.work_dir("host-update-luo")
    t0 = time.monotonic()
    files = files_for(guest, cli, hook, helper, kernel)
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True, kernel=kernel,
                       extra_append="kho=on liveupdate=on",
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        points = e2elib.points_built()
        vm.start_stage("host_update_luo",
                       {"HANDOVER_POINT": point("host-update:handed-over") if points else ""},
                       files=files)
        step(vm, "luo", 300)
        step(vm, "guest-a", 300)
        serial_a = vmtest.SerialLog(os.path.join(vm.shared, "guest", "a.serial"))
        before_a = serial_a.last_tick()
        vm.wait_for(r"^VMU-HOST-UPDATE pmem", 120)
        m_pmem, _ = vm.wait_for(r"saved (\d+) domain\(s\) in ([0-9.]+) s; state synced; kexec now", 300)
        step(vm, "restore-pmem", 600)
        serial_a.assert_continued(before_a, serial_a.last_tick(), consecutive=False)

        m_b, _ = step(vm, "guest-b", 300)
        log("guest B's RAM directory: %s" % m_b.group(1).strip())
        serial_b = vmtest.SerialLog(os.path.join(vm.shared, "guest", "b.serial"))
        e2elib.refused_and_dry_run(vm, "liveupdate=on")
        if points:
            m_tb, _ = step(vm, "takeback", 600)
            log("host-update interrupted after the handover (SIGINT); preserved files after "
                "the take-back: %s\n%s" % (m_tb.group(1).strip(),
                                            e2elib.read_shared(vm, "takeback.out")))
        else:
            log("built without test points: the interrupted handover is not exercised")
        before_b = serial_b.last_tick()
        vm.wait_for(r"^VMU-HOST-UPDATE luo", 120)
        mark = max(i for i, (_, line) in enumerate(vm.lines()) if "VMU-HOST-UPDATE luo" in line)
        m_luo, _ = vm.wait_for(r"saved (\d+) domain\(s\) in ([0-9.]+) s; state synced; kexec now",
                               300, since=mark)
        step(vm, "tmpfs-new", 600)
        m_enospc, _ = step(vm, "enospc", 600)
        log("write-back refused for want of room, RAM kept by: %s" % m_enospc.group(1).strip())
        step(vm, "planted", 600)
        log("write-back refused by a planted directory:\n"
            + e2elib.read_shared(vm, "planted.out"))
        step(vm, "restore-luo", 600)
        serial_b.assert_continued(before_b, serial_b.last_tick(), consecutive=False)
        e2elib.finish(vm, 3)
        out_pmem = e2elib.read_shared(vm, "restore-pmem.out")
        out_luo = e2elib.read_shared(vm, "restore-luo.out")
        handed = re.search(r"RAM handed over .*? in ([0-9.]+) s", out_luo)
        log("RESULT host-update luo: guest pause across the kexec with RAM on pmem (DAX) %s s, "
            "with RAM on tmpfs handed over by LUO %s s (RAM written back from the memfd in %s s); "
            "saves %s s / %s s; kernel %s; whole test %.0f s"
            % (pause_of(out_pmem), pause_of(out_luo), handed.group(1) if handed else "?",
               m_pmem.group(2), m_luo.group(2), os.path.basename(kernel),
               time.monotonic() - t0))
        log("restore after the LUO kexec:\n" + out_luo)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
