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
  3. the tmpfs is empty and new; `vmupdate restore --all` writes the RAM back
     from the LUO session and restores B.
Asserted: three host boot ids, each guest continued (same guest boot id, ticks
go on, memory checksum unchanged), and the RAM came from the handover. The
RESULT line gives both guest pauses.

Skipped when the LUO kernel has not been built (it takes 20-30 min on two
cores; `scripts/build-luo-kernel` caches it). Exit 0 pass, 1 fail, 77 skipped."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402

log = hostvm.log
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

STAGE = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() {
  for f in /var/log/vmupdate/hook.log /var/log/libvirt/qemu/vmu-e2e-luo-b.log; do
    [ -f $f ] && { echo "--- $f"; tail -n 20 $f; }
  done
  echo "VMU-STEP $1 FAIL $2"; exit 1
}
run() { echo "+ $*" >&2; "$@"; }
B=/shared/bin
KERNEL=$B/vmlinuz-luo
V="virsh -c qemu:///system"
ticks() { n=$(grep -c '^VMUGUEST tick=' /shared/guest/$1.serial 2>/dev/null); echo "${n:-0}"; }
wait_ticks() {  # GUEST N STEP: wait until N more tick lines appear
  want=$(( $(ticks $1) + $2 )); i=0
  until [ "$(ticks $1)" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$3" "no tick: $(tail -n 3 /shared/guest/$1.serial)"; sleep 0.1
  done
}
start_libvirt() {
  pgrep -x virtlogd > /dev/null || virtlogd -d || fail libvirtd "virtlogd -d"
  setsid tini -s -- libvirtd > /shared/libvirtd-$VMU_STAGE.log 2>&1 < /dev/null &
  i=0
  until $V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
  done
}
backing() {
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo "memory_backing_dir = \"$1\"" >> /etc/libvirt/qemu.conf
}
mkdir -p /mnt/pmem /srv/vmu-ram
[ -c /dev/liveupdate ] || fail luo "no /dev/liveupdate: $(uname -r) $(cat /proc/cmdline)"
case "$VMU_STAGE" in
1)
  ok luo "$(uname -r)"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
  run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax"
  mkdir -p /mnt/pmem/ram
  backing /mnt/pmem/ram
  run $B/vmupdate hook install --hook $B/vmupdate-hook || fail hook "hook install"
  start_libvirt
  run $V define /shared/guest/a.xml || fail guest define
  run $B/vmupdate prepare vmu-e2e-luo-a || fail guest prepare
  run $V start vmu-e2e-luo-a || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/vmu-e2e-luo-a.log)"
  wait_ticks a 5 guest-a
  ok guest-a
  echo "VMU-HOST-UPDATE pmem"
  $B/vmupdate host-update --kernel $KERNEL --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes 2>&1
  fail update-pmem "host-update returned: exit $?"
  ;;
2)
  run mount -o dax /dev/pmem0 /mnt/pmem || fail restore-pmem "mount -o dax after kexec"
  start_libvirt
  $B/vmupdate restore --all --verbose > /shared/restore-pmem.out 2>&1
  rc=$?
  cat /shared/restore-pmem.out
  [ $rc = 0 ] || fail restore-pmem "exit $rc"
  wait_ticks a 3 restore-pmem
  ok restore-pmem
  run $V destroy vmu-e2e-luo-a
  run $V undefine vmu-e2e-luo-a

  # memory_backing_dir on tmpfs: only a LUO handover keeps it across a kexec
  run mount -t tmpfs -o mode=0755,size=1G vmuram /srv/vmu-ram || fail tmpfs mount
  backing /srv/vmu-ram
  pkill -x libvirtd; i=0
  while pgrep -x libvirtd > /dev/null; do i=$((i+1)); [ $i -lt 300 ] || fail libvirtd "no exit"; sleep 0.1; done
  start_libvirt
  run $V define /shared/guest/b.xml || fail guest define
  run $B/vmupdate prepare vmu-e2e-luo-b || fail guest prepare
  run $V start vmu-e2e-luo-b || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/vmu-e2e-luo-b.log)"
  wait_ticks b 5 guest-b
  grep -q '/srv/vmu-ram tmpfs' /proc/mounts || fail guest-b "tmpfs gone"
  ok guest-b "$(ls -l /srv/vmu-ram/*/ 2>&1 | tr '\n' ' ')"

  noluo=$(echo "$VMU_BASE_CMDLINE" | sed 's/liveupdate=on//g')
  $B/vmupdate host-update --kernel $KERNEL --initrd "$VMU_INITRD" --append "$noluo vmu_stage=3" --yes \
      > /shared/refused.out 2>&1
  rc=$?
  cat /shared/refused.out
  [ $rc = 2 ] || fail refused "exit $rc"
  grep -q 'new kernel command line lacks liveupdate=on' /shared/refused.out || fail refused "no reason given"
  [ "$($V domstate vmu-e2e-luo-b)" = running ] || fail refused "guest not running after the refusal"
  wait_ticks b 1 refused
  ok refused

  $B/vmupdate host-update --kernel $KERNEL --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=3" --dry-run > /shared/dryrun.out 2>&1 || fail dryrun "$(cat /shared/dryrun.out)"
  cat /shared/dryrun.out
  grep -q 'handed over by LUO' /shared/dryrun.out || fail dryrun "the plan does not name the handover"
  ok dryrun

  if [ "@POINTS@" = 1 ]; then
    # Interrupted once the RAM is in the LUO session: taken back, restored.
    VMUPDATE_TEST_POINT=host-update:handed-over $B/vmupdate host-update --kernel $KERNEL \
        --initrd "$VMU_INITRD" --append "$VMU_BASE_CMDLINE vmu_stage=3" --yes > /shared/takeback.out 2>&1 &
    pid=$!; i=0
    until [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" = T ]; do
      kill -0 $pid 2>/dev/null || { wait $pid; fail takeback "ended (exit $?) before the point: $(tail -n 5 /shared/takeback.out)"; }
      i=$((i+1)); [ $i -lt 3000 ] || fail takeback "point not reached in 300 s"; sleep 0.1
    done
    # libvirt keeps RAM in <memory_backing_dir>/libvirt/qemu, vmupdate its links beside
    held=$(ls -A /srv/vmu-ram/libvirt/qemu/vmupdate/*/ 2>&1)
    [ -z "$held" ] || { kill -9 $pid; fail takeback "RAM files still named while handed over: $held"; }
    grep -q '"token"' /var/lib/vmupdate/handover.json || { kill -9 $pid; fail takeback "no handover record"; }
    kill -INT $pid; kill -CONT $pid; wait $pid; rc=$?
    cat /shared/takeback.out
    [ $rc = 2 ] || fail takeback "exit $rc"
    [ "$($V domstate vmu-e2e-luo-b)" = running ] || fail takeback "guest $($V domstate vmu-e2e-luo-b)"
    [ ! -e /var/lib/vmupdate/handover.json ] || fail takeback "handover record left behind"
    [ "$(cat /sys/kernel/kexec_loaded)" = 0 ] || fail takeback "the kernel stayed loaded"
    wait_ticks b 3 takeback
    ok takeback "$(ls -l /srv/vmu-ram/libvirt/qemu/vmupdate/*/ | tr '\n' ' ')"
  fi

  wait_ticks b 2 update-luo
  echo "VMU-HOST-UPDATE luo"
  $B/vmupdate host-update --kernel $KERNEL --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=3" --yes 2>&1
  fail update-luo "host-update returned: exit $?"
  ;;
3)
  run mount -t tmpfs -o mode=0755,size=1G vmuram /srv/vmu-ram || fail tmpfs mount
  [ -z "$(ls -A /srv/vmu-ram)" ] || fail tmpfs "the new tmpfs is not empty"
  ok tmpfs-new
  cat /var/lib/vmupdate/handover.json
  start_libvirt
  $B/vmupdate restore --all --verbose > /shared/restore-luo.out 2>&1
  rc=$?
  cat /shared/restore-luo.out
  [ $rc = 0 ] || fail restore-luo "exit $rc"
  grep -q 'RAM handed over by the previous kernel (LUO): 1 file' /shared/restore-luo.out \
      || fail restore-luo "the RAM did not come from the handover"
  [ ! -e /var/lib/vmupdate/handover.json ] || fail restore-luo "handover record left behind"
  wait_ticks b 3 restore-luo
  ok restore-luo
  $B/vmupdate status
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
"""


# --systemd: the LUO path on a host whose PID 1 is systemd. The tmpfs comes from
# /etc/fstab, vmupdate-restore.service (as built) restores at boot, host-update
# ends in `systemctl kexec`, and vmupdate-handover.service holds the session
# through the shutdown.
STAGE_SYSTEMD = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() {
  for f in /var/log/vmupdate/hook.log /var/log/libvirt/qemu/vmu-e2e-luo-b.log; do
    [ -f $f ] && { echo "--- $f"; tail -n 20 $f; }
  done
  echo "--- journal"; journalctl -b --no-pager -n 40 -u libvirtd -u vmupdate-restore -u vmupdate-handover
  echo "VMU-STEP $1 FAIL $2"; exit 1
}
run() { echo "+ $*" >&2; "$@"; }
B=/shared/bin
KERNEL=$B/vmlinuz-luo
V="virsh -c qemu:///system"
ticks() { n=$(grep -c '^VMUGUEST tick=' /shared/guest/$1.serial 2>/dev/null); echo "${n:-0}"; }
wait_ticks() {
  want=$(( $(ticks $1) + $2 )); i=0
  until [ "$(ticks $1)" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$3" "no tick: $(tail -n 3 /shared/guest/$1.serial)"; sleep 0.1
  done
}
wait_libvirt() {
  i=0
  until $V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
  done
}
[ "$(cat /proc/1/comm)" = systemd ] || fail systemd "PID 1 is $(cat /proc/1/comm)"
[ -c /dev/liveupdate ] || fail luo "no /dev/liveupdate: $(uname -r) $(cat /proc/cmdline)"
case "$VMU_STAGE" in
1)
  ok systemd "$(systemctl is-system-running) $(uname -r)"
  mkdir -p /srv/vmu-ram
  echo 'vmuram /srv/vmu-ram tmpfs mode=0755,size=1G 0 0' >> /etc/fstab
  systemctl daemon-reload
  run mount /srv/vmu-ram || fail tmpfs "mount (fstab)"
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo 'memory_backing_dir = "/srv/vmu-ram"' >> /etc/libvirt/qemu.conf
  sed "s|^ExecStart=.*|ExecStart=$B/vmupdate restore --all --verbose|" $B/vmupdate-restore.service \
      > /etc/systemd/system/vmupdate-restore.service
  systemctl daemon-reload
  run systemctl enable vmupdate-restore.service || fail unit "enable vmupdate-restore.service"
  install -m 0755 $B/vmupdate-hook $B/vmupdate-restore-helper /usr/sbin/ || fail hook "copy to /usr/sbin"
  mkdir -p /etc/apparmor.d/abstractions/libvirt-qemu.d
  install -m 0644 $B/apparmor-vmupdate /etc/apparmor.d/abstractions/libvirt-qemu.d/vmupdate
  run $B/vmupdate hook install --hook /usr/sbin/vmupdate-hook || fail hook "hook install"
  run systemctl restart libvirtd.service || fail libvirtd "systemctl restart libvirtd"
  wait_libvirt
  ok libvirtd
  run $V define /shared/guest/b.xml || fail guest define
  run $B/vmupdate prepare vmu-e2e-luo-b || fail guest prepare
  run $V start vmu-e2e-luo-b || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/vmu-e2e-luo-b.log)"
  wait_ticks b 5 guest-b
  ok guest-b
  wait_ticks b 2 update
  echo "VMU-HOST-UPDATE luo"
  $B/vmupdate host-update --kernel $KERNEL --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes > /shared/update.out 2>&1
  rc=$?
  # The shutdown may end this unit before anything below runs.
  cat /shared/update.out
  [ $rc = 0 ] || fail update "exit $rc"
  sleep 900
  fail update "still up 900 s after systemctl kexec"
  ;;
2)
  echo "VMU-STAGE2 up"
  grep -q ' /srv/vmu-ram tmpfs' /proc/mounts || fail restore "tmpfs not mounted from fstab"
  systemctl show -p ActiveState -p Result vmupdate-restore.service > /shared/unit.out
  grep -qx ActiveState=active /shared/unit.out && grep -qx Result=success /shared/unit.out \
      || fail restore "vmupdate-restore.service: $(tr '\n' ' ' < /shared/unit.out)"
  journalctl -b --no-pager -o cat -u vmupdate-restore.service > /shared/restore-luo.out 2>&1
  cat /shared/restore-luo.out
  grep -q 'RAM handed over by the previous kernel (LUO): 1 file' /shared/restore-luo.out \
      || fail restore "the RAM did not come from the handover"
  wait_libvirt
  [ "$($V domstate vmu-e2e-luo-b)" = running ] || fail restore "guest $($V domstate vmu-e2e-luo-b)"
  ok restore
  wait_ticks b 3 continued
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
"""


def step(vm, name, timeout, since=0):
    m, t = vm.wait_for(r"VMU-STEP %s ok\b(.*)" % name, timeout, since=since)
    log("step %s ok at %.1fs" % (name, t))
    return m, t


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
    files = {"guest/counter-guest.elf": "@" + guest, "bin/vmupdate": "@" + cli,
             "bin/vmupdate-hook": "@" + hook, "bin/vmupdate-restore-helper": "@" + helper,
             "bin/vmlinuz-luo": "@" + kernel}
    for g in ("a", "b"):
        files["guest/%s.xml" % g] = vmtest.domain_xml(
            "vmu-e2e-luo-" + g, "/shared/guest/counter-guest.elf", memory_mib=128, fill_mib=64,
            serial_log="/shared/guest/%s.serial" % g)
    return files


def pause_of(text):
    m = re.search(r"guest paused ([0-9.]+) s", text)
    return float(m.group(1)) if m else None


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
    wd = os.path.join(work_root, "host-update-luo-systemd-%d" % os.getpid())
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem=None, persist_root=True, kernel=kernel, init="systemd",
                       extra_append="kho=on liveupdate=on",
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(STAGE_SYSTEMD, files=files)
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
        out = open(os.path.join(vm.shared, "restore-luo.out")).read()
        vm.wait_for(r"^VMU-STAGE-END stage=2 rc=0", 120)
        assert vm.wait_exit(180) == 0
        ids = vm.boot_ids()
        assert [s for s, _, _ in ids] == ["1", "2"] and ids[0][1] != ids[1][1], \
            "the host VM did not reboot into stage 2 with a new boot id: %s" % ids
        handed = re.search(r"RAM handed over .*? in ([0-9.]+) s", out)
        log("RESULT host-update luo (systemd): save %s s, systemctl kexec with "
            "vmupdate-handover.service holding the RAM; guest pause %s s (RAM written back in "
            "%s s); whole test %.0f s"
            % (m.group(2), pause_of(out), handed.group(1) if handed else "?",
               time.monotonic() - t0))
        log("host-update:\n" + open(os.path.join(vm.shared, "update.out")).read())
        log("vmupdate-restore.service:\n" + out)
    shutil.rmtree(wd, ignore_errors=True)


def main():
    hostvm.skip_unless_ready()
    kernel = luo_kernel()
    guest = vmtest.find_test_guest()
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    helper = os.path.join(os.path.dirname(hook), "vmupdate-restore-helper")
    for f in (cli, hook, helper):
        if not os.access(f, os.X_OK):
            vmtest.skip("%s not built" % f)
    work_root = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
    if "--systemd" in sys.argv[1:]:
        return main_systemd(kernel, files_for(guest, cli, hook, helper, kernel), work_root)
    wd = os.path.join(work_root, "host-update-luo-%d" % os.getpid())
    t0 = time.monotonic()
    files = files_for(guest, cli, hook, helper, kernel)
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True, kernel=kernel,
                       extra_append="kho=on liveupdate=on",
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        points = os.environ.get("VMUPDATE_TEST_POINTS", "").upper() in ("ON", "1", "TRUE", "YES")
        vm.start(STAGE.replace("@POINTS@", "1" if points else "0"), files=files)
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
        step(vm, "refused", 120)
        log("host-update without liveupdate=on on the new command line:\n" +
            open(os.path.join(vm.shared, "refused.out")).read())
        step(vm, "dryrun", 120)
        log("host-update --dry-run:\n" + open(os.path.join(vm.shared, "dryrun.out")).read())
        if points:
            m_tb, _ = step(vm, "takeback", 600)
            log("host-update interrupted after the handover (SIGINT); preserved files after "
                "the take-back: %s\n%s" % (m_tb.group(1).strip(),
                                            open(os.path.join(vm.shared, "takeback.out")).read()))
        else:
            log("built without test points: the interrupted handover is not exercised")
        before_b = serial_b.last_tick()
        vm.wait_for(r"^VMU-HOST-UPDATE luo", 120)
        mark = max(i for i, (_, line) in enumerate(vm.lines()) if "VMU-HOST-UPDATE luo" in line)
        m_luo, _ = vm.wait_for(r"saved (\d+) domain\(s\) in ([0-9.]+) s; state synced; kexec now",
                               300, since=mark)
        step(vm, "tmpfs-new", 600)
        step(vm, "restore-luo", 600)
        serial_b.assert_continued(before_b, serial_b.last_tick(), consecutive=False)
        vm.wait_for(r"^VMU-STAGE-END stage=3 rc=0", 120)
        assert vm.wait_exit(120) == 0
        ids = vm.boot_ids()
        assert [s for s, _, _ in ids] == ["1", "2", "3"] and len({i for _, i, _ in ids}) == 3, \
            "the host VM did not boot three times with new boot ids: %s" % ids
        out_pmem = open(os.path.join(vm.shared, "restore-pmem.out")).read()
        out_luo = open(os.path.join(vm.shared, "restore-luo.out")).read()
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
