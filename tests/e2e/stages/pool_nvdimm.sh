#!/bin/sh
# Stage of tests/e2e/test_pool.py (NVDIMM): `vmupdate pool list|create` on an
# emulated NVDIMM, label-less first, then labelled. It only records: each
# command's output and exit code go to $VMU_SHARED/out (rec), the test asserts.
# Environment: domains vmu-pool-small (64 MiB) and vmu-pool-big (512 MiB) in
# $VMU_SHARED/guest/{small,big}.xml for the capacity check, and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
OUT=$S/out
mkdir -p "$OUT"
ndlist() { ndctl list -R -N > "$OUT/$1.json" 2>&1; }
modprobe nfit 2>/dev/null; modprobe dax_pmem 2>/dev/null
# label-less NVDIMM: one raw namespace over the whole region
ndlist ndctl0; rec list0 "$B/vmupdate" pool list --json
rec raw "$B/vmupdate" pool create --mount /mnt/pool0
grep ' /mnt/pool0 ' /proc/mounts > "$OUT/mounts0.txt"
[ -e /mnt/pool0 ] && echo yes > "$OUT/pool0-exists"
blkid -p /dev/pmem0 > "$OUT/raw-blkid.txt" 2>&1
umount /mnt/pool0 2>/dev/null; wipefs -qa /dev/pmem0 2>/dev/null
ok raw
ndctl disable-region all && ndctl init-labels all && ndctl enable-region all || echo "VMU-STEP labels FAIL"
ok labels
ndlist ndctl1; rec list1 "$B/vmupdate" pool list --json; rec table1 "$B/vmupdate" pool list
ok list1
rec create "$B/vmupdate" pool create --size 256M --mount /mnt/pool
grep ' /mnt/pool ' /proc/mounts > "$OUT/mounts.txt"; cat "$OUT/mounts.txt"
[ -d /mnt/pool/ram ] && echo yes > "$OUT/ramdir.txt"
ndlist ndctl2; rec list2 "$B/vmupdate" pool list --json; rec table2 "$B/vmupdate" pool list
ok create
ndlist ndctl3
rec big "$B/vmupdate" pool create --size 64G --mount /mnt/pool2
ndlist ndctl4
[ -e /mnt/pool2 ] && echo yes > "$OUT/pool2-exists"
ok big
printf '# a comment\nmemory_backing_dir = "/old"\nuser = "root"\n' > /etc/libvirt/qemu.conf
rec conf "$B/vmupdate" pool create --size 128M --mount /mnt/pool3 --configure-libvirt
cp /etc/libvirt/qemu.conf "$OUT/qemu.conf"
ok conf
# Capacity: with memory_backing_dir on the 128 MiB pool, a managed domain of
# 64 MiB starts and one of 512 MiB is refused at start by the hook.
"$B/vmupdate" hook install --hook "$B/vmupdate-hook" > /dev/null
virtlogd -d
setsid tini -s -- libvirtd > "$OUT/libvirtd.log" 2>&1 < /dev/null &
i=0; until V version > /dev/null 2>&1; do i=$((i+1)); [ $i -lt 900 ] || break; sleep 0.2; done
for d in small big; do "$B/vmupdate" translate "$S/guest/$d.xml" > "/tmp/$d.xml" && V define "/tmp/$d.xml"; done
rec startsmall V start vmu-pool-small
rec startbig V start vmu-pool-big
find /mnt/pool3/ram -name pc.ram > "$OUT/ramfiles.txt"
V destroy vmu-pool-small
ok capacity
kill "$(cat /run/libvirtd.pid)" 2>/dev/null; sleep 1
umount /mnt/pool /mnt/pool3
