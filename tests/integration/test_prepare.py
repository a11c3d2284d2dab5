"""`vmupdate prepare` against a real system libvirtd: the persistent definition
becomes file-backed and shared, QEMU really gets a shared memory-backend-file
under memory_backing_dir, running domains are left alone, refusals change
nothing."""
import os
import re
import subprocess

import vmtest
from vmtest import log

CLI = os.environ.get("VMUPDATE_CLI", "vmupdate")


def vmupdate(*args):
    r = subprocess.run([CLI, "-c", vmtest.URI, *args], capture_output=True, text=True, timeout=120)
    log("vmupdate %s -> %d\n  stdout: %s\n  stderr: %s" % (" ".join(args), r.returncode,
                                                          r.stdout.strip(), r.stderr.strip()))
    return r


def memory_backing_dir():
    try:
        with open("/etc/libvirt/qemu.conf") as f:
            for line in f:
                m = re.match(r'\s*memory_backing_dir\s*=\s*"([^"]*)"', line)
                if m:
                    return m.group(1)
    except FileNotFoundError:
        pass
    return "/var/lib/libvirt/qemu/ram"


def fs_type(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    vmtest.LibvirtDaemons().ensure()
    backing = memory_backing_dir()

    with vmtest.TestDomain(kernel, tag="prep", start=False) as dom:
        r = vmupdate("prepare", dom.name)
        assert r.returncode == 0, r.stderr
        assert "%s: prepared" % dom.name in r.stdout, r.stdout
        assert "next cold start" not in r.stdout, "domain was not running"
        if fs_type(backing) not in ("tmpfs", "ramfs"):
            assert "disk filesystem" in r.stderr, "no warning for %s on %s" % (backing, fs_type(backing))
        xml = vmtest.virsh("dumpxml", "--inactive", dom.name)
        assert "urn:vmupdate:domain:1" in xml, xml
        assert "<source type='file'/>" in xml and "<access mode='shared'/>" in xml, xml

        r = vmupdate("prepare", dom.name)
        assert r.returncode == 0 and "already prepared" in r.stdout, r.stdout
        assert vmtest.virsh("dumpxml", "--inactive", dom.name) == xml, "second prepare changed the definition"

        dom.start()
        dom.wait_first_tick()
        backends = dom.memory_backends()
        log("QEMU memory backends: %s" % backends)
        files = [b for b in backends if b.get("qom-type") == "memory-backend-file"]
        assert files, "QEMU got no memory-backend-file: %s" % backends
        ram = files[0]
        assert ram.get("share") is True, "backend not shared: %s" % ram
        path = ram.get("mem-path", "")
        assert path.startswith(backing.rstrip("/") + "/"), "mem-path %s not under %s" % (path, backing)
        assert os.path.getsize(path) == 256 * 1024 * 1024, "RAM file size %d" % os.path.getsize(path)

    # A running domain: the definition changes, the running QEMU does not.
    with vmtest.TestDomain(kernel, tag="prep-running") as dom:
        dom.wait_first_tick()
        live_before = vmtest.virsh("dumpxml", dom.name)
        r = vmupdate("prepare", dom.name)
        assert r.returncode == 0, r.stderr
        assert "next cold start" in r.stdout, r.stdout
        # Prepared again while still running on anonymous RAM: still says so.
        r = vmupdate("prepare", dom.name)
        assert "already prepared" in r.stdout and "next cold start" in r.stdout, r.stdout
        assert vmtest.virsh("dumpxml", dom.name) == live_before, "live definition changed"
        assert not [b for b in dom.memory_backends() if b.get("qom-type") == "memory-backend-file"]
        assert "urn:vmupdate:domain:1" in vmtest.virsh("dumpxml", "--inactive", dom.name)

    # Refusals change nothing and exit 2.
    with vmtest.TestDomain(kernel, tag="prep-huge", start=False) as dom:
        # Redefine the domain with hugepages (libvirt accepts it without starting).
        open_xml = vmtest.virsh("dumpxml", "--inactive", dom.name)
        huge = open_xml.replace("<vcpu", "<memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n  <vcpu", 1)
        path = os.path.join(vmtest.LOG_DIR, dom.name + ".xml")
        with open(path, "w") as f:
            f.write(huge)
        vmtest.virsh("define", path)
        os.unlink(path)
        before = vmtest.virsh("dumpxml", "--inactive", dom.name)
        r = vmupdate("prepare", dom.name)
        assert r.returncode == 2, r.returncode
        assert r.stdout == "", r.stdout
        assert re.search(r"^vmupdate: %s: element <memoryBacking><hugepages>: hugepages cannot be preserved"
                         % re.escape(dom.name), r.stderr, re.M), r.stderr
        assert vmtest.virsh("dumpxml", "--inactive", dom.name) == before, "refused prepare changed the domain"

    r = vmupdate("prepare", "vmut-no-such-domain")
    assert r.returncode == 2 and "vmut-no-such-domain: no such domain" in r.stderr, r.stderr


vmtest.run(main)
