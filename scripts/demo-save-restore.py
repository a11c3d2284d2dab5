"""Demo part 2: a running guest keeps its RAM across a libvirtd/QEMU restart.

Boots the counter test guest under the system libvirtd, prepares it, saves its
device state only, restarts libvirtd (what a QEMU/libvirt package upgrade does),
restores it and shows the guest carrying on: same boot, counter continuing,
memory checksum unchanged, and the pause libvirt measured."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration", "harness"))
import vmtest  # noqa: E402
import vmucli  # noqa: E402

# The harness logs every command with its whole output as it runs; the demo
# shows each command once, in order, so that log goes to a file.
HARNESS_LOG = os.path.join(vmtest.LOG_DIR, "demo-harness.log")


def _log_to_file(msg):
    os.makedirs(vmtest.LOG_DIR, exist_ok=True)
    with open(HARNESS_LOG, "a") as f:
        f.write("%s\n" % msg)
    if msg.startswith("FAIL"):
        print("%s\n(every command and its output: %s)" % (msg, HARNESS_LOG))


vmtest.log = vmucli.log = _log_to_file
sys.stdout.reconfigure(line_buffering=True)


def show(cmd, r):
    print("\n$ %s" % cmd)
    sys.stdout.write(r.stdout)
    if r.stderr:
        sys.stdout.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit("demo failed: %s exited %d" % (cmd, r.returncode))


def guest_lines(dom, n=3):
    lines = [l for l in dom.serial.lines() if l.startswith("VMUGUEST")]
    for l in lines[-n:]:
        print("   guest> " + l)


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    with vmucli.hook_installed() as daemons:
        with vmtest.TestDomain(kernel, tag="demo", memory_mib=1024, fill_mib=512, start=False) as dom:
            print("\n== 2. Save and restore a running guest across a libvirtd restart")
            print("A 1 GiB guest that filled 512 MiB of RAM with random data and prints a")
            print("counter and the checksum of that memory every second.")
            show("vmupdate prepare " + dom.name, vmucli.vmupdate("prepare", dom.name))
            dom.start()
            before = dom.serial.wait_for_tick(3, timeout=60)
            guest_lines(dom)
            show("vmupdate save " + dom.name, vmucli.vmupdate("save", dom.name))
            size = os.path.getsize(vmucli.image_path(dom.name))
            print("   managed-save image: %d KiB (a stock managed save writes the whole RAM)" % (size // 1024))
            show("vmupdate status", vmucli.vmupdate("status"))
            print("\n$ (restart libvirtd, as a QEMU/libvirt upgrade would)")
            daemons.restart_libvirtd()
            show("vmupdate restore --verbose " + dom.name, vmucli.vmupdate("restore", "--verbose", dom.name))
            after = dom.serial.wait_for_tick(before.tick + 3, timeout=60)
            guest_lines(dom, 4)
            dom.serial.assert_continued(before, after)
            print("\nThe guest continued: same boot id %s, counter %d -> %d, memory checksum %s unchanged."
                  % (after.id, before.tick, after.tick, after.sum))


vmtest.run(main)
