#!/bin/sh
# Stage of tests/e2e/test_host_update_luo.py: a kernel update without pmem, RAM
# on tmpfs handed over by KHO + LUO; three boots of the same (LUO) kernel:
#   1: guest A on a DAX mount of memmap= pmem: host-update (the pmem path), kexec
#   2: restore A, destroy it; memory_backing_dir on tmpfs; guest B; host-update
#      refused (no liveupdate=on), a dry run, with HANDOVER_POINT an interrupted
#      handover taken back, then host-update for real (LUO), kexec
#   3: a new, empty tmpfs; `vmupdate restore --all` fails twice on purpose (the
#      tmpfs too small, then <memory_backing_dir>/vmupdate planted by the QEMU
#      user): exit 1, the RAM kept by a holder; then writes B's RAM back
# Environment: KERNEL (the LUO kernel, default $B/vmlinuz-luo); HANDOVER_POINT,
# when the build has test points: the point after the handover
# (host-update:handed-over); domains vmu-e2e-luo-a and -b in
# $VMU_SHARED/guest/{a,b}.xml, serial logs {a,b}.serial beside; VMU_INITRD,
# VMU_BASE_CMDLINE (hostvm.py), and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
KERNEL=${KERNEL:-$B/vmlinuz-luo}
HANDOVER_POINT=${HANDOVER_POINT:-}
A=vmu-e2e-luo-a
GB=vmu-e2e-luo-b
SER_A=$S/guest/a.serial
SER_B=$S/guest/b.serial
FAIL_LOGS="/var/log/vmupdate/hook.log /var/log/libvirt/qemu/$GB.log"
mkdir -p /mnt/pmem /srv/vmu-ram
[ -c /dev/liveupdate ] || fail luo "no /dev/liveupdate: $(uname -r) $(cat /proc/cmdline)"
case "$VMU_STAGE" in
1)
  ok luo "$(uname -r)"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
  run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax"
  mkdir -p /mnt/pmem/ram
  set_backing_dir /mnt/pmem/ram
  run "$B/vmupdate" hook install --hook "$B/vmupdate-hook" || fail hook "hook install"
  start_libvirt "$S/libvirtd-$VMU_STAGE.log"
  start_guest $A "$S/guest/a.xml"
  wait_ticks 5 guest-a "$SER_A"
  ok guest-a
  echo "VMU-HOST-UPDATE pmem"
  "$B/vmupdate" host-update --kernel "$KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes 2>&1
  fail update-pmem "host-update returned: exit $?"
  ;;
2)
  run mount -o dax /dev/pmem0 /mnt/pmem || fail restore-pmem "mount -o dax after kexec"
  start_libvirt "$S/libvirtd-$VMU_STAGE.log"
  expect_rc 0 restore-pmem "$S/restore-pmem.out" "$B/vmupdate" restore --all --verbose
  wait_ticks 3 restore-pmem "$SER_A"
  ok restore-pmem
  run V destroy $A
  run V undefine $A

  # memory_backing_dir on tmpfs: only a LUO handover keeps it across a kexec
  run mount -t tmpfs -o mode=0755,size=1G vmuram /srv/vmu-ram || fail tmpfs mount
  set_backing_dir /srv/vmu-ram
  pkill -x libvirtd; i=0
  while pgrep -x libvirtd > /dev/null; do i=$((i+1)); [ $i -lt 300 ] || fail libvirtd "no exit"; sleep 0.1; done
  start_libvirt "$S/libvirtd-$VMU_STAGE.log"
  start_guest $GB "$S/guest/b.xml"
  wait_ticks 5 guest-b "$SER_B"
  grep -q '/srv/vmu-ram tmpfs' /proc/mounts || fail guest-b "tmpfs gone"
  # shellcheck disable=SC2012 # a listing for the log
  ok guest-b "$(ls -l /srv/vmu-ram/*/ 2>&1 | tr '\n' ' ')"

  noluo=$(echo "$VMU_BASE_CMDLINE" | sed 's/liveupdate=on//g')
  expect_rc 2 refused "$S/refused.out" \
      "$B/vmupdate" host-update --kernel "$KERNEL" --initrd "$VMU_INITRD" --append "$noluo vmu_stage=3" --yes
  grep -q 'new kernel command line lacks liveupdate=on' "$S/refused.out" || fail refused "no reason given"
  [ "$(V domstate $GB)" = running ] || fail refused "guest not running after the refusal"
  wait_ticks 1 refused "$SER_B"
  ok refused

  "$B/vmupdate" host-update --kernel "$KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=3" --dry-run > "$S/dryrun.out" 2>&1 || fail dryrun "$(cat "$S/dryrun.out")"
  cat "$S/dryrun.out"
  grep -q 'handed over by LUO' "$S/dryrun.out" || fail dryrun "the plan does not name the handover"
  ok dryrun

  if [ -n "$HANDOVER_POINT" ]; then
    # Interrupted once the RAM is in the LUO session: taken back, restored.
    VMUPDATE_TEST_POINT=$HANDOVER_POINT "$B/vmupdate" host-update --kernel "$KERNEL" \
        --initrd "$VMU_INITRD" --append "$VMU_BASE_CMDLINE vmu_stage=3" --yes > "$S/takeback.out" 2>&1 &
    pid=$!
    wait_stopped $pid takeback "host-update" "$S/takeback.out"
    # libvirt keeps RAM in <memory_backing_dir>/libvirt/qemu, vmupdate its links beside
    held=$(ls -A /srv/vmu-ram/libvirt/qemu/vmupdate/*/ 2>&1)
    [ -z "$held" ] || { kill -9 $pid; fail takeback "RAM files still named while handed over: $held"; }
    grep -q '"token"' /var/lib/vmupdate/handover.json || { kill -9 $pid; fail takeback "no handover record"; }
    kill -s INT $pid; kill -s CONT $pid; wait $pid; rc=$?
    cat "$S/takeback.out"
    [ $rc = 2 ] || fail takeback "exit $rc"
    [ "$(V domstate $GB)" = running ] || fail takeback "guest $(V domstate $GB)"
    [ ! -e /var/lib/vmupdate/handover.json ] || fail takeback "handover record left behind"
    [ "$(cat /sys/kernel/kexec_loaded)" = 0 ] || fail takeback "the kernel stayed loaded"
    wait_ticks 3 takeback "$SER_B"
    # shellcheck disable=SC2012 # a listing for the log
    ok takeback "$(ls -l /srv/vmu-ram/libvirt/qemu/vmupdate/*/ | tr '\n' ' ')"
  fi

  wait_ticks 2 update-luo "$SER_B"
  echo "VMU-HOST-UPDATE luo"
  "$B/vmupdate" host-update --kernel "$KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=3" --yes 2>&1
  fail update-luo "host-update returned: exit $?"
  ;;
3)
  run mount -t tmpfs -o mode=0755,size=1G vmuram /srv/vmu-ram || fail tmpfs mount
  [ -z "$(ls -A /srv/vmu-ram)" ] || fail tmpfs "the new tmpfs is not empty"
  ok tmpfs-new
  cat /var/lib/vmupdate/handover.json
  start_libvirt "$S/libvirtd-$VMU_STAGE.log"

  # Write-back failures, injected (issue 21): each exits 1 with the RAM kept by
  # a holder; the next restore retries from it. First no room on the tmpfs...
  run mount -o remount,size=16M /srv/vmu-ram || fail enospc "remount size=16M"
  expect_rc 1 enospc "$S/enospc.out" "$B/vmupdate" restore --all
  grep -q 'No space left on device' "$S/enospc.out" || fail enospc "ENOSPC not named"
  grep -q 'still held by vmupdate ram-hold' "$S/enospc.out" || fail enospc "RAM not said to be held"
  pgrep -f 'vmupdate ram-hold' > /dev/null || fail enospc "no RAM holder runs"
  [ "$(V domstate $GB)" = "shut off" ] || fail enospc "guest $(V domstate $GB)"
  ok enospc "$(pgrep -af 'vmupdate ram-hold')"
  # ...then room, but <memory_backing_dir>/vmupdate planted by the QEMU user.
  run mount -o remount,size=1G /srv/vmu-ram || fail planted "remount size=1G"
  mkdir -p /srv/vmu-ram/libvirt/qemu
  run install -d -o libvirt-qemu -g libvirt-qemu -m 0755 /srv/vmu-ram/libvirt/qemu/vmupdate \
      || fail planted "cannot plant the directory"
  expect_rc 1 planted "$S/planted.out" "$B/vmupdate" restore --all
  grep -q 'still held by vmupdate ram-hold' "$S/planted.out" || fail planted "RAM not said to be held"
  pgrep -f 'vmupdate ram-hold' > /dev/null || fail planted "no RAM holder runs"
  ok planted
  # The operator removes the cause; a plain restore writes the RAM back.
  rm -rf /srv/vmu-ram/libvirt/qemu/vmupdate
  expect_rc 0 restore-luo "$S/restore-luo.out" "$B/vmupdate" restore --all --verbose
  grep -q 'RAM handed over by the previous kernel (LUO): 1 file' "$S/restore-luo.out" \
      || fail restore-luo "the RAM did not come from the handover"
  [ ! -e /var/lib/vmupdate/handover.json ] || fail restore-luo "handover record left behind"
  i=0
  while pgrep -f 'vmupdate ram-hold' > /dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || fail restore-luo "the RAM holder did not exit"; sleep 0.1
  done
  wait_ticks 3 restore-luo "$SER_B"
  ok restore-luo
  "$B/vmupdate" status
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
