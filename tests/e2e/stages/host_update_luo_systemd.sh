#!/bin/sh
# Stage of tests/e2e/test_host_update_luo.py --systemd: the LUO path on a host
# whose PID 1 is systemd. The tmpfs comes from /etc/fstab,
# vmupdate-restore.service (as built) restores at boot, host-update ends in
# `systemctl kexec`, and vmupdate-handover.service holds the session through
# the shutdown.
#   1: units, hook, guest B on the tmpfs; host-update (systemctl kexec into stage 2)
#   2: the restore unit succeeded with the RAM from the handover; B continues
# Environment: KERNEL (the LUO kernel, default $B/vmlinuz-luo); domain
# vmu-e2e-luo-b in $VMU_SHARED/guest/b.xml, serial log b.serial beside;
# VMU_INITRD, VMU_BASE_CMDLINE (hostvm.py), and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
KERNEL=${KERNEL:-$B/vmlinuz-luo}
GB=vmu-e2e-luo-b
SER_B=$S/guest/b.serial
FAIL_LOGS="/var/log/vmupdate/hook.log /var/log/libvirt/qemu/$GB.log"
FAIL_UNITS="libvirtd vmupdate-restore vmupdate-handover"
[ "$(cat /proc/1/comm)" = systemd ] || fail systemd "PID 1 is $(cat /proc/1/comm)"
[ -c /dev/liveupdate ] || fail luo "no /dev/liveupdate: $(uname -r) $(cat /proc/cmdline)"
case "$VMU_STAGE" in
1)
  ok systemd "$(systemctl is-system-running) $(uname -r)"
  mkdir -p /srv/vmu-ram
  echo 'vmuram /srv/vmu-ram tmpfs mode=0755,size=1G 0 0' >> /etc/fstab
  systemctl daemon-reload
  run mount /srv/vmu-ram || fail tmpfs "mount (fstab)"
  set_backing_dir /srv/vmu-ram
  install_as_package
  run "$B/vmupdate" hook install --hook /usr/sbin/vmupdate-hook || fail hook "hook install"
  run systemctl restart libvirtd.service || fail libvirtd "systemctl restart libvirtd"
  wait_libvirt
  ok libvirtd
  start_guest $GB "$S/guest/b.xml"
  wait_ticks 5 guest-b "$SER_B"
  ok guest-b
  wait_ticks 2 update "$SER_B"
  echo "VMU-HOST-UPDATE luo"
  # The shutdown may end this unit before anything after host-update runs.
  expect_rc 0 update "$S/update.out" "$B/vmupdate" host-update --kernel "$KERNEL" \
      --initrd "$VMU_INITRD" --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes
  sleep 900
  fail update "still up 900 s after systemctl kexec"
  ;;
2)
  echo "VMU-STAGE2 up"
  grep -q ' /srv/vmu-ram tmpfs' /proc/mounts || fail restore "tmpfs not mounted from fstab"
  systemctl show -p ActiveState -p Result vmupdate-restore.service > "$S/unit.out"
  if ! grep -qx ActiveState=active "$S/unit.out" || ! grep -qx Result=success "$S/unit.out"; then
    fail restore "vmupdate-restore.service: $(tr '\n' ' ' < "$S/unit.out")"
  fi
  journalctl -b --no-pager -o cat -u vmupdate-restore.service > "$S/restore-luo.out" 2>&1
  cat "$S/restore-luo.out"
  grep -q 'RAM handed over by the previous kernel (LUO): 1 file' "$S/restore-luo.out" \
      || fail restore "the RAM did not come from the handover"
  wait_libvirt
  [ "$(V domstate $GB)" = running ] || fail restore "guest $(V domstate $GB)"
  ok restore
  wait_ticks 3 continued "$SER_B"
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
