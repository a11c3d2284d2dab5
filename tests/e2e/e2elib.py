"""e2elib: what the e2e tests share besides the host VM itself (hostvm.py):
the binaries under test, the counter guest's files, waiting for a stage's
steps, and the checks that end a test across a kexec. Python 3 stdlib only."""
import os
import re

import hostvm
import vmtest
import test_points  # noqa: F401  (tests/integration/harness, on the path through hostvm)

log = vmtest.log
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORK_ROOT = hostvm.DEFAULT_WORK_ROOT
GUEST_ELF = "/shared/guest/counter-guest.elf"


def binaries():
    """(cli, hook, helper) under test ($VMUPDATE_CLI, $VMUPDATE_HOOK, else the
    build tree; the hook starts the helper from its own directory); skips the
    test when one is not built."""
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    helper = os.path.join(os.path.dirname(hook), "vmupdate-restore-helper")
    for f in (cli, hook, helper):
        if not os.access(f, os.X_OK):
            vmtest.skip("%s not built" % f)
    return cli, hook, helper


def bin_files(cli, hook, helper):
    """The binaries as HostVM files, in /shared/bin."""
    return {"bin/vmupdate": "@" + cli, "bin/vmupdate-hook": "@" + hook,
            "bin/vmupdate-restore-helper": "@" + helper}


def guest_files(name, guest, xml="domain", serial="counter", memory_mib=128, fill_mib=64):
    """The counter guest `guest` (its ELF) and a domain `name` for it, as HostVM
    files: /shared/guest/XML.xml, serial log /shared/guest/SERIAL.serial."""
    return {"guest/counter-guest.elf": "@" + guest,
            "guest/%s.xml" % xml: vmtest.domain_xml(
                name, GUEST_ELF, memory_mib=memory_mib, fill_mib=fill_mib,
                serial_log="/shared/guest/%s.serial" % serial)}


def work_dir(kind, root=WORK_ROOT):
    """This run's directory for the host VM of `kind` under `root` ($VMU_E2E_WORK)."""
    return os.path.join(root, "%s-%d" % (kind, os.getpid()))


def points_built():
    """Whether the binaries have test points (-DVMUPDATE_TEST_POINTS=ON)."""
    return os.environ.get("VMUPDATE_TEST_POINTS", "").upper() in ("ON", "1", "TRUE", "YES")


def step(vm, name, timeout, since=0):
    """Waits for `VMU-STEP NAME ok`; returns (match: group 1 the details, seconds)."""
    m, t = vm.wait_for(r"VMU-STEP %s ok\b(.*)" % name, timeout, since=since)
    log("step %s ok at %.1fs" % (name, t))
    return m, t


def read_shared(vm, name):
    with open(os.path.join(vm.shared, name)) as f:
        return f.read()


def refused_and_dry_run(vm, lacking):
    """Steps `refused` (host-update whose new command line lacks `lacking`) and
    `dryrun`, their outputs logged."""
    step(vm, "refused", 120)
    log("host-update without %s on the new command line:\n%s"
        % (lacking, read_shared(vm, "refused.out")))
    step(vm, "dryrun", 120)
    log("host-update --dry-run:\n" + read_shared(vm, "dryrun.out"))


def pause_of(text):
    """The guest pause vmupdate reported in `text` ("guest paused S s"): "S", or "?"."""
    m = re.search(r"guest paused ([0-9.]+) s", text)
    return m.group(1) if m else "?"


def finish(vm, stage, exit_timeout=120, stages=None):
    """The last stage ended with rc 0, the VM powered off (exit 0), and it booted
    exactly `stages` (e.g. ["1", "2"]) with a new boot id each time."""
    vm.wait_for(r"^VMU-STAGE-END stage=%s rc=0" % stage, 120)
    assert vm.wait_exit(exit_timeout) == 0
    ids = vm.boot_ids()
    stages = stages or [str(s) for s in range(1, int(stage) + 1)]
    assert [s for s, _, _ in ids] == stages and len({i for _, i, _ in ids}) == len(ids), \
        "the host VM did not boot into stages %s with a new boot id each: %s" % (stages, ids)
    return ids
