#!/bin/sh
# Stage of tests/e2e/test_host_update.py --systemd: the host VM boots with
# systemd as PID 1; the pmem is mounted from /etc/fstab, vmupdate-restore.service
# restores the guest at boot, host-update ends with `systemctl kexec` (a clean
# shutdown: a unit's ExecStop leaves a witness).
#   1: units and hook in place (as the package would put them, unless INSTALLED=1),
#      the counter guest, host-update (systemctl kexec into stage 2)
#      with AppArmor confining libvirt, aa_scope (aa_scope.sh) before host-update:
#      the restore socket rule is per domain
#   2: the restore unit succeeded, the guest runs and continues, the witness
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml); INSTALLED=1
# when the root has the vmupdate package installed (hook link, enabled restore
# unit, AppArmor rule all from the package; binaries in /usr/bin), else the build
# tree's files in $B are put in place here; VMU_KERNEL, VMU_INITRD,
# VMU_BASE_CMDLINE (hostvm.py), and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=aa_scope.sh
. "$(dirname "$0")/aa_scope.sh"
: "${GUEST:?}"
INSTALLED=${INSTALLED:-0}
[ "$INSTALLED" = 1 ] && B=/usr/bin
FAIL_LOGS="/var/log/vmupdate/hook.log /var/log/libvirt/qemu/$GUEST.log"
FAIL_UNITS="libvirtd vmupdate-restore"
# "apparmor=yes|no qemu=LABEL": whether libvirt confines QEMU (AppArmor on, with
# libvirtd's profile loaded, as on a stock Debian host) and the guest QEMU's label.
confinement() {
  aa=no
  if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] &&
     grep -q 'libvirtd' /sys/kernel/security/apparmor/profiles 2>/dev/null; then aa=yes; fi
  pid=$(cat "/run/libvirt/qemu/$GUEST.pid" 2>/dev/null)
  echo "apparmor=$aa qemu=$(tr -d '\0' < "/proc/$pid/attr/current" 2>/dev/null | tr ' ' '_')"
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
  set_backing_dir /mnt/pmem/ram
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
    # shellcheck disable=SC2016 # ${Version} is dpkg-query's
    ok package "vmupdate $(dpkg-query -W -f='${Version}' vmupdate), $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"'), kernel $(uname -r), $(libvirtd --version), $(qemu-system-x86_64 --version | head -n 1)"
  else
    install_as_package
    case "$(confinement)" in
    apparmor=yes*)
      "$B/vmupdate" hook install --hook "$B/vmupdate-hook" > "$S/aa-refused.out" 2>&1
      rc=$?; cat "$S/aa-refused.out"
      [ $rc = 2 ] || fail hook "a hook libvirtd may not run was installed (exit $rc)"
      grep -q 'AppArmor confines libvirtd' "$S/aa-refused.out" || fail hook "refusal without reason"
      ok aa-refused ;;
    esac
    run "$B/vmupdate" hook install --hook /usr/sbin/vmupdate-hook || fail hook "hook install"
  fi
  # memory_backing_dir changed: libvirtd reads qemu.conf at start
  run systemctl restart libvirtd.service || fail libvirtd "systemctl restart libvirtd"
  wait_libvirt
  ok libvirtd "$(systemctl is-active libvirtd.service virtlogd.service)"
  start_guest "$GUEST"
  wait_ticks 3 guest
  ok guest "$(confinement)"
  case "$(confinement)" in apparmor=yes*) aa_scope ;; esac
  wait_ticks 2 update
  echo "VMU-HOST-UPDATE start"
  expect_rc 0 update "$S/update.out" "$B/vmupdate" host-update --kernel "$VMU_KERNEL" \
      --initrd "$VMU_INITRD" --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes
  grep -q 'kexec now (systemctl kexec)' "$S/update.out" || fail update "not by systemctl kexec"
  ok update
  # systemd stops this unit on its way into the new kernel.
  sleep 900
  fail update "still up 900 s after systemctl kexec"
  ;;
2)
  echo "VMU-STAGE2 up"
  grep -q ' /mnt/pmem .*dax' /proc/mounts || fail restore "pmem not mounted from fstab at boot"
  systemctl show -p ActiveState -p Result -p ExecMainStatus vmupdate-restore.service > "$S/unit.out"
  cat "$S/unit.out"
  if ! grep -qx ActiveState=active "$S/unit.out" || ! grep -qx Result=success "$S/unit.out"; then
    fail restore "vmupdate-restore.service: $(tr '\n' ' ' < "$S/unit.out")"
  fi
  journalctl -b --no-pager -o cat -u vmupdate-restore.service > "$S/restore.out" 2>&1
  cat "$S/restore.out"
  wait_libvirt
  [ "$(V domstate "$GUEST")" = running ] || fail restore "guest $(V domstate "$GUEST")"
  ok restore "$(confinement)"
  grep -q '^stopped ' "$S/shutdown-witness" 2>/dev/null \
      || fail shutdown "no clean shutdown: the witness unit was never stopped"
  ok shutdown
  wait_ticks 3 continued
  "$B/vmupdate" status
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
