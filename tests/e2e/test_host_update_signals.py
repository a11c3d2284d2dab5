#!/usr/bin/env python3
"""End-to-end fault cases: `vmupdate host-update` killed at each of its steps, in
a throwaway host VM (tests/e2e/hostvm.py), so that the kexec it would do can only
ever hit that VM.

The host VM runs its own libvirtd with memory_backing_dir on a DAX mount of pmem,
and the counter guest (nested TCG), prepared and started. For each step of
host-update (test points: `host-update:planned` = pre-flight passed and kernel
loaded, nothing paused; `save:managed-saved` = the guest's save done inside
host-update; `host-update:saved` = every save done, before the re-check and sync;
`host-update:kexec` = state synced, just before `kexec -e`) and a signal (by
default 5 cases: every step, every signal, SIGKILL once the guest is saved;
SIGINT, SIGTERM and SIGHUP share one handler; VMUPDATE_E2E_ALL_SIGNALS=1: all 16
combinations), the stage runs
host-update with the CLI stopped at that point, sends the signal, lets it go on,
and then:
  - SIGINT/SIGTERM/SIGHUP: host-update must have undone itself: exit non-zero,
    the guest running (restored if it was saved), the new kernel unloaded;
  - SIGKILL: the guest is running (killed before any save) or saved; then a
    plain `vmupdate restore GUEST` must bring it back.
After every case: the guest runs, it ticks, x-ignore-shared is off and no save is
left recorded for it. At the end, from the guest's serial log: one boot id, the
counter went on and the memory checksum never changed across all cases, and the
host VM never rebooted (one boot id).
Needs a build with -DVMUPDATE_TEST_POINTS=ON (otherwise SKIPPED).
Exit 0 pass, 1 fail, 77 skipped."""
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402

log = hostvm.log
GUEST = "vmu-e2e-signals"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
POINTS = ["host-update:planned", "save:managed-saved", "host-update:saved", "host-update:kexec"]
SIGNALS = ["INT", "TERM", "HUP", "KILL"]
# By default (CI) each step and each signal once; SIGKILL where it leaves a saved
# guest behind (the caught three share one handler). VMUPDATE_E2E_ALL_SIGNALS=1
# runs all 16 combinations.
DEFAULT_CASES = [("host-update:planned", "INT"), ("save:managed-saved", "HUP"),
                 ("save:managed-saved", "KILL"), ("host-update:saved", "TERM"),
                 ("host-update:kexec", "INT")]

# Inside the VM: is x-ignore-shared on, and what does vmupdate record for the guest?
CHECK = r"""
import json, subprocess, sys
name = sys.argv[1]
out = subprocess.run(["virsh", "-c", "qemu:///system", "qemu-monitor-command", name,
                      '{"execute":"query-migrate-capabilities"}'],
                     capture_output=True, text=True, check=True).stdout
cap = [c["state"] for c in json.loads(out)["return"] if c["capability"] == "x-ignore-shared"]
st = json.loads(subprocess.run(["/shared/bin/vmupdate", "status", "--json"],
                               capture_output=True, text=True, check=True).stdout)
mine = [d for d in st if d["name"] == name]
save = mine[0]["save_state"] if mine else "?"
print("capability=%s save_state=%s" % ("on" if cap and cap[0] else "off", save or "none"))
sys.exit(0 if (not cap or not cap[0]) and save in ("", "restored") else 1)
"""

STAGE = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() { echo "VMU-STEP $1 FAIL $2"; exit 1; }
run() { echo "+ $*" >&2; "$@"; }
B=/shared/bin
GUEST=@GUEST@
V="virsh -c qemu:///system"
SER=/shared/guest/counter.serial
ticks() { n=$(grep -c '^VMUGUEST tick=' $SER 2>/dev/null); echo "${n:-0}"; }
wait_ticks() {  # wait until $1 more tick lines appear
  want=$(( $(ticks) + $1 )); i=0
  until [ "$(ticks)" -ge $want ]; do
    i=$((i+1)); [ $i -lt 1200 ] || fail "$2" "no tick: $(tail -n 3 $SER)"; sleep 0.1
  done
}
pstate() { sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f1; }
[ "$VMU_STAGE" = 1 ] || fail stage "the host VM rebooted (stage $VMU_STAGE): a host-update was not stopped"
mkdir -p /mnt/pmem
run mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail pmem mkfs
run mount -o dax /dev/pmem0 /mnt/pmem || fail pmem "mount -o dax"
mkdir -p /mnt/pmem/ram
sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
echo 'memory_backing_dir = "/mnt/pmem/ram"' >> /etc/libvirt/qemu.conf
run $B/vmupdate hook install --hook $B/vmupdate-hook || fail hook "hook install"
virtlogd -d || fail libvirtd "virtlogd -d"
setsid tini -s -- libvirtd > /shared/libvirtd.log 2>&1 < /dev/null &
i=0
until $V version > /tmp/version 2>&1; do
  i=$((i+1)); [ $i -lt 900 ] || fail libvirtd "no answer: $(tail -n 3 /tmp/version)"; sleep 0.2
done
ok libvirtd
run $V define /shared/guest/domain.xml || fail guest define
run $B/vmupdate prepare $GUEST || fail guest prepare
run $V start $GUEST || fail guest "start: $(tail -n 5 /var/log/libvirt/qemu/$GUEST.log)"
wait_ticks 3 guest
ok guest

n=0
for c in @CASES@; do
    p=${c%/*}; s=${c#*/}
    n=$((n+1))
    out=/shared/case-$n.out
    VMUPDATE_TEST_POINT=$p $B/vmupdate host-update --kernel "$VMU_KERNEL" --initrd "$VMU_INITRD" \
        --append "$VMU_BASE_CMDLINE vmu_stage=2" --yes > $out 2>&1 &
    pid=$!
    i=0
    until [ "$(pstate $pid)" = T ]; do
      if ! kill -0 $pid 2>/dev/null; then
        wait $pid; fail case "$p $s: host-update ended (exit $?) without reaching the point: $(tail -n 5 $out)"
      fi
      i=$((i+1)); [ $i -lt 3000 ] || fail case "$p $s: the point was not reached in 300 s"; sleep 0.1
    done
    kill -$s $pid; kill -CONT $pid
    wait $pid
    rc=$?
    st=$($V domstate $GUEST)
    case "$st" in
    running) outcome=running ;;
    "shut off")
      outcome=restored
      $B/vmupdate restore $GUEST >> $out 2>&1 || fail case "$p $s: vmupdate restore: $(tail -n 5 $out)" ;;
    *) fail case "$p $s: guest is '$st' after the signal: $(tail -n 5 $out)" ;;
    esac
    [ "$($V domstate $GUEST)" = running ] || fail case "$p $s: guest not running after all"
    wait_ticks 2 case
    check=$(python3 /shared/check.py $GUEST) || fail case "$p $s: left behind: $check"
    loaded=$(cat /sys/kernel/kexec_loaded)
    echo "VMU-CASE point=$p signal=$s rc=$rc outcome=$outcome kexec_loaded=$loaded $check"
    sed 's/^/  | /' $out
    kexec -u 2>/dev/null
done
ok cases "$n"
"""


def main():
    hostvm.skip_unless_ready()
    if os.environ.get("VMUPDATE_TEST_POINTS", "").upper() not in ("ON", "1", "TRUE", "YES"):
        vmtest.skip("built without test points (configure with -DVMUPDATE_TEST_POINTS=ON)")
    guest = vmtest.find_test_guest()
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    helper = os.path.join(os.path.dirname(hook), "vmupdate-restore-helper")
    for f in (cli, hook, helper):
        if not os.access(f, os.X_OK):
            vmtest.skip("%s not built" % f)
    work_root = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
    wd = os.path.join(work_root, "host-update-signals-%d" % os.getpid())
    t0 = time.monotonic()
    xml = vmtest.domain_xml(GUEST, "/shared/guest/counter-guest.elf", memory_mib=128, fill_mib=64,
                            serial_log="/shared/guest/counter.serial")
    wanted = ([(p, s) for p in POINTS for s in SIGNALS]
              if os.environ.get("VMUPDATE_E2E_ALL_SIGNALS") == "1" else DEFAULT_CASES)
    stage = (STAGE.replace("@GUEST@", GUEST)
             .replace("@CASES@", " ".join("%s/%s" % c for c in wanted)))
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(stage, files={"guest/counter-guest.elf": "@" + guest, "guest/domain.xml": xml,
                               "check.py": CHECK, "bin/vmupdate": "@" + cli,
                               "bin/vmupdate-hook": "@" + hook,
                               "bin/vmupdate-restore-helper": "@" + helper})
        vm.wait_for(r"VMU-STEP libvirtd ok", 300)
        vm.wait_for(r"VMU-STEP guest ok", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        first = serial.last_tick()
        cases = []
        case_re = (r"VMU-CASE point=(\S+) signal=(\S+) rc=(\d+) outcome=(\S+) "
                   r"kexec_loaded=(\d) (.*)")
        since = 0
        for _ in wanted:
            m, t = vm.wait_for(case_re, 300, since=since)
            lines = vm.lines()
            since = 1 + next(i for i in range(since, len(lines))
                             if re.search(case_re, lines[i][1]))
            cases.append((m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5), t))
            log("case %s %s: exit %s, %s, kernel still loaded: %s (at %.0f s)"
                % (m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), t))
        vm.wait_for(r"VMU-STEP cases ok", 120)
        vm.wait_for(r"^VMU-STAGE-END stage=1 rc=0", 120)
        assert vm.wait_exit(120) == 0
        ids = vm.boot_ids()
        assert [s for s, _, _ in ids] == ["1"], "the host VM rebooted: %s" % ids
        problems = []
        for (p, s, rc, outcome, loaded, _), (ep, es) in zip(cases, wanted):
            if (p, s) != (ep, es):
                problems.append("case order: got %s %s, expected %s %s" % (p, s, ep, es))
                continue
            if rc == 0:
                problems.append("%s %s: host-update exited 0" % (p, s))
            if s != "KILL":
                # Caught: host-update undoes itself, nothing for the operator to do.
                if outcome != "running" or loaded != "0":
                    problems.append("%s %s: %s, kernel loaded %s (expected: guest running, "
                                    "kernel unloaded)" % (p, s, outcome, loaded))
            else:
                want = "running" if p == "host-update:planned" else "restored"
                if outcome != want:
                    problems.append("%s KILL: %s, expected %s" % (p, outcome, want))
        assert not problems, "; ".join(problems)
        serial.assert_continued(first, serial.last_tick(), consecutive=False)
        # For scripts/reliability-table (docs/reliability.md).
        for p, s, _, outcome, _, _ in cases:
            print("FAULT host-update %s SIG%s -> %s lost=0" % (p, s, outcome), flush=True)
        log("RESULT host-update signals: %d cases, 0 VMs lost, whole test %.0f s"
            % (len(cases), time.monotonic() - t0))
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
