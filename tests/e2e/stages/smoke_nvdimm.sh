#!/bin/sh
# Stage of tests/e2e/test_hostvm_smoke.py --nvdimm: the emulated NVDIMM gets
# labels (ndctl init-labels), a 256 MiB fsdax namespace yields /dev/pmem0, which
# mounts with dax; a file on it survives vmu-kexec into stage 2 (the namespace
# comes back from the labels).
# Environment: VMU_BOOT_ID (hostvm.py) and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
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
  [ -b /dev/pmem0 ] || fail namespace "no /dev/pmem0: $(find /dev -maxdepth 1 -iname '*pmem*')"
  grep -q '"blockdev":"pmem0"' /tmp/ns.json || fail namespace "unexpected: $(cat /tmp/ns.json)"
  ok namespace "$(tr -d ' \n' < /tmp/ns.json)"
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail fsdax "mkfs.ext4"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail fsdax "mount -o dax: $(dmesg | tail -n 3)"
  m=$(grep ' /mnt/pmem ' /proc/mounts)
  case "$m" in *dax*) ok fsdax "$m" ;; *) fail fsdax "no dax: $m" ;; esac
  run dd if=/dev/urandom of=/mnt/pmem/blob bs=1M count=16 status=none || fail prekexec dd
  sha256sum /mnt/pmem/blob | cut -d' ' -f1 > "$S/blob.sha256"
  sync
  run umount /mnt/pmem || fail prekexec "umount"
  ok prekexec "sha256=$(cat "$S/blob.sha256")"
  /run/vmu/vmu-kexec 2
  fail kexec "vmu-kexec returned"
  ;;
2)
  run ndctl list -N
  [ -b /dev/pmem0 ] || fail survived "no /dev/pmem0 after kexec: $(ndctl list -N)"
  mkdir -p /mnt/pmem
  run mount -o dax /dev/pmem0 /mnt/pmem || fail survived "mount -o dax after kexec"
  sum=$(sha256sum /mnt/pmem/blob | cut -d' ' -f1)
  [ "$sum" = "$(cat "$S/blob.sha256")" ] || fail survived "sha256 $sum != $(cat "$S/blob.sha256")"
  ok survived "sha256=$sum"
  run umount /mnt/pmem
  ;;
esac
