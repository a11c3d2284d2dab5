#!/bin/sh
# Stage of tests/e2e/test_host_update.py: `vmupdate host-update` across a kexec,
# guest RAM on a DAX mount of legacy pmem (memmap=), no systemd.
#   1: libvirtd, the counter guest; host-update refused (the new command line
#      lacks memmap=), a dry run, then host-update for real (kexec into stage 2)
#   2: what vmupdate-restore.service does at boot: libvirtd, `vmupdate restore --all`
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml), VMU_KERNEL,
# VMU_INITRD, VMU_BASE_CMDLINE (hostvm.py), and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
: "${GUEST:?}"
case "$VMU_STAGE" in
1)
  pmem_host "$S/libvirtd-$VMU_STAGE.log"
  ok libvirtd
  start_guest "$GUEST"
  wait_ticks 3 guest
  ok guest

  nopmem=$(echo "$VMU_BASE_CMDLINE" | sed 's/memmap=[^ ]*//g')
  expect_rc 2 refused "$S/refused.out" \
      "$B/vmupdate" host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" --append "$nopmem vmu_stage=2" --yes
  grep -q 'lacks memmap=' "$S/refused.out" || fail refused "no memmap offender named"
  [ "$(V domstate "$GUEST")" = running ] || fail refused "guest not running after the refusal"
  wait_ticks 1 refused
  ok refused

  "$B/vmupdate" host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --dry-run > "$S/dryrun.out" 2>&1 || fail dryrun "$(cat "$S/dryrun.out")"
  cat "$S/dryrun.out"
  [ "$(V domstate "$GUEST")" = running ] || fail dryrun "guest not running after the dry run"
  ok dryrun

  wait_ticks 2 update
  echo "VMU-HOST-UPDATE start"
  "$B/vmupdate" host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
      --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes 2>&1
  fail update "host-update returned: exit $?"
  ;;
2)
  echo "VMU-STAGE2 up"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail restore "mount -o dax after kexec"
  start_libvirt "$S/libvirtd-$VMU_STAGE.log"
  ok libvirtd2
  # What vmupdate-restore.service does at boot.
  expect_rc 0 restore "$S/restore.out" "$B/vmupdate" restore --all --verbose
  ok restore
  wait_ticks 3 continued
  "$B/vmupdate" status
  ok continued
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
