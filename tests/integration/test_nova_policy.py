"""`manage = file-backed` (/etc/vmupdate/vmupdate.conf) on a real libvirtd + QEMU:
a domain as OpenStack Nova defines it with `[libvirt] file_backed_memory` — Nova's
own <metadata> and <sysinfo> taken from a Nova-generated XML of the corpus
(tests/corpus/nova/), shared file RAM, and no vmupdate mark, never prepared — is
saved by `vmupdate save` and restored by `vmupdate restore`, and the guest
continues (same boot id, counter on, memory checksum unchanged). Under
`manage = marked` the same domain is refused (exit 2, still running); the
Nova-style `<discard/>` is refused under file-backed too, and `vmupdate status`
says why for each."""
import json
import os
import re
import xml.etree.ElementTree as ET

import vmtest
import vmucli
from vmtest import log
from vmucli import check, vmupdate

CONF = "/etc/vmupdate/vmupdate.conf"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOVA_XML = os.path.join(REPO, "tests", "corpus", "nova", "instance-file-backed.xml")
MARK = "urn:vmupdate:domain:1"


def nova_parts():
    """Nova's <metadata> and <sysinfo> elements, as text, from the corpus file."""
    text = open(NOVA_XML).read()
    ET.fromstring(text)  # well-formed
    parts = []
    for tag in ("metadata", "sysinfo"):
        # Nova's bytes as they are (prefixes and all), not a re-serialisation.
        m = re.search(r"<%s\b.*?</%s>" % (tag, tag), text, re.S)
        assert m, "%s has no <%s>" % (NOVA_XML, tag)
        parts.append(m.group(0))
    assert "openstack.org/xmlns/libvirt/nova" in parts[0], parts[0]
    return parts


def nova_domain_xml(dom, discard=False):
    """The counter guest's definition with Nova's metadata, sysinfo, smbios mode
    and file_backed_memory's <memoryBacking> (plus <discard/> when asked)."""
    metadata, sysinfo = nova_parts()
    xml = dom.xml
    backing = "<source type='file'/>\n    <access mode='shared'/>\n"
    if discard:
        backing += "    <discard/>\n"
    xml = xml.replace("  <vcpu>", "  " + metadata + "\n  <memoryBacking>\n    " + backing +
                      "  </memoryBacking>\n  " + sysinfo + "\n  <vcpu>", 1)
    xml = xml.replace("  </os>", "    <smbios mode='sysinfo'/>\n  </os>", 1)
    return xml


def set_policy(value):
    os.makedirs(os.path.dirname(CONF), exist_ok=True)
    with open(CONF, "w") as f:
        f.write("# written by integration.nova_policy\nmanage = %s\n" % value)
    log("%s: manage = %s" % (CONF, value))


def status_of(name):
    return {s["name"]: s for s in json.loads(check("status", "--json").stdout)}[name]


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    if not os.path.exists(NOVA_XML):
        raise AssertionError("Nova corpus file missing: %s" % NOVA_XML)
    old = open(CONF).read() if os.path.exists(CONF) else None
    try:
        with vmucli.hook_installed():
            set_policy("file-backed")
            dom = vmtest.TestDomain(kernel, tag="nova", memory_mib=256, fill_mib=64, start=False)
            dom.xml = nova_domain_xml(dom)
            with dom:
                dom.start()
                before = dom.wait_first_tick()
                live = vmtest.virsh("dumpxml", dom.name, quiet=True)
                assert MARK not in live and "nova:instance" in live, live
                st = status_of(dom.name)
                assert st["managed"] and st["unmanaged_why"] == "", st

                # Saved and restored through the policy, never prepared.
                before = dom.serial.wait_for_tick(before.tick + 2)
                r = check("save", dom.name)
                assert "%s: saved" % dom.name in r.stdout, r.stdout
                assert dom.state() == "shut off"
                size = os.path.getsize(vmucli.image_path(dom.name))
                assert size < 8 * 1024 * 1024, "image %d bytes: not device state only" % size
                r = check("restore", dom.name)
                assert "guest paused" in r.stdout, r.stdout
                after = dom.serial.wait_for_tick(before.tick + 3, timeout=60, since=before.line)
                dom.serial.assert_continued(before, after)
                assert MARK not in vmtest.virsh("dumpxml", "--inactive", dom.name, quiet=True)

                # The same domain under `marked`: refused, untouched, and status says why.
                set_policy("marked")
                r = vmupdate("save", dom.name)
                assert r.returncode == 2 and "does not manage" in r.stderr, r.stderr
                assert dom.state() == "running"
                st = status_of(dom.name)
                assert not st["managed"] and "not marked for vmupdate" in st["unmanaged_why"], st
                text = check("status").stdout
                assert re.search(r"not preservable: not marked for vmupdate", text), text
                after = dom.serial.wait_for_tick(after.tick + 2, timeout=60, since=after.line)
                dom.serial.assert_continued(before, after, consecutive=False)

            # Nova's <discard/> (file_backed_memory_discard): refused under file-backed.
            set_policy("file-backed")
            dom = vmtest.TestDomain(kernel, tag="novad", start=False)
            dom.xml = nova_domain_xml(dom, discard=True)
            with dom:
                dom.start()
                before = dom.wait_first_tick()
                r = vmupdate("save", dom.name)
                assert r.returncode == 2, r
                assert dom.state() == "running"
                st = status_of(dom.name)
                assert not st["managed"] and "discarded when QEMU exits" in st["unmanaged_why"], st
                after = dom.serial.wait_for_tick(before.tick + 2, timeout=60, since=before.line)
                dom.serial.assert_continued(before, after)
    finally:
        if old is None:
            vmtest._unlink(CONF)
        else:
            with open(CONF, "w") as f:
                f.write(old)


vmtest.run(main)
