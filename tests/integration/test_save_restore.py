"""vmupdate save / restore on a real libvirtd + QEMU (TCG) with the counter
guest: the guest continues (same boot id, counter continues, RAM checksum
unchanged) across a libvirtd restart, through `vmupdate restore` and through a
plain `virsh start`; the image is device state only."""
import json
import os

import vmtest
import vmucli
from vmtest import log
from vmucli import check, vmupdate

MIB = 1024 * 1024


def start_prepared(dom):
    check("prepare", dom.name)
    dom.start()
    return dom.wait_first_tick()


def saved_checks(dom, ram_mib):
    assert dom.state() == "shut off", dom.state()
    image = vmucli.image_path(dom.name)
    size = os.path.getsize(image)
    log("managed-save image %s: %d bytes for a %d MiB guest" % (image, size, ram_mib))
    assert size < 8 * MIB, "image is %d bytes: not device state only" % size
    uuid = vmucli.uuid_of(dom.name)
    ram = os.path.join(vmucli.preserved_dir(uuid), "pc.ram")
    assert os.path.getsize(ram) == ram_mib * MIB, "preserved RAM %s" % ram
    status = {s["name"]: s for s in json.loads(check("status", "--json").stdout)}[dom.name]
    assert status["saved"] and status["save_state"] == "saved" and status["image_bytes"] == size, status
    return uuid


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    with vmucli.hook_installed() as daemons:
        # save -> libvirtd restart (stands in for a QEMU/libvirt upgrade) -> restore
        with vmtest.TestDomain(kernel, tag="sr", memory_mib=512, fill_mib=128, start=False) as dom:
            start_prepared(dom)
            before = dom.serial.wait_for_tick(3)
            r = check("save", dom.name)
            assert "%s: saved" % dom.name in r.stdout
            uuid = saved_checks(dom, 512)
            daemons.restart_libvirtd()
            dom._start_mark = dom.serial.mark()
            r = check("restore", dom.name)
            assert "guest paused" in r.stdout, r.stdout
            after = dom.serial.wait_for_tick(before.tick + 3, timeout=60)
            dom.serial.assert_continued(before, after)
            assert not os.path.exists(os.path.join(vmucli.STATE_DIR, "manifests", uuid + ".xml"))
            status = {s["name"]: s for s in json.loads(check("status", "--json").stdout)}[dom.name]
            assert status["running"] and not status["saved"] and status["last_pause_us"] > 0, status

            # and again, restored by a plain `virsh start`
            before = dom.serial.wait_for_tick(after.tick + 1)
            check("save", dom.name)
            saved_checks(dom, 512)
            dom.start()
            after = dom.serial.wait_for_tick(before.tick + 3, timeout=60)
            dom.serial.assert_continued(before, after)
            caps = vmtest.virsh("qemu-monitor-command", dom.name, '{"execute":"query-migrate-capabilities"}')
            on = [c for c in json.loads(caps)["return"] if c["capability"] == "x-ignore-shared"][0]["state"]
            assert on is False, "x-ignore-shared left on in the running VM"


vmtest.run(main)
