#!/bin/sh
# Stage of tests/e2e/test_hostvm_smoke.py (memmap): the e2e groundwork.
#   1: a. /dev/pmem0, mkfs.ext4, mount -o dax; b. virtlogd + libvirtd with
#      memory_backing_dir on the DAX mount; c. the counter guest (nested TCG),
#      its RAM file on pmem; d. 16 MiB of random data on pmem and a file on the
#      persistent root, then vmu-kexec into stage 2
#   2: the data and the root file survived, e2fsck is clean
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml, RAM in a
# shared file; not prepared by vmupdate), VMU_BOOT_ID, VMU_KERNEL (hostvm.py),
# and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
: "${GUEST:?}"
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
  set_backing_dir /mnt/pmem/ram
  run virtlogd -d || fail libvirtd "virtlogd -d"
  echo "+ setsid tini -s -- libvirtd >$S/libvirtd.log 2>&1 &"
  setsid tini -s -- libvirtd > "$S/libvirtd.log" 2>&1 < /dev/null &
  i=0
  until V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version "$S/libvirtd.log")"
    sleep 0.2
  done
  ok libvirtd "$(tr '\n' ' ' < /tmp/version)"

  # c. the counter guest under nested TCG, RAM in a shared file on pmem
  run V define "$S/guest/domain.xml" || fail guest "virsh define"
  run V start "$GUEST" || fail guest "virsh start: $(tail -n 5 "/var/log/libvirt/qemu/$GUEST.log")"
  ok guest-started
  i=0
  until grep -q '^VMUGUEST tick=' "$SER" 2>/dev/null; do
    i=$((i+1)); [ $i -lt 600 ] || fail guest "no tick: $(tail -n 3 "$SER")"
    sleep 0.1
  done
  ok guest-tick "$(grep '^VMUGUEST tick=' "$SER" | head -n 1)"
  ram=$(find /mnt/pmem/ram -name pc.ram -path "*-$GUEST/*" | head -n 1)
  [ -n "$ram" ] || fail guest-ram "no RAM file under /mnt/pmem/ram: $(find /mnt/pmem/ram)"
  run ls -l "$ram"
  # shellcheck disable=SC2009 # the QEMU's arguments, not its name
  ps -o pid,args -C qemu-system-x86_64 2>/dev/null | grep -o 'memory-backend-file[^ ]*' | head -n 1
  ok guest-ram "path=$ram size=$(stat -c %s "$ram")"
  sleep 2   # a few more ticks for the host to look at
  run V destroy "$GUEST" || fail guest "virsh destroy"
  if [ -e "$ram" ]; then echo "note: RAM file still there after destroy"; else echo "RAM file removed by libvirt on destroy"; fi

  # d. data on the DAX file system across kexec
  run dd if=/dev/urandom of=/mnt/pmem/blob bs=1M count=16 status=none || fail prekexec dd
  sha256sum /mnt/pmem/blob | cut -d' ' -f1 > "$S/blob.sha256"
  mkdir -p /var/lib/vmupdate && echo "$VMU_BOOT_ID" > /var/lib/vmupdate/e2e-persist-probe
  kill "$(cat /run/libvirtd.pid)" 2>/dev/null
  sync
  run umount /mnt/pmem || fail prekexec "umount /mnt/pmem: $(fuser -m /mnt/pmem 2>&1)"
  ok prekexec "sha256=$(cat "$S/blob.sha256")"
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
  want=$(cat "$S/blob.sha256")
  [ "$sum" = "$want" ] || fail survived "sha256 $sum, before kexec $want"
  ok survived "sha256=$sum"
  p=$(cat /var/lib/vmupdate/e2e-persist-probe 2>/dev/null)
  if [ -z "$p" ] || [ "$p" = "$VMU_BOOT_ID" ]; then
    fail persist "root overlay probe: '$p' (boot id now $VMU_BOOT_ID)"
  fi
  ok persist "written in boot $p"
  run umount /mnt/pmem
  run e2fsck -fn /dev/pmem0 || fail fsck "e2fsck reports problems"
  ok fsck
  ;;
*) fail stage "unknown stage $VMU_STAGE" ;;
esac
