#!/usr/bin/env python3
"""End-to-end: `vmupdate host-update` in a throwaway host VM (tests/e2e/hostvm.py).

The host VM (QEMU TCG, this machine's kernel and root over 9p, legacy pmem from
memmap=, root overlay on a disk so libvirt's and vmupdate's state persist) runs
its own libvirtd with memory_backing_dir on a DAX mount of the pmem. Inside, the
counter guest (nested TCG) is prepared and started. Then:
  - host-update with a command line that lacks the pmem region: refused (exit 2),
    nothing paused, the guest keeps running;
  - host-update --dry-run: the plan, nothing paused;
  - host-update for real: the guest is saved, the host VM kexecs into the same
    kernel; stage 2 (what vmupdate-restore.service does at boot: libvirtd up,
    `vmupdate restore --all`) restores it.
Asserted from the logs: the host VM really rebooted (new boot id) and the guest
continued (same boot id, counter continues, memory checksum unchanged).

With --systemd the host VM boots with systemd as PID 1 and this machine's
enabled units (libvirtd and virtlogd by socket, libvirt-guests): the pmem is
mounted from /etc/fstab, vmupdate-restore.service (the unit the build made, only
its ExecStart pointed at the binary under test) is enabled, host-update ends
with `systemctl kexec` (a clean shutdown: a unit's ExecStop leaves a witness),
and at boot the unit restores the guest before the stage runs. With AppArmor
confining libvirt there, the stage also checks that the restore socket rule is
per domain: in two profiles named as libvirt names a domain's (libvirt-UUID),
domain A's QEMU user may not create or remove a socket in domain B's attempt
directory (nor in one named as before the rule was scoped), B may in its own
(step aa-scope; whether the kernel checks connect() is reported).
With --systemd --root DIR the host VM boots DIR instead (tests/package/test-deb
--host-update: a fresh Debian 13 root with the vmupdate .deb, its own kernel,
systemd, AppArmor): the hook link, the enabled restore unit and the AppArmor
rule are the package's, and host-update runs the installed /usr/bin/vmupdate.
The stages: tests/e2e/stages/host_update_pmem.sh, host_update_systemd.sh.
Exit 0 pass, 1 fail, 77 skipped."""
import hashlib
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import REPO, log, step  # noqa: E402

GUEST = "vmu-e2e-update"


def check_confinement(when, text, root="/"):
    """With AppArmor installed in the VM's root, the host VM (Debian's kernel,
    AppArmor on by default) loads libvirt's profiles at boot: the guest's QEMU
    must run confined by its libvirt-UUID profile, in enforce mode, also the
    restored one."""
    log("AppArmor %s: %s" % (when, text.strip()))
    if not os.path.exists(os.path.join(root, "sbin/apparmor_parser")):
        return
    assert "apparmor=yes" in text, "AppArmor is not confining libvirt in the host VM: " + text
    assert re.search(r"qemu=libvirt-[0-9a-f-]{36}_\(enforce\)", text), \
        "the guest's QEMU %s is not confined by libvirt's profile: %s" % (when, text)


def main_systemd(cli, hook, helper, guest, work_root, root="/"):
    """root "/": this machine's system with the build tree's files; another root
    (tests/package/test-deb --host-update: Debian 13 with the .deb installed)
    is booted with its own kernel and its installed vmupdate."""
    installed = root != "/"
    unit = os.environ.get("VMUPDATE_RESTORE_UNIT",
                          os.path.join(REPO, "build", "vmupdate-restore.service"))
    if not os.path.exists(os.path.join(root, "lib/systemd/systemd")):
        vmtest.skip("systemd is not installed in %s (the host VM boots it)" % root)
    if installed:
        for f in ("usr/bin/vmupdate", "usr/sbin/vmupdate-hook", "usr/sbin/kexec"):
            if not os.path.exists(os.path.join(root, f)):
                vmtest.skip("%s missing in %s" % (f, root))
    elif not os.path.exists(unit):
        vmtest.skip("%s not built" % unit)
    wd = os.path.join(work_root, "host-update-systemd-%d" % os.getpid())
    t0 = time.monotonic()
    files = e2elib.guest_files(GUEST, guest)
    if not installed:
        files.update(e2elib.bin_files(cli, hook, helper))
        files.update({"bin/vmupdate-restore.service": "@" + unit,
                      "bin/apparmor-vmupdate":
                          "@" + os.path.join(REPO, "packaging/apparmor/libvirt-qemu.d-vmupdate")})
    # libvirt's capabilities cache is per QEMU binary: one per root
    cache = os.path.join(work_root, "cache" if not installed else
                         "cache-" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8])
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True, init="systemd",
                       cache_dir=cache, root=root) as vm:
        vm.start_stage("host_update_systemd", {"GUEST": GUEST, "INSTALLED": int(installed)},
                       files=files)
        _, t_sd = step(vm, "systemd", 600)
        if installed:
            m_pkg, _ = step(vm, "package", 120)
            log("installed: " + m_pkg.group(1).strip())
        elif os.path.exists("/sbin/apparmor_parser"):
            # hook install refused the build tree's hook: libvirtd could not run it.
            step(vm, "aa-refused", 600)
        step(vm, "libvirtd", 300)
        m_guest, _ = step(vm, "guest", 300)
        check_confinement("before the update", m_guest.group(1), root)
        if os.path.exists(os.path.join(root, "sbin/apparmor_parser")):
            # The restore socket rule is per domain (the stage's aa_scope).
            m_aa, _ = step(vm, "aa-scope", 180)
            log("AppArmor, restore sockets: " + m_aa.group(1).strip())
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        before = serial.last_tick()
        _, t_update = vm.wait_for(r"^VMU-HOST-UPDATE start", 120)
        # From the share, not the console: systemctl kexec may stop the stage
        # before its `cat` of the output reaches the serial line.
        m, t_kexec = vm.wait_file("update.out", r"saved (\d+) domain\(s\) in ([0-9.]+) s; "
                                  r"state synced; kexec now \(systemctl kexec\)", 300)
        assert m.group(1) == "1", m.group(0)
        _, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 600)
        m_restored, t_restored = step(vm, "restore", 300)
        check_confinement("after the restore", m_restored.group(1), root)
        step(vm, "shutdown", 60)
        step(vm, "continued", 180)
        serial.assert_continued(before, serial.last_tick(), consecutive=False)
        restore_out = e2elib.read_shared(vm, "restore.out")
        pause = e2elib.pause_of(restore_out)
        e2elib.finish(vm, 2, exit_timeout=180)
        log("RESULT host-update (systemd%s): boot to stage 1 %.0f s; save %s s; systemctl kexec "
            "(clean shutdown) + boot + libvirtd + vmupdate-restore.service %.1f s; guest pause "
            "%s s; whole test %.0f s"
            % (", installed package in " + root if installed else "", t_sd, m.group(2),
               t_restored - t_kexec, pause, time.monotonic() - t0))
        log("vmupdate-restore.service output:\n" + restore_out)
    shutil.rmtree(wd, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if "--root" in args:
        # Debian 13 + the installed package: its own kernel, tools and vmupdate
        root = args[args.index("--root") + 1]
        if os.geteuid() != 0:
            vmtest.skip("the host VM tests need root")
        guest = vmtest.find_test_guest()
        return main_systemd(None, None, None, guest, e2elib.WORK_ROOT, root=root)
    hostvm.skip_unless_ready()
    guest = vmtest.find_test_guest()
    cli, hook, helper = e2elib.binaries()
    work_root = e2elib.WORK_ROOT
    if "--systemd" in sys.argv[1:]:
        return main_systemd(cli, hook, helper, guest, work_root)
    wd = os.path.join(work_root, "host-update-%d" % os.getpid())
    t0 = time.monotonic()
    files = dict(e2elib.guest_files(GUEST, guest), **e2elib.bin_files(cli, hook, helper))
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, persist_root=True,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        vm.start_stage("host_update_pmem", {"GUEST": GUEST}, files=files)
        step(vm, "libvirtd", 300)
        step(vm, "guest", 300)
        serial = vmtest.SerialLog(os.path.join(vm.shared, "guest", "counter.serial"))
        e2elib.refused_and_dry_run(vm, "the pmem region")
        before = serial.last_tick()
        _, t_update = vm.wait_for(r"^VMU-HOST-UPDATE start", 120)
        m, t_kexec = vm.wait_for(r"saved (\d+) domain\(s\) in ([0-9.]+) s; state synced; kexec now", 300)
        save_s = float(m.group(2))
        assert m.group(1) == "1", m.group(0)
        _, t_boot2 = vm.wait_for(r"^VMU-BOOT stage=2 boot_id=(\S+)", 300)
        _, t_lv2 = step(vm, "libvirtd2", 300)
        _, t_restored = step(vm, "restore", 300)
        step(vm, "continued", 180)
        after = serial.last_tick()
        serial.assert_continued(before, after, consecutive=False)
        restore_out = e2elib.read_shared(vm, "restore.out")
        pause = e2elib.pause_of(restore_out)
        e2elib.finish(vm, 2)
        log("RESULT host-update: save %.2f s (vmupdate), host-update command to kexec %.1f s, "
            "kexec + boot + libvirtd up %.1f s (of which libvirtd start %.1f s), restore %.1f s; "
            "guest pause (libvirt Suspended -> Resumed, across the kexec) %s s; whole test %.0f s"
            % (save_s, t_kexec - t_update, t_lv2 - t_kexec, t_lv2 - t_boot2, t_restored - t_lv2,
               pause, time.monotonic() - t0))
        log("restore output:\n" + restore_out)
    shutil.rmtree(wd, ignore_errors=True)


vmtest.run(main)
