#!/bin/sh
# Stage of tests/e2e/test_restore_unit_modular.py: vmupdate-restore.service (the
# unit the build made) on a host that runs libvirt's modular daemons, with
# systemd as PID 1, one boot (issue 21, item 7). Debian ships only the
# monolithic libvirtd, so the modular host is a stand-in: libvirtd.service and
# its sockets disabled and stopped, the same daemon binary run as
# virtqemud.service, which conflicts with libvirtd.service as upstream's does.
# The restore unit must restore the guest through it without pulling in
# libvirtd.service: starting that would stop virtqemud.service (the conflict),
# i.e. switch the host's daemon mode.
#   1: the stand-in, the counter guest, `vmupdate save`, `systemctl start
#      vmupdate-restore.service`; virtqemud.service still active,
#      libvirtd.service still inactive, the guest runs and continues
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml), and
# common.sh's.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
: "${GUEST:?}"
FAIL_LOGS="/var/log/vmupdate/hook.log /var/log/libvirt/qemu/$GUEST.log"
FAIL_UNITS="libvirtd virtqemud vmupdate-restore"
LIBVIRTD_UNITS="libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket"
# "virtqemud=STATE libvirtd=STATE": the two daemons' units
daemons() {
  echo "virtqemud=$(systemctl is-active virtqemud.service) libvirtd=$(systemctl is-active libvirtd.service)"
}
[ "$(cat /proc/1/comm)" = systemd ] || fail systemd "PID 1 is $(cat /proc/1/comm)"
[ "$VMU_STAGE" = 1 ] || fail stage "unknown stage $VMU_STAGE"
ok systemd "$(systemctl is-system-running)"
new_pmem_dax
mkdir -p /mnt/pmem/ram
set_backing_dir /mnt/pmem/ram
install_as_package
run "$B/vmupdate" hook install --hook /usr/sbin/vmupdate-hook || fail hook "hook install"

# The modular host: libvirtd off (disabled, not masked, as libvirt's docs switch
# a host to the modular daemons), virtqemud serving qemu:///system.
# shellcheck disable=SC2086 # one word per unit
run systemctl disable --now $LIBVIRTD_UNITS || fail modular "disable libvirtd"
cat > /etc/systemd/system/virtqemud.service <<'UNIT'
[Unit]
Description=stand-in for libvirt's modular QEMU daemon: libvirtd as virtqemud.service
# As upstream's virtqemud.service: one daemon mode at a time.
Conflicts=libvirtd.service
Requires=virtlogd.socket
Wants=systemd-machined.service
After=virtlogd.socket systemd-machined.service network.target dbus.service apparmor.service
Before=libvirt-guests.service

[Service]
Type=notify
# No --timeout: not socket-activated, it listens on its own sockets.
ExecStart=/usr/sbin/libvirtd
KillMode=process
LimitNOFILE=1024:524288
LimitMEMLOCK=64M

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
run systemctl enable --now virtqemud.service || fail modular "start the stand-in virtqemud.service"
wait_libvirt
case "$(systemctl show -p ConflictedBy --value libvirtd.service)" in
*virtqemud.service*) ;;
*) fail modular "libvirtd.service does not conflict with virtqemud.service" ;;
esac
[ "$(daemons)" = "virtqemud=active libvirtd=inactive" ] || fail modular "$(daemons)"
ok modular "$(daemons)"

start_guest "$GUEST"
wait_ticks 3 guest
ok guest
wait_ticks 2 save
expect_rc 0 save "$S/save.out" "$B/vmupdate" save "$GUEST"
[ "$(V domstate "$GUEST")" = "shut off" ] || fail save "guest $(V domstate "$GUEST")"
ok save

# What host-update's kexec leads to at boot, without the kexec: the unit with a
# manifest present.
systemctl show -p Wants -p After vmupdate-restore.service
run systemctl start vmupdate-restore.service
systemctl show -p ActiveState -p Result -p ExecMainStatus vmupdate-restore.service > "$S/unit.out"
cat "$S/unit.out"
journalctl -b --no-pager -o cat -u vmupdate-restore.service > "$S/restore.out" 2>&1
cat "$S/restore.out"
# The daemon mode first: the old unit's Wants=libvirtd.service switched it
# whether or not its restore then succeeded through libvirtd.
[ "$(daemons)" = "virtqemud=active libvirtd=inactive" ] \
    || fail daemons "the restore unit switched the daemon mode: $(daemons)"
ok daemons "$(daemons)"
if ! grep -qx ActiveState=active "$S/unit.out" || ! grep -qx Result=success "$S/unit.out"; then
  fail restore "vmupdate-restore.service: $(tr '\n' ' ' < "$S/unit.out")"
fi
ok restore
wait_libvirt
[ "$(V domstate "$GUEST")" = running ] || fail continued "guest $(V domstate "$GUEST")"
wait_ticks 3 continued
"$B/vmupdate" status
ok continued
