#!/usr/bin/env python3
"""Smoke test of the e2e groundwork (tests/e2e/hostvm.py): exit 0 pass, 1 fail, 77 skip.

    python3 tests/e2e/test_hostvm_smoke.py            # legacy pmem (memmap=) + kexec
    python3 tests/e2e/test_hostvm_smoke.py --nvdimm   # emulated NVDIMM + ndctl
    python3 tests/e2e/test_hostvm_smoke.py --all      # both
  options: --work-dir DIR (default $VMU_E2E_WORK or /var/tmp/vmupdate-e2e),
           --keep (keep the VM directories), --guest PATH (counter-guest.elf)

memmap test, inside a throwaway host VM (persist_root: overlay on a virtio disk):
  a. /dev/pmem0 exists; mkfs.ext4 + mount -o dax works; /proc/mounts says dax
  b. virtlogd + libvirtd (setsid tini -s) start with memory_backing_dir on the
     DAX mount; `virsh version` answers
  c. the counter guest (RAM in a shared file) starts under nested TCG, ticks,
     and its RAM file is under /mnt/pmem/ram/
  d. 16 MiB of random data on the DAX file system (and a file on the
     persistent root) survive `kexec` into stage 2: new boot id, same sha256
nvdimm test: the NVDIMM region gets labels (ndctl init-labels), a 256 MiB
fsdax namespace yields /dev/pmem0, which mounts with dax; a file on it
survives kexec (the namespace comes back from the labels).
Timings (first serial line, libvirtd answering, first nested tick, kexec
cycle, total) are printed at the end. The stages: tests/e2e/stages/smoke_memmap.sh,
smoke_nvdimm.sh.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402  (imported by hostvm from tests/integration/harness)
from e2elib import log  # noqa: E402
GUEST_NAME = "vmu-e2e-counter"
TIMINGS = []  # (label, seconds)


def timing(label, seconds):
    TIMINGS.append((label, seconds))
    log("TIMING %-44s %7.2fs" % (label, seconds))


def step(vm, name, timeout, since=0):
    """Wait for `VMU-STEP name ok`; returns (match, seconds since QEMU spawn)."""
    m, t = vm.wait_for(r"VMU-STEP %s ok\b(.*)" % name, timeout, since=since)
    log("step %s: ok at %.2fs:%s" % (name, t, m.group(1)))
    return m, t


def test_memmap(work_root, keep):
    guest = vmtest.find_test_guest()
    wd = e2elib.work_dir("smoke-memmap", work_root)
    t0 = time.monotonic()
    xml = vmtest.domain_xml(GUEST_NAME, "/shared/guest/counter-guest.elf", memory_mib=128,
                            fill_mib=32, serial_log="/shared/guest/counter.serial",
                            file_backed=True)
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start_stage("smoke_memmap", {"GUEST": GUEST_NAME},
                       files={"guest/counter-guest.elf": "@" + guest, "guest/domain.xml": xml})
        _, t_boot1 = vm.wait_for(r"^VMU-BOOT stage=1 boot_id=(\S+)", 120)
        timing("memmap: first serial byte after QEMU spawn", vm.t_first_serial)
        timing("memmap: stage 1 running (VMU-BOOT)", t_boot1)
        # a.
        _, t_a = step(vm, "pmem", 120)
        # b.
        _, t_b = step(vm, "libvirtd", 240)
        timing("memmap: libvirtd answering after spawn", t_b)
        timing("memmap:   of which libvirtd startup", t_b - t_a)
        # c.
        _, t_gs = step(vm, "guest-started", 180)
        _, t_gt = step(vm, "guest-tick", 120)
        m, _ = step(vm, "guest-ram", 30)
        timing("memmap: first nested tick after spawn", t_gt)
        timing("memmap:   virsh define + start (nested QEMU up)", t_gs - t_b)
        timing("memmap:   first tick after virsh start returned", t_gt - t_gs)
        assert "/mnt/pmem/ram/" in m.group(1) and "size=134217728" in m.group(1), \
            "RAM file not on pmem or wrong size: %s" % m.group(1)
        ser = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        ticks = ser.ticks()
        assert ticks and len(ser.boots()) == 1 and not ser.faults(), \
            "counter guest output unexpected: %s" % ser.lines()[-5:]
        log("counter guest: boot id %s, %d tick(s), sum %s" % (ticks[0].id, len(ticks), ticks[0].sum))
        # d.
        _, t_pre = step(vm, "prekexec", 120)
        _, t_kx = vm.wait_for(r"^VMU-KEXEC stage=2", 60)
        m2, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 180)
        _, t_surv = step(vm, "survived", 120)
        timing("memmap: kexec -e -> stage 2 running", t_boot2 - t_kx)
        timing("memmap: kexec cycle (umount done -> data verified)", t_surv - t_pre)
        step(vm, "persist", 30)
        step(vm, "fsck", 60)
        vm.wait_for(r"^VMU-STAGE-END stage=2 rc=0", 60)
        rc = vm.wait_exit(60)
        assert rc == 0, "QEMU exit code %s" % rc
        ids = vm.boot_ids()
        log("boot ids: %s" % ids)
        assert [s for s, _, _ in ids] == ["1", "2"], "expected boots of stage 1 and 2: %s" % ids
        assert ids[0][1] != ids[1][1], "boot id did not change across kexec: %s" % ids
        assert vm.stage_rc(2) == 0 and vm.stage_rc(1) is None, \
            "stage rcs: 1=%s 2=%s" % (vm.stage_rc(1), vm.stage_rc(2))
    timing("memmap: whole test", time.monotonic() - t0)
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)


def test_nvdimm(work_root, keep):
    wd = e2elib.work_dir("smoke-nvdimm", work_root)
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="nvdimm", pmem_size_mib=1024,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start_stage("smoke_nvdimm")
        _, t_boot = vm.wait_for(r"^VMU-BOOT stage=1 ", 120)
        timing("nvdimm: first serial byte after QEMU spawn", vm.t_first_serial)
        timing("nvdimm: stage running (VMU-BOOT)", t_boot)
        _, t_l = step(vm, "labels", 120)
        _, t_n = step(vm, "namespace", 120)
        step(vm, "fsdax", 120)
        timing("nvdimm: init-labels (from VMU-BOOT)", t_l - t_boot)
        timing("nvdimm: create-namespace", t_n - t_l)
        _, t_pre = step(vm, "prekexec", 120)
        _, t_kx = vm.wait_for(r"^VMU-KEXEC stage=2", 60)
        vm.wait_for(r"^VMU-BOOT stage=2 ", 180)
        _, t_s = step(vm, "survived", 120)
        timing("nvdimm: kexec cycle (umount done -> data verified)", t_s - t_pre)
        vm.wait_for(r"^VMU-STAGE-END stage=2 rc=0", 60)
        assert vm.wait_exit(60) == 0
        ids = vm.boot_ids()
        assert [x[0] for x in ids] == ["1", "2"] and ids[0][1] != ids[1][1], "boot ids: %s" % ids
    timing("nvdimm: whole test", time.monotonic() - t0)
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)


def main():
    args = sys.argv[1:]
    nvdimm, both, keep = "--nvdimm" in args, "--all" in args, "--keep" in args
    work_root = hostvm.DEFAULT_WORK_ROOT
    for i, a in enumerate(args):
        if a == "--work-dir" and i + 1 < len(args):
            work_root = args[i + 1]
        elif a.startswith("--work-dir="):
            work_root = a.split("=", 1)[1]
    hostvm.require_prerequisites(nvdimm=nvdimm or both)
    os.makedirs(work_root, exist_ok=True)
    t0 = time.monotonic()
    try:
        if both or not nvdimm:
            test_memmap(work_root, keep)
        if both or nvdimm:
            test_nvdimm(work_root, keep)
    finally:
        timing("total", time.monotonic() - t0)
        print("----- timings -----")
        for label, s in TIMINGS:
            print("  %-50s %7.2fs" % (label, s))
        sys.stdout.flush()


if __name__ == "__main__":
    hostvm.run(main)
