#!/bin/sh
# Stage of tests/e2e/test_pool.py (memmap): `vmupdate pool list|create` on a
# label-less e820 region (memmap= pmem). It only records: each command's output
# and exit code go to $VMU_SHARED/out (rec), the test asserts.
# Environment: common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
OUT=$S/out
mkdir -p "$OUT"
ndlist() { ndctl list -R -N > "$OUT/$1.json" 2>&1; }
ndlist ndctl1; rec list1 "$B/vmupdate" pool list --json; rec table1 "$B/vmupdate" pool list
ok list1
rec big "$B/vmupdate" pool create --size 64G --mount /mnt/pool
ok big
rec create "$B/vmupdate" pool create --mount /mnt/pool
grep ' /mnt/pool ' /proc/mounts > "$OUT/mounts.txt"; cat "$OUT/mounts.txt"
rec list2 "$B/vmupdate" pool list --json
ok create
rec again "$B/vmupdate" pool create --mount /mnt/pool2
umount /mnt/pool
rec signature "$B/vmupdate" pool create --mount /mnt/pool2
ok refusals
