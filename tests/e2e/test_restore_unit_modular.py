#!/usr/bin/env python3
"""End-to-end: vmupdate-restore.service on a host that runs libvirt's modular
daemons (issue 21, item 7), in a throwaway host VM (tests/e2e/hostvm.py) with
systemd as PID 1, one boot, no kexec.

Debian ships only the monolithic libvirtd, so the modular host is a stand-in:
libvirtd.service and its sockets disabled and stopped, the same daemon binary
run as virtqemud.service with `Conflicts=libvirtd.service` (as upstream's). The
counter guest runs, `vmupdate save` saves it (its RAM kept on the pmem), and
`systemctl start vmupdate-restore.service` (the unit the build made, only its
ExecStart pointed at the binary under test) does what it does at boot after
host-update's kexec. Asserted: the unit succeeded, virtqemud.service is still
active and libvirtd.service still inactive (a `Wants=libvirtd.service` would
have started libvirtd and so stopped virtqemud: the daemon mode switched), the
guest runs and continued (same boot id, counter continues, memory checksum).
The stage: tests/e2e/stages/restore_unit_modular.sh.
Exit 0 pass, 1 fail, 77 skipped."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import REPO, log, step  # noqa: E402

GUEST = "vmu-e2e-modular"


def main():
    hostvm.skip_unless_ready()
    if not os.path.exists("/lib/systemd/systemd"):
        vmtest.skip("systemd is not installed (the host VM boots it)")
    unit = os.environ.get("VMUPDATE_RESTORE_UNIT",
                          os.path.join(REPO, "build", "vmupdate-restore.service"))
    if not os.path.exists(unit):
        vmtest.skip("%s not built" % unit)
    guest = vmtest.find_test_guest()
    cli, hook, helper = e2elib.binaries()
    work_root = e2elib.WORK_ROOT
    wd = e2elib.work_dir("restore-unit-modular", work_root)
    t0 = time.monotonic()
    files = dict(e2elib.guest_files(GUEST, guest), **e2elib.bin_files(cli, hook, helper))
    files.update({"bin/vmupdate-restore.service": "@" + unit,
                  "bin/apparmor-vmupdate":
                      "@" + os.path.join(REPO, "packaging/apparmor/libvirt-qemu.d-vmupdate")})
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, init="systemd",
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start_stage("restore_unit_modular", {"GUEST": GUEST}, files=files)
        _, t_sd = step(vm, "systemd", 600)
        m_modular, _ = step(vm, "modular", 300)
        log("before the save: " + m_modular.group(1).strip())
        step(vm, "guest", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        before = serial.last_tick()
        _, t_save = step(vm, "save", 300)
        m_daemons, _ = step(vm, "daemons", 300)
        log("after the restore unit: " + m_daemons.group(1).strip())
        _, t_restored = step(vm, "restore", 60)
        step(vm, "continued", 180)
        serial.assert_continued(before, serial.last_tick(), consecutive=False)
        restore_out = e2elib.read_shared(vm, "restore.out")
        pause = e2elib.pause_of(restore_out)
        e2elib.finish(vm, 1)
        log("RESULT restore unit on modular daemons: boot to stage %.0f s; vmupdate save to "
            "restore unit done %.1f s; guest pause %s s; whole test %.0f s"
            % (t_sd, t_restored - t_save, pause, time.monotonic() - t0))
        log("vmupdate-restore.service output:\n" + restore_out)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
