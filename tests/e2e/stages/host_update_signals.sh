#!/bin/sh
# Stage of tests/e2e/test_host_update_signals.py: `vmupdate host-update` stopped
# at a test point and sent a signal, case after case, in one boot (the host VM
# must never reboot: stage 2 is a failure).
# Each case prints "VMU-CASE point=P signal=S rc=RC outcome=running|restored
# kexec_loaded=0|1 capability=... save_state=..." and the host-update output.
# Environment: GUEST (domain name, in $VMU_SHARED/guest/domain.xml); CASES,
# space-separated POINT/SIGNAL pairs (e.g. "host-update:planned/INT"); a build
# with test points; VMU_KERNEL, VMU_INITRD, VMU_BASE_CMDLINE (hostvm.py), and
# common.sh's. Uses capability_check.py beside it.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
: "${GUEST:?}" "${CASES:?}"
CHECK="$(dirname "$0")/capability_check.py"
[ "$VMU_STAGE" = 1 ] || fail stage "the host VM rebooted (stage $VMU_STAGE): a host-update was not stopped"
pmem_host "$S/libvirtd.log"
ok libvirtd
start_guest "$GUEST"
wait_ticks 3 guest
ok guest

n=0
for c in $CASES; do
    p=${c%/*}; s=${c#*/}
    n=$((n+1))
    out=$S/case-$n.out
    VMUPDATE_TEST_POINT=$p "$B/vmupdate" host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
        --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes > "$out" 2>&1 &
    pid=$!
    wait_stopped $pid case "$p $s" "$out"
    kill -s "$s" $pid; kill -s CONT $pid
    wait $pid
    rc=$?
    st=$(V domstate "$GUEST")
    case "$st" in
    running) outcome=running ;;
    "shut off")
      outcome=restored
      "$B/vmupdate" restore "$GUEST" >> "$out" 2>&1 || fail case "$p $s: vmupdate restore: $(tail -n 5 "$out")" ;;
    *) fail case "$p $s: guest is '$st' after the signal: $(tail -n 5 "$out")" ;;
    esac
    [ "$(V domstate "$GUEST")" = running ] || fail case "$p $s: guest not running after all"
    wait_ticks 2 case
    check=$(python3 "$CHECK" "$GUEST" "$B/vmupdate") || fail case "$p $s: left behind: $check"
    loaded=$(cat /sys/kernel/kexec_loaded)
    echo "VMU-CASE point=$p signal=$s rc=$rc outcome=$outcome kexec_loaded=$loaded $check"
    sed 's/^/  | /' "$out"
    kexec -u 2>/dev/null
done
ok cases "$n"
