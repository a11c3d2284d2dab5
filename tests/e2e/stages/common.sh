# shellcheck shell=sh
# tests/e2e/stages/common.sh: sourced by every stage script of the e2e tests
# (tests/e2e/README.md, "Stage scripts"). POSIX sh: /bin/sh is dash in the host VM.
#
# Environment (hostvm.py's init2 sets the VMU_* ones; the test sets the rest):
#   VMU_STAGE    this boot's stage number (1 at first boot, N after vmu-kexec N)
#   VMU_SHARED   the share with the test (default /shared)
#   B            directory of the binaries under test (default $VMU_SHARED/bin)
#   SER          the counter guest's serial log (default $VMU_SHARED/guest/counter.serial)
#   FAIL_LOGS    files whose last lines fail() prints (space-separated)
#   FAIL_UNITS   systemd units whose journal fail() prints (space-separated)
# Markers on the console, which the Python side waits for:
#   VMU-STEP <step> ok uptime=<s> <details>    (ok)
#   VMU-STEP <step> FAIL <why>                 (fail; the stage exits 1)

S=${VMU_SHARED:-/shared}
B=${B:-$S/bin}
SER=${SER:-$S/guest/counter.serial}
FAIL_LOGS=${FAIL_LOGS:-}
FAIL_UNITS=${FAIL_UNITS:-}

up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() {
  for f in $FAIL_LOGS; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }
  done
  if [ -n "$FAIL_UNITS" ]; then
    units=""
    for u in $FAIL_UNITS; do units="$units -u $u"; done
    echo "--- journal"
    # shellcheck disable=SC2086 # one word per option
    journalctl -b --no-pager -n 40 $units
  fi
  echo "VMU-STEP $1 FAIL $2"; exit 1
}
run() { echo "+ $*" >&2; "$@"; }
V() { virsh -c qemu:///system "$@"; }

# ticks [SERIAL]: how many tick lines the counter guest has printed
ticks() { n=$(grep -c '^VMUGUEST tick=' "${1:-$SER}" 2>/dev/null); echo "${n:-0}"; }
# wait_ticks N STEP [SERIAL]: wait (120 s at most) until N more tick lines appear
wait_ticks() {
  want=$(( $(ticks "$3") + $1 )); i=0
  until [ "$(ticks "$3")" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$2" "no tick: $(tail -n 3 "${3:-$SER}")"; sleep 0.1
  done
}

# wait_libvirt: until libvirtd answers (180 s at most)
wait_libvirt() {
  i=0
  until V version > /tmp/version 2>&1; do
    i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
  done
}
# start_libvirt LOG: virtlogd and libvirtd without systemd, as boot would start them
start_libvirt() {
  pgrep -x virtlogd > /dev/null || virtlogd -d || fail libvirtd "virtlogd -d"
  setsid tini -s -- libvirtd > "$1" 2>&1 < /dev/null &
  wait_libvirt
}
# set_backing_dir DIR: libvirt's memory_backing_dir (read when libvirtd starts)
set_backing_dir() {
  sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo "memory_backing_dir = \"$1\"" >> /etc/libvirt/qemu.conf
}
# new_pmem_dax: a fresh ext4 on /dev/pmem0, mounted with -o dax on /mnt/pmem
new_pmem_dax() {
  mkdir -p /mnt/pmem
  run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
  run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax"
  grep -q ' /mnt/pmem .*dax' /proc/mounts || fail pmem "no dax: $(grep pmem /proc/mounts)"
}
# pmem_host LOG: guest RAM on a fresh DAX mount of /dev/pmem0 (/mnt/pmem/ram),
# vmupdate's hook installed, libvirtd started (its output to LOG)
pmem_host() {
  new_pmem_dax
  mkdir -p /mnt/pmem/ram
  set_backing_dir /mnt/pmem/ram
  run "$B/vmupdate" hook install --hook "$B/vmupdate-hook" || fail hook "hook install"
  start_libvirt "$1"
}
# start_guest NAME [XML]: define, prepare (vmupdate) and start a domain
start_guest() {
  run V define "${2:-$S/guest/domain.xml}" || fail guest define
  run "$B/vmupdate" prepare "$1" || fail guest prepare
  run V start "$1" || fail guest "start: $(tail -n 5 "/var/log/libvirt/qemu/$1.log")"
}
# install_as_package: the build tree's restore unit (run from $B), hook, helper
# and AppArmor rule put where the vmupdate package puts them
install_as_package() {
  sed "s|^ExecStart=.*|ExecStart=$B/vmupdate restore --all --verbose|" "$B/vmupdate-restore.service" \
      > /etc/systemd/system/vmupdate-restore.service
  systemctl daemon-reload
  run systemctl enable vmupdate-restore.service || fail unit "enable vmupdate-restore.service"
  # Where libvirtd's AppArmor profile lets it run them, and the rule a confined
  # QEMU needs for vmupdate's restore.
  install -m 0755 "$B/vmupdate-hook" "$B/vmupdate-restore-helper" /usr/sbin/ || fail hook "copy to /usr/sbin"
  mkdir -p /etc/apparmor.d/abstractions/libvirt-qemu.d
  install -m 0644 "$B/apparmor-vmupdate" /etc/apparmor.d/abstractions/libvirt-qemu.d/vmupdate
}
# wait_stopped PID STEP WHAT OUT: until PID stops itself at its test point
# (state T, 300 s at most); fails STEP if it ends first (OUT: its output)
wait_stopped() {
  i=0
  until [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = T ]; do
    if ! kill -0 "$1" 2>/dev/null; then
      wait "$1"; fail "$2" "$3: ended (exit $?) without reaching the point: $(tail -n 5 "$4")"
    fi
    i=$((i+1)); [ $i -lt 3000 ] || fail "$2" "$3: the point was not reached in 300 s"; sleep 0.1
  done
}
# expect_rc RC STEP OUT CMD...: CMD's output to the file OUT, then shown; fails
# STEP unless CMD exits RC
expect_rc() {
  _want=$1 _step=$2 _out=$3; shift 3
  "$@" > "$_out" 2>&1
  rc=$?
  cat "$_out"
  [ "$rc" = "$_want" ] || fail "$_step" "exit $rc (expected $_want)"
}
# rec NAME CMD...: stdout+stderr to $OUT/NAME.out, exit code to $OUT/NAME.rc, echoed
rec() { n=$1; shift; echo "+ $*"; "$@" > "$OUT/$n.out" 2>&1; echo $? > "$OUT/$n.rc"; cat "$OUT/$n.out"; }
