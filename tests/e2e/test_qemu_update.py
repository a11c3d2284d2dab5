#!/usr/bin/env python3
"""End-to-end: a QEMU package update with the guest kept, in a throwaway host VM
(tests/e2e/hostvm.py), so that the packages are installed into that VM's overlay,
never into this machine.

The packages: this machine's qemu-system-x86 and qemu-system-common .debs (from
apt's cache, or `apt-get download`), repacked with bumped versions (+vmutest1,
+vmutest2, and a +vmutest3 whose preinst fails): real packages, installed by
apt-get and dpkg, whose QEMU binary the restore then runs. Inside the VM, the
counter guest (nested TCG, RAM on a tmpfs memory_backing_dir) is prepared and
started, then:
  1. (only with VMUPDATE_E2E_COMPARE=1: the baseline of the comparison) the
     four-command sequence, scripted: `vmupdate save --all`, `apt-get install`
     (+vmutest1), `vmupdate restore --all`;
  2. one command: `vmupdate host-update --packages` (+vmutest2);
  3. a failing install (+vmutest3): host-update exits 1, the guest is restored on
     the QEMU installed before (+vmutest2 stays).
After each: the guest continued (same boot id, counter on, checksum unchanged), the
installed version is the expected one, and the restored QEMU's binary is the new
one (its /proc/PID/exe is not "(deleted)"). The pause and phases of 1 and 2 are
logged for comparison. Exit 0 pass, 1 fail, 77 skipped."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402

log = hostvm.log
GUEST = "vmu-e2e-qemu-update"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGES = ["qemu-system-x86", "qemu-system-common"]

STAGE = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
fail() {
  for f in /var/log/vmupdate/hook.log /var/log/libvirt/qemu/@GUEST@.log; do
    echo "--- $f"; tail -n 25 $f
  done
  echo "VMU-STEP $1 FAIL $2"; exit 1
}
run() { echo "+ $*" >&2; "$@"; }
B=/shared/bin
D=/shared/debs
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
version() { dpkg-query -W -f='${Version}' qemu-system-x86; }
qemu_exe() {  # the running guest's QEMU binary, as the kernel sees it
  pid=$(cat /run/libvirt/qemu/$GUEST.pid); readlink /proc/$pid/exe
}
export DEBIAN_FRONTEND=noninteractive
rm -f /usr/sbin/policy-rc.d
# man-db's trigger rebuilds its index after every install: minutes under TCG,
# the same in both update styles, and nothing vmupdate does.
rm -f /var/lib/man-db/auto-update
mkdir -p /mnt/ram
run mount -t tmpfs -o size=1G tmpfs /mnt/ram || fail ram "mount tmpfs"
sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
echo 'memory_backing_dir = "/mnt/ram"' >> /etc/libvirt/qemu.conf
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
ok guest "version=$(version)"

# 1. Four commands, scripted back to back (the baseline of the comparison).
if [ "@COMPARE@" = 1 ]; then
t0=$(up)
$B/vmupdate save --all > /shared/four.out 2>&1 || fail four "save: $(cat /shared/four.out)"
t1=$(up)
apt-get install -y $D/qemu-system-x86_vmutest1.deb $D/qemu-system-common_vmutest1.deb \
    > /shared/four-apt.out 2>&1 || fail four "apt-get: $(tail -n 5 /shared/four-apt.out)"
t2=$(up)
timeout -k 10 300 $B/vmupdate restore --all --verbose >> /shared/four.out 2>&1 || fail four "restore: $(cat /shared/four.out)"
t3=$(up)
cat /shared/four.out
wait_ticks 3 four
case "$(version)" in *+vmutest1) ;; *) fail four "installed: $(version)" ;; esac
case "$(qemu_exe)" in *deleted*) fail four "restored on the old binary: $(qemu_exe)" ;; esac
ok four "save $(awk "BEGIN{print $t1 - $t0}") s, install $(awk "BEGIN{print $t2 - $t1}") s, restore $(awk "BEGIN{print $t3 - $t2}") s; version=$(version)"
fi

# 2. One command.
timeout -k 10 600 $B/vmupdate host-update --packages $D/qemu-system-x86_vmutest2.deb $D/qemu-system-common_vmutest2.deb \
    --yes > /shared/one.out 2>&1
rc=$?
cat /shared/one.out
[ $rc = 0 ] || fail one "exit $rc"
wait_ticks 3 one
case "$(version)" in *+vmutest2) ;; *) fail one "installed: $(version)" ;; esac
case "$(qemu_exe)" in *deleted*) fail one "restored on the old binary: $(qemu_exe)" ;; esac
ok one "version=$(version)"

# 3. An install that fails (preinst exits 1): the guest comes back on what was installed.
timeout -k 10 600 $B/vmupdate host-update --packages $D/qemu-system-x86_vmutest3.deb $D/qemu-system-common_vmutest3.deb \
    --yes > /shared/broken.out 2>&1
rc=$?
cat /shared/broken.out
[ $rc = 1 ] || fail broken "exit $rc (expected 1)"
grep -q 'install failed' /shared/broken.out || fail broken "no install failure reported"
[ "$($V domstate $GUEST)" = running ] || fail broken "guest not running"
wait_ticks 3 broken
ok broken "version=$(version)"
$B/vmupdate status
"""


def find_deb(pkg, version, workdir):
    """The .deb of `pkg` at `version`: from apt's cache, else downloaded."""
    quoted = version.replace(":", "%3a")
    hits = glob.glob("/var/cache/apt/archives/%s_%s_*.deb" % (pkg, quoted))
    if hits:
        return hits[0]
    r = subprocess.run(["apt-get", "download", "%s=%s" % (pkg, version)], cwd=workdir,
                       capture_output=True, text=True)
    hits = glob.glob(os.path.join(workdir, "%s_%s_*.deb" % (pkg, quoted)))
    if r.returncode != 0 or not hits:
        vmtest.skip("no .deb of %s %s in apt's cache and apt-get download failed: %s"
                    % (pkg, version, r.stderr.strip()))
    return hits[0]


def repack(src, dst, version, new_version, fail_preinst=False):
    """`src` with its version (and its exact dependency on qemu-system-common) bumped."""
    d = dst + ".d"
    shutil.rmtree(d, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", src, d], check=True)
    control = os.path.join(d, "DEBIAN", "control")
    text = open(control).read()
    text = re.sub(r"(?m)^Version: .*$", "Version: " + new_version, text)
    text = text.replace("qemu-system-common (= %s)" % version, "qemu-system-common (= %s)" % new_version)
    open(control, "w").write(text)
    if fail_preinst:
        pre = os.path.join(d, "DEBIAN", "preinst")
        open(pre, "w").write("#!/bin/sh\necho 'vmutest: this preinst fails on purpose' >&2\nexit 1\n")
        os.chmod(pre, 0o755)
    subprocess.run(["dpkg-deb", "-Znone", "-b", d, dst], check=True, capture_output=True)
    shutil.rmtree(d)


def main():
    hostvm.skip_unless_ready(extra_tools=("dpkg-deb", "apt-get"))
    guest = vmtest.find_test_guest()
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    helper = os.path.join(os.path.dirname(hook), "vmupdate-restore-helper")
    for f in (cli, hook, helper):
        if not os.access(f, os.X_OK):
            vmtest.skip("%s not built" % f)
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "qemu-system-x86"],
                             capture_output=True, text=True).stdout.strip()
    if not version:
        vmtest.skip("qemu-system-x86 is not installed as a package")
    work_root = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
    wd = os.path.join(work_root, "qemu-update-%d" % os.getpid())
    debs = os.path.join(wd, "debs")
    os.makedirs(debs, exist_ok=True)
    t0 = time.monotonic()
    files = {}
    for pkg in PACKAGES:
        src = find_deb(pkg, version, debs)
        for n in (1, 2, 3):
            dst = os.path.join(debs, "%s_vmutest%d.deb" % (pkg, n))
            repack(src, dst, version, "%s+vmutest%d" % (version, n),
                   fail_preinst=(n == 3 and pkg == "qemu-system-x86"))
            files["debs/" + os.path.basename(dst)] = "@" + dst
    log("repacked %s %s as +vmutest1..3 in %.1f s" % (" ".join(PACKAGES), version,
                                                    time.monotonic() - t0))
    xml = vmtest.domain_xml(GUEST, "/shared/guest/counter-guest.elf", memory_mib=128, fill_mib=64,
                            serial_log="/shared/guest/counter.serial")
    files.update({"guest/counter-guest.elf": "@" + guest, "guest/domain.xml": xml,
                  "bin/vmupdate": "@" + cli, "bin/vmupdate-hook": "@" + hook,
                  "bin/vmupdate-restore-helper": "@" + helper})
    # The four-command baseline is a measurement, not a check: its own install
    # costs minutes under TCG, so it runs only when asked for.
    compare = os.environ.get("VMUPDATE_E2E_COMPARE") == "1"
    with hostvm.HostVM(wd, pmem=None, persist_root=False,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start(STAGE.replace("@GUEST@", GUEST).replace("@COMPARE@", "1" if compare else "0"),
                 files=files)
        vm.wait_for(r"VMU-STEP libvirtd ok", 300)
        vm.wait_for(r"VMU-STEP guest ok", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        first = serial.last_tick()
        four = vm.wait_for(r"VMU-STEP four ok\b(.*)", 900)[0] if compare else None
        one, _ = vm.wait_for(r"VMU-STEP one ok\b(.*)", 900)
        broken, _ = vm.wait_for(r"VMU-STEP broken ok\b(.*)", 600)
        vm.wait_for(r"^VMU-STAGE-END stage=1 rc=0", 120)
        assert vm.wait_exit(120) == 0
        serial.assert_continued(first, serial.last_tick(), consecutive=False)
        four_out = open(os.path.join(vm.shared, "four.out")).read() if compare else ""
        one_out = open(os.path.join(vm.shared, "one.out")).read()
        broken_out = open(os.path.join(vm.shared, "broken.out")).read()
        pause4 = re.search(r"guest paused ([0-9.]+) s", four_out)
        pause1 = re.search(r"guest paused ([0-9.]+) s", one_out)
        phases = re.search(r"phases: (.*)", one_out)
        assert pause1 and phases, one_out
        assert one.group(1).strip().endswith("+vmutest2"), one.group(1)
        assert broken.group(1).strip().endswith("+vmutest2"), \
            "after the failed install: %s" % broken.group(1)
        log("RESULT qemu-update: four commands (scripted): %s; guest pause %s s | one command: "
            "%s; guest pause %s s | whole test %.0f s"
            % (four.group(1).strip() if four else "not run (VMUPDATE_E2E_COMPARE=1 runs it)",
               pause4.group(1) if pause4 else "-", phases.group(1),
               pause1.group(1), time.monotonic() - t0))
        log("one command output:\n" + one_out)
        log("failed install output:\n" + broken_out)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
