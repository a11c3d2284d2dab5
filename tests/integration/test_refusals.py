"""Refusals that keep the guest running (exit 2, nothing changed), each of which
used to end in a VM that nobody could restore:
- libvirtd not running vmupdate's hook (not installed, or installed after the
  daemon started): the image could then be restored by no one.
A `<discard/>` added to a prepared domain (as Nova does), which used to be
refused, is saved: the save switches discard-data off in the running QEMU
first (without that, QEMU would punch the RAM out of its file on exit and the
restore would map zeroes), and the guest continues with its memory checksum.
And the stock `virsh managedsave` of a managed domain no longer pins the old
RAM (its image holds it)."""
import os

import vmtest
import vmucli
from vmtest import log
from vmucli import check, vmupdate


def prepared_xml(dom):
    """The domain's persistent definition after `vmupdate prepare`."""
    return vmtest.virsh("dumpxml", "--inactive", "--security-info", dom.name, quiet=True)


def redefine(dom, xml):
    path = os.path.join(dom.stage, "redefined.xml")
    with open(path, "w") as f:
        f.write(xml)
    vmtest.virsh("define", path)


def assert_still_running(dom, before):
    assert dom.state() == "running", dom.state()
    # Only lines after `before`: the log also holds the ticks of earlier boots.
    after = dom.serial.wait_for_tick(before.tick + 2, timeout=60, since=before.line)
    dom.serial.assert_continued(before, after)
    return after


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    with vmucli.hook_installed() as daemons:
        with vmtest.TestDomain(kernel, tag="discard", start=False) as dom:
            check("prepare", dom.name)
            xml = prepared_xml(dom)
            assert "<access mode='shared'/>" in xml, xml
            redefine(dom, xml.replace("<access mode='shared'/>", "<access mode='shared'/>\n    <discard/>"))
            dom.start()
            before = dom.wait_first_tick()
            r = check("save", dom.name)
            assert "discard switched off in 1 memory backend" in r.stdout, r.stdout
            check("restore", dom.name)
            before = assert_still_running(dom, before)
            uuid = vmucli.uuid_of(dom.name)
            assert not os.path.exists(os.path.join(vmucli.STATE_DIR, "manifests", uuid + ".xml"))
            # Prepared again and cold-started, the same domain saves and restores.
            check("prepare", dom.name)
            dom.destroy()
            dom.start()
            before = dom.wait_first_tick()
            check("save", dom.name)
            check("restore", dom.name)
            assert_still_running(dom, before)

            # A stock managed save holds the whole RAM in its image: the hook
            # drops the preserved RAM instead of keeping two copies.
            before = dom.serial.wait_for_tick(before.tick + 1, since=before.line)
            assert os.path.exists(os.path.join(vmucli.preserved_dir(uuid), "pc.ram"))
            dom.managedsave()
            assert not os.path.exists(vmucli.preserved_dir(uuid)), "stock save pinned the old RAM"
            dom.start()
            before = assert_still_running(dom, before)

            # The hook not installed: refused, the guest runs on.
            check("hook", "uninstall")
            r = vmupdate("save", dom.name)
            assert r.returncode == 2 and "hook is not installed" in r.stderr, r.stderr
            before = assert_still_running(dom, before)
            # Installed after the daemon started (here: the daemon restarted
            # without it): libvirt does not run it yet.
            daemons.restart_libvirtd()
            check("hook", "install", "--hook", os.path.abspath(vmucli.HOOK))
            r = vmupdate("save", dom.name)
            assert r.returncode == 2 and "does not run vmupdate's hook" in r.stderr, r.stderr
            assert "restart libvirtd" in r.stderr, r.stderr
            before = assert_still_running(dom, before)
            # Restarted with the hook: it runs (`reconnect begin`), save works.
            daemons.restart_libvirtd()
            check("save", dom.name)
            check("restore", dom.name)
            assert_still_running(dom, before)
            log("all refusals left the guest running")


vmtest.run(main)
