#!/usr/bin/env python3
"""End-to-end: `vmupdate host-update` in a throwaway host VM (tests/e2e/hostvm.py).

The host VM (QEMU TCG, this machine's kernel and root over 9p, legacy pmem from
memmap=, root overlay on a disk so libvirt's and vmupdate's state persist) runs
its own libvirtd with memory_backing_dir on a DAX mount of the pmem. Inside, the
counter guest (nested TCG) is prepared and started. Then:
  - host-update with a command line that lacks the pmem region: refused (exit 2),
    nothing paused, the guest keeps running;
  - host-update --dry-run: the plan, nothing paused;
  - host-update for real: the guest is saved, the host VM kexecs into the same
    kernel; stage 2 (what vmupdate-restore.service does at boot: libvirtd up,
    `vmupdate restore --all`) restores it.
Asserted from the logs: the host VM really rebooted (new boot id) and the guest
continued (same boot id, counter continues, memory checksum unchanged).

With --systemd the host VM boots with systemd as PID 1 and this machine's
enabled units (libvirtd and virtlogd by socket, libvirt-guests): the pmem is
mounted from /etc/fstab, vmupdate-restore.service (the unit the build made, only
its ExecStart pointed at the binary under test) is enabled, host-update ends
with `systemctl kexec` (a clean shutdown: a unit's ExecStop leaves a witness),
and at boot the unit restores the guest before the stage runs.
With --systemd --root DIR the host VM boots DIR instead (tests/package/test-deb
--host-update: a fresh Debian 13 root with the vmupdate .deb, its own kernel,
systemd, AppArmor): the hook link, the enabled restore unit and the AppArmor
rule are the package's, and host-update runs the installed /usr/bin/vmupdate.
Exit 0 pass, 1 fail, 77 skipped."""
import hashlib
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402

log = hostvm.log
GUEST = "vmu-e2e-update"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

STAGE = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() { echo "VMU-STEP $1 FAIL $2"; exit 1; }
run() { echo "+ $*" >&2; "$@"; }
B=/shared/bin
GUEST=@GUEST@
V="virsh -c qemu:///system"
SER=/shared/guest/counter.serial
ticks() { n=$(grep -c '^VMUGUEST tick=' $SER 2>/dev/null); echo "${n:-0}"; }
wait_ticks() {  # wait until $1 more tick lines appear
  want=$(( $(ticks) + $1 )); i=0
  until [ "$(ticks)" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$2" "no tick: $(tail -n 3 $SER)"; sleep 0.1
  done
}
start_libvirt() {
  virtlogd -d || fail libvirtd "virtlogd -d"
  setsid tini -s -- libvirtd > /shared/libvirtd-$VMU_STAGE.log 2>&1 < /dev/null &
  i=0
  until $V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
  done
}
mkdir -p /mnt/pmem
case "$VMU_STAGE" in
1)
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
  run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax"
  grep -q ' /mnt/pmem .*dax' /proc/mounts || fail pmem "no dax: $(grep pmem /proc/mounts)"
  mkdir -p /mnt/pmem/ram
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo 'memory_backing_dir = "/mnt/pmem/ram"' >> /etc/libvirt/qemu.conf
  run $B/vmupdate hook install --hook $B/vmupdate-hook || fail hook "hook install"
  start_libvirt
  ok libvirtd
  run $V define /shared/guest/domain.xml || fail guest define
  run $B/vmupdate prepare $GUEST || fail guest prepare
  run $V start $GUEST || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/$GUEST.log)"
  wait_ticks 3 guest
  ok guest

  nopmem=$(echo "$VMU_BASE_CMDLINE" | sed 's/memmap=[^ ]*//g')
  $B/vmupdate host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" --append "$nopmem vmu_stage=2" --yes \
      > /shared/refused.out 2>&1
  rc=$?
  cat /shared/refused.out
  [ $rc = 2 ] || fail refused "exit $rc"
  grep -q 'lacks memmap=' /shared/refused.out || fail refused "no memmap offender named"
  [ "$($V domstate $GUEST)" = running ] || fail refused "guest not running after the refusal"
  wait_ticks 1 refused
  ok refused

  $B/vmupdate host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --dry-run > /shared/dryrun.out 2>&1 || fail dryrun "$(cat /shared/dryrun.out)"
  cat /shared/dryrun.out
  [ "$($V domstate $GUEST)" = running ] || fail dryrun "guest not running after the dry run"
  ok dryrun

  wait_ticks 2 update
  echo "VMU-HOST-UPDATE start"
  $B/vmupdate host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes 2>&1
  fail update "host-update returned: exit $?"
  ;;
2)
  echo "VMU-STAGE2 up"
  run mount -o dax /dev/pmem0 /mnt/pmem || fail restore "mount -o dax after kexec"
  start_libvirt
  ok libvirtd2
  # What vmupdate-restore.service does at boot.
  $B/vmupdate restore --all --verbose > /shared/restore.out 2>&1
  rc=$?
  cat /shared/restore.out
  [ $rc = 0 ] || fail restore "exit $rc"
  ok restore
  wait_ticks 3 continued
  $B/vmupdate status
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
"""


STAGE_SYSTEMD = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() {
  for f in /var/log/vmupdate/hook.log /var/log/libvirt/qemu/@GUEST@.log; do
    echo "--- $f"; tail -n 25 $f
  done
  echo "--- journal"; journalctl -b --no-pager -n 40 -u libvirtd -u vmupdate-restore
  echo "VMU-STEP $1 FAIL $2"; exit 1
}
run() { echo "+ $*" >&2; "$@"; }
# INSTALLED=1: the root has the vmupdate package installed (hook link, enabled
# restore unit, AppArmor rule all from the package); else the build tree's
# files are put in place here as the package would.
INSTALLED=@INSTALLED@
B=/shared/bin
[ "$INSTALLED" = 1 ] && B=/usr/bin
GUEST=@GUEST@
V="virsh -c qemu:///system"
SER=/shared/guest/counter.serial
ticks() { n=$(grep -c '^VMUGUEST tick=' $SER 2>/dev/null); echo "${n:-0}"; }
wait_ticks() {
  want=$(( $(ticks) + $1 )); i=0
  until [ "$(ticks)" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$2" "no tick: $(tail -n 3 $SER)"; sleep 0.1
  done
}
wait_libvirt() {
  i=0
  until $V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
  done
}
# "apparmor=yes|no qemu=LABEL": whether libvirt confines QEMU (AppArmor on, with
# libvirtd's profile loaded, as on a stock Debian host) and the guest QEMU's label.
confinement() {
  aa=no
  if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] &&
     grep -q 'libvirtd' /sys/kernel/security/apparmor/profiles 2>/dev/null; then aa=yes; fi
  pid=$(cat /run/libvirt/qemu/$GUEST.pid 2>/dev/null)
  echo "apparmor=$aa qemu=$(tr -d '\0' < /proc/$pid/attr/current 2>/dev/null | tr ' ' '_')"
}
[ "$(cat /proc/1/comm)" = systemd ] || fail systemd "PID 1 is $(cat /proc/1/comm)"
case "$VMU_STAGE" in
1)
  ok systemd "$(systemctl is-system-running)"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
  mkdir -p /mnt/pmem
  echo '/dev/pmem0 /mnt/pmem ext4 dax 0 0' >> /etc/fstab
  systemctl daemon-reload
  run mount /mnt/pmem || fail pmem "mount (fstab)"
  grep -q ' /mnt/pmem .*dax' /proc/mounts || fail pmem "no dax: $(grep pmem /proc/mounts)"
  mkdir -p /mnt/pmem/ram
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo 'memory_backing_dir = "/mnt/pmem/ram"' >> /etc/libvirt/qemu.conf
  cat > /etc/systemd/system/vmu-shutdown-witness.service <<'UNIT'
[Unit]
Description=records that a clean shutdown stopped services
RequiresMountsFor=/shared
After=libvirtd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh -c 'echo "stopped $(cat /proc/sys/kernel/random/boot_id)" >> /shared/shutdown-witness'
UNIT
  systemctl daemon-reload
  run systemctl start vmu-shutdown-witness.service || fail unit "start the witness"
  if [ "$INSTALLED" = 1 ]; then
    # What the package set up when it was installed, before this boot.
    link=$(readlink /etc/libvirt/hooks/qemu.d/50-vmupdate)
    [ "$link" = /usr/sbin/vmupdate-hook ] || fail package "hook link -> '$link'"
    [ "$(systemctl is-enabled vmupdate-restore.service)" = enabled ] || fail package "restore unit not enabled"
    [ -f /etc/apparmor.d/abstractions/libvirt-qemu.d/vmupdate ] || fail package "no AppArmor rule"
    ok package "vmupdate $(dpkg-query -W -f='${Version}' vmupdate), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(libvirtd --version), $(qemu-system-x86_64 --version | head -n 1)"
  else
  sed "s|^ExecStart=.*|ExecStart=$B/vmupdate restore --all --verbose|" $B/vmupdate-restore.service \
      > /etc/systemd/system/vmupdate-restore.service
  systemctl daemon-reload
  run systemctl enable vmupdate-restore.service || fail unit "enable vmupdate-restore.service"
  # As the package installs them: where libvirtd's AppArmor profile lets it run
  # them, and the rule a confined QEMU needs for vmupdate's restore.
  install -m 0755 $B/vmupdate-hook $B/vmupdate-restore-helper /usr/sbin/ || fail hook "copy to /usr/sbin"
  mkdir -p /etc/apparmor.d/abstractions/libvirt-qemu.d
  install -m 0644 $B/apparmor-vmupdate /etc/apparmor.d/abstractions/libvirt-qemu.d/vmupdate
  case "$(confinement)" in
  apparmor=yes*)
    $B/vmupdate hook install --hook $B/vmupdate-hook > /shared/aa-refused.out 2>&1
    rc=$?; cat /shared/aa-refused.out
    [ $rc = 2 ] || fail hook "a hook libvirtd may not run was installed (exit $rc)"
    grep -q 'AppArmor confines libvirtd' /shared/aa-refused.out || fail hook "refusal without reason"
    ok aa-refused ;;
  esac
  run $B/vmupdate hook install --hook /usr/sbin/vmupdate-hook || fail hook "hook install"
  fi
  # memory_backing_dir changed: libvirtd reads qemu.conf at start
  run systemctl restart libvirtd.service || fail libvirtd "systemctl restart libvirtd"
  wait_libvirt
  ok libvirtd "$(systemctl is-active libvirtd.service virtlogd.service)"
  run $V define /shared/guest/domain.xml || fail guest define
  run $B/vmupdate prepare $GUEST || fail guest prepare
  run $V start $GUEST || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/$GUEST.log)"
  wait_ticks 3 guest
  ok guest "$(confinement)"
  wait_ticks 2 update
  echo "VMU-HOST-UPDATE start"
  $B/vmupdate host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes > /shared/update.out 2>&1
  rc=$?
  cat /shared/update.out
  [ $rc = 0 ] || fail update "exit $rc"
  grep -q 'kexec now (systemctl kexec)' /shared/update.out || fail update "not by systemctl kexec"
  ok update
  # systemd stops this unit on its way into the new kernel.
  sleep 900
  fail update "still up 900 s after systemctl kexec"
  ;;
2)
  echo "VMU-STAGE2 up"
  grep -q ' /mnt/pmem .*dax' /proc/mounts || fail restore "pmem not mounted from fstab at boot"
  systemctl show -p ActiveState -p Result -p ExecMainStatus vmupdate-restore.service > /shared/unit.out
  cat /shared/unit.out
  grep -qx ActiveState=active /shared/unit.out && grep -qx Result=success /shared/unit.out \
      || fail restore "vmupdate-restore.service: $(tr '\n' ' ' < /shared/unit.out)"
  journalctl -b --no-pager -o cat -u vmupdate-restore.service > /shared/restore.out 2>&1
  cat /shared/restore.out
  wait_libvirt
  [ "$($V domstate $GUEST)" = running ] || fail restore "guest $($V domstate $GUEST)"
  ok restore "$(confinement)"
  grep -q '^stopped ' /shared/shutdown-witness 2>/dev/null \
      || fail shutdown "no clean shutdown: the witness unit was never stopped"
  ok shutdown
  wait_ticks 3 continued
  $B/vmupdate status
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
"""


def step(vm, name, timeout, since=0):
    m, t = vm.wait_for(r"VMU-STEP %s ok\b(.*)" % name, timeout, since=since)
    log("step %s ok at %.1fs" % (name, t))
    return m, t


def check_confinement(when, text, root="/"):
    """With AppArmor installed in the VM's root, the host VM (Debian's kernel,
    AppArmor on by default) loads libvirt's profiles at boot: the guest's QEMU
    must run confined by its libvirt-UUID profile, in enforce mode, also the
    restored one."""
    log("AppArmor %s: %s" % (when, text.strip()))
    if not os.path.exists(os.path.join(root, "sbin/apparmor_parser")):
        return
    assert "apparmor=yes" in text, "AppArmor is not confining libvirt in the host VM: " + text
    assert re.search(r"qemu=libvirt-[0-9a-f-]{36}_\(enforce\)", text), \
        "the guest's QEMU %s is not confined by libvirt's profile: %s" % (when, text)


def main_systemd(cli, hook, helper, guest, work_root, root="/"):
    """root "/": this machine's system with the build tree's files; another root
    (tests/package/test-deb --host-update: Debian 13 with the .deb installed)
    is booted with its own kernel and its installed vmupdate."""
    installed = root != "/"
    unit = os.environ.get("VMUPDATE_RESTORE_UNIT",
                          os.path.join(REPO, "build", "vmupdate-restore.service"))
    if not os.path.exists(os.path.join(root, "lib/systemd/systemd")):
        vmtest.skip("systemd is not installed in %s (the host VM boots it)" % root)
    if installed:
        for f in ("usr/bin/vmupdate", "usr/sbin/vmupdate-hook", "usr/sbin/kexec"):
            if not os.path.exists(os.path.join(root, f)):
                vmtest.skip("%s missing in %s" % (f, root))
    elif not os.path.exists(unit):
        vmtest.skip("%s not built" % unit)
    wd = os.path.join(work_root, "host-update-systemd-%d" % os.getpid())
    t0 = time.monotonic()
    xml = vmtest.domain_xml(GUEST, "/shared/guest/counter-guest.elf", memory_mib=128, fill_mib=64,
                            serial_log="/shared/guest/counter.serial")
    files = {"guest/counter-guest.elf": "@" + guest, "guest/domain.xml": xml}
    if not installed:
        files.update({"bin/vmupdate": "@" + cli, "bin/vmupdate-hook": "@" + hook,
                      "bin/vmupdate-restore-helper": "@" + helper,
                      "bin/vmupdate-restore.service": "@" + unit,
                      "bin/apparmor-vmupdate":
                          "@" + os.path.join(REPO, "packaging/apparmor/libvirt-qemu.d-vmupdate")})
    # libvirt's capabilities cache is per QEMU binary: one per root
    cache = os.path.join(work_root, "cache" if not installed else
                         "cache-" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8])
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True, init="systemd",
                       cache_dir=cache, root=root) as vm:
        vm.start(STAGE_SYSTEMD.replace("@GUEST@", GUEST).replace("@INSTALLED@", str(int(installed))),
                 files=files)
        _, t_sd = step(vm, "systemd", 600)
        if installed:
            m_pkg, _ = step(vm, "package", 120)
            log("installed: " + m_pkg.group(1).strip())
        elif os.path.exists("/sbin/apparmor_parser"):
            # hook install refused the build tree's hook: libvirtd could not run it.
            step(vm, "aa-refused", 600)
        step(vm, "libvirtd", 300)
        m_guest, _ = step(vm, "guest", 300)
        check_confinement("before the update", m_guest.group(1), root)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        before = serial.last_tick()
        _, t_update = vm.wait_for(r"^VMU-HOST-UPDATE start", 120)
        # From the share, not the console: systemctl kexec may stop the stage
        # before its `cat` of the output reaches the serial line.
        m, t_kexec = vm.wait_file("update.out", r"saved (\d+) domain\(s\) in ([0-9.]+) s; "
                                  r"state synced; kexec now \(systemctl kexec\)", 300)
        assert m.group(1) == "1", m.group(0)
        _, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 600)
        m_restored, t_restored = step(vm, "restore", 300)
        check_confinement("after the restore", m_restored.group(1), root)
        step(vm, "shutdown", 60)
        step(vm, "continued", 180)
        serial.assert_continued(before, serial.last_tick(), consecutive=False)
        restore_out = open(os.path.join(vm.shared, "restore.out")).read()
        pause = re.search(r"guest paused ([0-9.]+) s", restore_out)
        vm.wait_for(r"^VMU-STAGE-END stage=2 rc=0", 120)
        assert vm.wait_exit(180) == 0
        ids = vm.boot_ids()
        assert [s for s, _, _ in ids] == ["1", "2"] and ids[0][1] != ids[1][1], \
            "the host VM did not reboot into stage 2 with a new boot id: %s" % ids
        log("RESULT host-update (systemd%s): boot to stage 1 %.0f s; save %s s; systemctl kexec "
            "(clean shutdown) + boot + libvirtd + vmupdate-restore.service %.1f s; guest pause "
            "%s s; whole test %.0f s"
            % (", installed package in " + root if installed else "", t_sd, m.group(2),
               t_restored - t_kexec, pause.group(1) if pause else "?", time.monotonic() - t0))
        log("vmupdate-restore.service output:\n" + restore_out)
    shutil.rmtree(wd, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if "--root" in args:
        # Debian 13 + the installed package: its own kernel, tools and vmupdate
        root = args[args.index("--root") + 1]
        if os.geteuid() != 0:
            vmtest.skip("the host VM tests need root")
        guest = vmtest.find_test_guest()
        work_root = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
        return main_systemd(None, None, None, guest, work_root, root=root)
    hostvm.skip_unless_ready()
    guest = vmtest.find_test_guest()
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    # The hook starts the restore helper from its own directory.
    helper = os.path.join(os.path.dirname(hook), "vmupdate-restore-helper")
    for f in (cli, hook, helper):
        if not os.access(f, os.X_OK):
            vmtest.skip("%s not built" % f)
    work_root = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
    if "--systemd" in sys.argv[1:]:
        return main_systemd(cli, hook, helper, guest, work_root)
    wd = os.path.join(work_root, "host-update-%d" % os.getpid())
    t0 = time.monotonic()
    xml = vmtest.domain_xml(GUEST, "/shared/guest/counter-guest.elf", memory_mib=128, fill_mib=64,
                            serial_log="/shared/guest/counter.serial")
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(STAGE.replace("@GUEST@", GUEST), files={"guest/counter-guest.elf": "@" + guest, "guest/domain.xml": xml,
                               "bin/vmupdate": "@" + cli, "bin/vmupdate-hook": "@" + hook,
                               "bin/vmupdate-restore-helper": "@" + helper})
        step(vm, "libvirtd", 300)
        step(vm, "guest", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        step(vm, "refused", 120)
        log("host-update without the pmem region on the new command line:\n" +
            open(os.path.join(vm.shared, "refused.out")).read())
        step(vm, "dryrun", 120)
        log("host-update --dry-run:\n" + open(os.path.join(vm.shared, "dryrun.out")).read())
        before = serial.last_tick()
        _, t_update = vm.wait_for(r"^VMU-HOST-UPDATE start", 120)
        m, t_kexec = vm.wait_for(r"saved (\d+) domain\(s\) in ([0-9.]+) s; state synced; kexec now", 300)
        save_s = float(m.group(2))
        assert m.group(1) == "1", m.group(0)
        _, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 300)
        _, t_lv2 = step(vm, "libvirtd2", 300)
        _, t_restored = step(vm, "restore", 300)
        step(vm, "continued", 180)
        after = serial.last_tick()
        serial.assert_continued(before, after, consecutive=False)
        restore_out = open(os.path.join(vm.shared, "restore.out")).read()
        pause = re.search(r"guest paused ([0-9.]+) s", restore_out)
        vm.wait_for(r"^VMU-STAGE-END stage=2 rc=0", 120)
        assert vm.wait_exit(120) == 0
        ids = vm.boot_ids()
        assert [s for s, _, _ in ids] == ["1", "2"] and ids[0][1] != ids[1][1], \
            "the host VM did not reboot into stage 2 with a new boot id: %s" % ids
        log("RESULT host-update: save %.2f s (vmupdate), host-update command to kexec %.1f s, "
            "kexec + boot + libvirtd up %.1f s (of which libvirtd start %.1f s), restore %.1f s; "
            "guest pause (libvirt Suspended -> Resumed, across the kexec) %s s; whole test %.0f s"
            % (save_s, t_kexec - t_update, t_lv2 - t_kexec, t_lv2 - t_boot2, t_restored - t_lv2,
               pause.group(1) if pause else "?", time.monotonic() - t0))
        log("restore output:\n" + restore_out)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
