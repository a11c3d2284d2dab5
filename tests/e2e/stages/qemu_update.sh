#!/bin/sh
# Stage of tests/e2e/test_qemu_update.py: QEMU package updates with the counter
# guest kept (RAM on a tmpfs memory_backing_dir), one boot:
#   four (COMPARE=1 only): `vmupdate save --all`, apt-get install (+vmutest1),
#        `vmupdate restore --all`, scripted back to back (the baseline);
#   one: `vmupdate host-update --packages` (+vmutest2);
#   broken: a failing install (+vmutest3, its preinst exits 1): exit 1, the
#        guest restored on the QEMU installed before.
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml); COMPARE=1
# for the baseline; the repacked .debs in $VMU_SHARED/debs
# (qemu-system-x86_vmutestN.deb, qemu-system-common_vmutestN.deb), and common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
: "${GUEST:?}"
COMPARE=${COMPARE:-0}
D=$S/debs
FAIL_LOGS="/var/log/vmupdate/hook.log /var/log/libvirt/qemu/$GUEST.log"
# shellcheck disable=SC2016 # ${Version} is dpkg-query's
version() { dpkg-query -W -f='${Version}' qemu-system-x86; }
qemu_exe() {  # the running guest's QEMU binary, as the kernel sees it
  pid=$(cat "/run/libvirt/qemu/$GUEST.pid"); readlink "/proc/$pid/exe"
}
elapsed() { awk "BEGIN{print $2 - $1}"; }
export DEBIAN_FRONTEND=noninteractive
rm -f /usr/sbin/policy-rc.d
# man-db's trigger rebuilds its index after every install: minutes under TCG,
# the same in both update styles, and nothing vmupdate does.
rm -f /var/lib/man-db/auto-update
mkdir -p /mnt/ram
run mount -t tmpfs -o size=1G tmpfs /mnt/ram || fail ram "mount tmpfs"
set_backing_dir /mnt/ram
run "$B/vmupdate" hook install --hook "$B/vmupdate-hook" || fail hook "hook install"
start_libvirt "$S/libvirtd.log"
ok libvirtd
start_guest "$GUEST"
wait_ticks 3 guest
ok guest "version=$(version)"

# 1. Four commands, scripted back to back (the baseline of the comparison).
if [ "$COMPARE" = 1 ]; then
  t0=$(up)
  "$B/vmupdate" save --all > "$S/four.out" 2>&1 || fail four "save: $(cat "$S/four.out")"
  t1=$(up)
  apt-get install -y "$D/qemu-system-x86_vmutest1.deb" "$D/qemu-system-common_vmutest1.deb" \
      > "$S/four-apt.out" 2>&1 || fail four "apt-get: $(tail -n 5 "$S/four-apt.out")"
  t2=$(up)
  timeout -k 10 300 "$B/vmupdate" restore --all --verbose >> "$S/four.out" 2>&1 \
      || fail four "restore: $(cat "$S/four.out")"
  t3=$(up)
  cat "$S/four.out"
  wait_ticks 3 four
  case "$(version)" in *+vmutest1) ;; *) fail four "installed: $(version)" ;; esac
  case "$(qemu_exe)" in *deleted*) fail four "restored on the old binary: $(qemu_exe)" ;; esac
  ok four "save $(elapsed "$t0" "$t1") s, install $(elapsed "$t1" "$t2") s, restore $(elapsed "$t2" "$t3") s; version=$(version)"
fi

# 2. One command.
expect_rc 0 one "$S/one.out" timeout -k 10 600 "$B/vmupdate" host-update --packages \
    "$D/qemu-system-x86_vmutest2.deb" "$D/qemu-system-common_vmutest2.deb" --yes
wait_ticks 3 one
case "$(version)" in *+vmutest2) ;; *) fail one "installed: $(version)" ;; esac
case "$(qemu_exe)" in *deleted*) fail one "restored on the old binary: $(qemu_exe)" ;; esac
ok one "version=$(version)"

# 3. An install that fails (preinst exits 1): the guest comes back on what was installed.
expect_rc 1 broken "$S/broken.out" timeout -k 10 600 "$B/vmupdate" host-update --packages \
    "$D/qemu-system-x86_vmutest3.deb" "$D/qemu-system-common_vmutest3.deb" --yes
grep -q 'install failed' "$S/broken.out" || fail broken "no install failure reported"
[ "$(V domstate "$GUEST")" = running ] || fail broken "guest not running"
wait_ticks 3 broken
ok broken "version=$(version)"
"$B/vmupdate" status
