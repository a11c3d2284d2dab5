"""`manage = file-backed` (/etc/vmupdate/vmupdate.conf) on a real libvirtd + QEMU:
a domain as OpenStack Nova defines it with `[libvirt] file_backed_memory` — Nova's
own <metadata> and <sysinfo> taken from a Nova-generated XML of the corpus
(tests/corpus/nova/), shared file RAM, and no vmupdate mark, never prepared — is
saved by `vmupdate save` and restored by `vmupdate restore`, and the guest
continues (same boot id, counter on, memory checksum unchanged). Under
`manage = marked` the same domain is refused (exit 2, still running) and
`vmupdate status` says why. Nova's `<allocation mode='immediate'/>` and
`<discard/>` (file_backed_memory) are taken as they are: the save switches
discard-data off in the running QEMU, the restoring QEMU starts without discard
or preallocation, the guest continues across two save/restore rounds and the
persistent definition stays byte for byte what Nova wrote."""
import json
import os
import re

import vmtest
import vmucli
from nova import CONF, NOVA_XML, nova_domain_xml, set_policy
from vmtest import log
from vmucli import check, vmupdate

MARK = "urn:vmupdate:domain:1"


def status_of(name):
    return {s["name"]: s for s in json.loads(check("status", "--json").stdout)}[name]


def discarding(dom):
    """{backend id: discard-data} of the running QEMU, asked through QOM."""
    out = {}
    for b in dom.memory_backends():
        q = json.dumps({"execute": "qom-get", "arguments": {
            "path": "/objects/" + b["id"], "property": "discard-data"}})
        out[b["id"]] = json.loads(vmtest.virsh("qemu-monitor-command", dom.name, q,
                                               quiet=True))["return"]
    return out


def discard_rounds(dom):
    """Two save/restore rounds of a discarding domain: the guest continues, the
    restored QEMU neither discards nor preallocates, the persistent XML is Nova's."""
    before = dom.wait_first_tick()
    persistent = vmtest.virsh("dumpxml", "--inactive", dom.name, quiet=True)
    assert "<discard/>" in persistent and "immediate" in persistent, persistent
    assert discarding(dom) == {"pc.ram": True}, discarding(dom)
    st = status_of(dom.name)
    assert st["managed"] and st["unmanaged_why"] == "", st
    for round in (1, 2):
        before = dom.serial.wait_for_tick(before.tick + 2, since=before.line)
        saved = check("save", dom.name)
        assert "%s: saved" % dom.name in saved.stdout, saved.stdout
        assert dom.state() == "shut off"
        size = os.path.getsize(vmucli.image_path(dom.name))
        assert size < 8 * 1024 * 1024, "image %d bytes: not device state only" % size
        r = check("restore", dom.name)
        assert "guest paused" in r.stdout, r.stdout
        after = dom.serial.wait_for_tick(before.tick + 3, timeout=60, since=before.line)
        dom.serial.assert_continued(before, after)
        # Only the first round's QEMU had discard on (Nova's XML); the restored one never.
        switched = "discard switched off in 1 memory backend" in saved.stdout
        assert switched == (round == 1), saved.stdout
        backends = dom.memory_backends()
        assert [b["id"] for b in backends] == ["pc.ram"], backends
        assert not backends[0].get("discard-data") and not backends[0].get("prealloc"), backends
        assert discarding(dom) == {"pc.ram": False}, discarding(dom)
        now = vmtest.virsh("dumpxml", "--inactive", dom.name, quiet=True)
        assert now == persistent, "persistent definition changed:\n%s\n---\n%s" % (persistent, now)
        log("round %d: guest continued, persistent XML unchanged" % round)
        before = after


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

            # Nova's <discard/> and <allocation mode='immediate'/>, never prepared.
            set_policy("file-backed")
            dom = vmtest.TestDomain(kernel, tag="novad", memory_mib=256, fill_mib=64, start=False)
            dom.xml = nova_domain_xml(dom, discard=True)
            with dom:
                dom.start()
                discard_rounds(dom)
    finally:
        if old is None:
            vmtest._unlink(CONF)
        else:
            with open(CONF, "w") as f:
                f.write(old)


vmtest.run(main)
