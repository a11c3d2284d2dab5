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
cycle, total) are printed at the end.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402  (imported by hostvm from tests/integration/harness)

log = hostvm.log
GUEST_NAME = "vmu-e2e-counter"
TIMINGS = []  # (label, seconds)


def timing(label, seconds):
    TIMINGS.append((label, seconds))
    log("TIMING %-44s %7.2fs" % (label, seconds))


STAGE_COMMON = r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() { echo "VMU-STEP $1 FAIL $2"; exit 1; }
run() { echo "+ $*" >&2; "$@"; }
"""

STAGE_MEMMAP = "#!/bin/sh\n# hostvm smoke test, memmap variant\n" + STAGE_COMMON + r"""
GUEST=@GUEST@
V="virsh -c qemu:///system"
echo "stage $VMU_STAGE boot_id=$VMU_BOOT_ID kernel=$VMU_KERNEL"
case "$VMU_STAGE" in
1)
  # a. legacy pmem + DAX
  [ -b /dev/pmem0 ] || fail pmem "no /dev/pmem0 (nd devices: $(ls /sys/bus/nd/devices 2>&1))"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem "mkfs.ext4 /dev/pmem0"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax: $(dmesg | tail -n 3)"
  m=$(grep ' /mnt/pmem ' /proc/mounts)
  case "$m" in *dax*) ok pmem "$m" ;; *) fail pmem "no dax option: $m" ;; esac

  # b. libvirt with guest RAM on the DAX file system
  mkdir -p /mnt/pmem/ram
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo 'memory_backing_dir = "/mnt/pmem/ram"' >> /etc/libvirt/qemu.conf
  run virtlogd -d || fail libvirtd "virtlogd -d"
  echo "+ setsid tini -s -- libvirtd >/shared/libvirtd.log 2>&1 &"
  setsid tini -s -- libvirtd > /shared/libvirtd.log 2>&1 < /dev/null &
  i=0
  until $V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version /shared/libvirtd.log)"
    sleep 0.2
  done
  ok libvirtd "$(tr '\n' ' ' < /tmp/version)"

  # c. the counter guest under nested TCG, RAM in a shared file on pmem
  run $V define /shared/guest/domain.xml || fail guest "virsh define"
  run $V start $GUEST || fail guest "virsh start: $(tail -n 5 /var/log/libvirt/qemu/$GUEST.log)"
  ok guest-started
  i=0
  until grep -q '^VMUGUEST tick=' /shared/guest/counter.serial 2>/dev/null; do
    i=$((i+1)); [ $i -lt 600 ] || fail guest "no tick: $(tail -n 3 /shared/guest/counter.serial)"
    sleep 0.1
  done
  ok guest-tick "$(grep '^VMUGUEST tick=' /shared/guest/counter.serial | head -n 1)"
  ram=$(find /mnt/pmem/ram -name pc.ram -path "*-$GUEST/*" | head -n 1)
  [ -n "$ram" ] || fail guest-ram "no RAM file under /mnt/pmem/ram: $(find /mnt/pmem/ram)"
  run ls -l "$ram"
  ps -o pid,args -C qemu-system-x86_64 2>/dev/null | grep -o 'memory-backend-file[^ ]*' | head -n 1
  ok guest-ram "path=$ram size=$(stat -c %s "$ram")"
  sleep 2   # a few more ticks for the host to look at
  run $V destroy $GUEST || fail guest "virsh destroy"
  [ -e "$ram" ] && echo "note: RAM file still there after destroy" || echo "RAM file removed by libvirt on destroy"

  # d. data on the DAX file system across kexec
  run dd if=/dev/urandom of=/mnt/pmem/blob bs=1M count=16 status=none || fail prekexec dd
  sha256sum /mnt/pmem/blob | cut -d' ' -f1 > /shared/blob.sha256
  mkdir -p /var/lib/vmupdate && echo "$VMU_BOOT_ID" > /var/lib/vmupdate/e2e-persist-probe
  kill $(cat /run/libvirtd.pid) 2>/dev/null
  sync
  run umount /mnt/pmem || fail prekexec "umount /mnt/pmem: $(fuser -m /mnt/pmem 2>&1)"
  ok prekexec "sha256=$(cat /shared/blob.sha256)"
  /run/vmu/vmu-kexec 2
  fail kexec "vmu-kexec returned"
  ;;
2)
  [ -b /dev/pmem0 ] || fail survived "no /dev/pmem0 after kexec"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail survived "mount -o dax after kexec: $(dmesg | tail -n 3)"
  m=$(grep ' /mnt/pmem ' /proc/mounts)
  case "$m" in *dax*) ;; *) fail survived "no dax option after kexec: $m" ;; esac
  [ -f /mnt/pmem/blob ] || fail survived "no /mnt/pmem/blob: $(ls -la /mnt/pmem)"
  sum=$(sha256sum /mnt/pmem/blob | cut -d' ' -f1)
  want=$(cat /shared/blob.sha256)
  [ "$sum" = "$want" ] || fail survived "sha256 $sum, before kexec $want"
  ok survived "sha256=$sum"
  p=$(cat /var/lib/vmupdate/e2e-persist-probe 2>/dev/null)
  [ -n "$p" ] && [ "$p" != "$VMU_BOOT_ID" ] || fail persist "root overlay probe: '$p' (boot id now $VMU_BOOT_ID)"
  ok persist "written in boot $p"
  run umount /mnt/pmem
  run e2fsck -fn /dev/pmem0 || fail fsck "e2fsck reports problems"
  ok fsck
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
"""

STAGE_NVDIMM = "#!/bin/sh\n# hostvm smoke test, NVDIMM variant\n" + STAGE_COMMON + r"""
echo "stage $VMU_STAGE boot_id=$VMU_BOOT_ID"
case "$VMU_STAGE" in
1)
  run ls /sys/bus/nd/devices
  run ndctl list -RD
  # label-less, the whole region is one raw namespace: no room for another
  run ndctl disable-region all || fail labels "disable-region"
  run ndctl init-labels all || fail labels "init-labels"
  run ndctl enable-region all || fail labels "enable-region"
  run ndctl list -RD
  avail=$(ndctl list -R | sed -n 's/.*"available_size":\([0-9]*\).*/\1/p' | head -n 1)
  [ "${avail:-0}" -gt 0 ] || fail labels "region has no available space after init-labels: $(ndctl list -R)"
  ok labels "available_size=$avail region=$(ndctl list -R | tr -d ' \n')"
  run ndctl create-namespace -m fsdax -s 256M > /tmp/ns.json || fail namespace "create-namespace: $(cat /tmp/ns.json)"
  cat /tmp/ns.json
  [ -b /dev/pmem0 ] || fail namespace "no /dev/pmem0: $(ls /dev | grep -i pmem)"
  grep -q '"blockdev":"pmem0"' /tmp/ns.json || fail namespace "unexpected: $(cat /tmp/ns.json)"
  ok namespace "$(tr -d ' \n' < /tmp/ns.json)"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail fsdax "mkfs.ext4"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail fsdax "mount -o dax: $(dmesg | tail -n 3)"
  m=$(grep ' /mnt/pmem ' /proc/mounts)
  case "$m" in *dax*) ok fsdax "$m" ;; *) fail fsdax "no dax: $m" ;; esac
  run dd if=/dev/urandom of=/mnt/pmem/blob bs=1M count=16 status=none || fail prekexec dd
  sha256sum /mnt/pmem/blob | cut -d' ' -f1 > /shared/blob.sha256
  sync
  run umount /mnt/pmem || fail prekexec "umount"
  ok prekexec "sha256=$(cat /shared/blob.sha256)"
  /run/vmu/vmu-kexec 2
  fail kexec "vmu-kexec returned"
  ;;
2)
  run ndctl list -N
  [ -b /dev/pmem0 ] || fail survived "no /dev/pmem0 after kexec: $(ndctl list -N)"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail survived "mount -o dax after kexec"
  sum=$(sha256sum /mnt/pmem/blob | cut -d' ' -f1)
  [ "$sum" = "$(cat /shared/blob.sha256)" ] || fail survived "sha256 $sum != $(cat /shared/blob.sha256)"
  ok survived "sha256=$sum"
  run umount /mnt/pmem
  ;;
esac
"""


def step(vm, name, timeout, since=0):
    """Wait for `VMU-STEP name ok`; returns (match, seconds since QEMU spawn)."""
    m, t = vm.wait_for(r"VMU-STEP %s ok\b(.*)" % name, timeout, since=since)
    log("step %s: ok at %.2fs:%s" % (name, t, m.group(1)))
    return m, t


def test_memmap(work_root, keep):
    guest = vmtest.find_test_guest()
    wd = os.path.join(work_root, "smoke-memmap-%d" % os.getpid())
    t0 = time.monotonic()
    xml = vmtest.domain_xml(GUEST_NAME, "/shared/guest/counter-guest.elf", memory_mib=128,
                            fill_mib=32, serial_log="/shared/guest/counter.serial",
                            file_backed=True)
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(STAGE_MEMMAP.replace("@GUEST@", GUEST_NAME),
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
    wd = os.path.join(work_root, "smoke-nvdimm-%d" % os.getpid())
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="nvdimm", pmem_size_mib=1024,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(STAGE_NVDIMM)
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
