"""With vmupdate's hook installed, stock libvirt flows keep working: `virsh
managedsave` + `virsh start` of a prepared domain (a full-RAM image, which the
hook must leave alone) and of an unmanaged domain (for which the hook must do
nothing at all)."""
import os

import vmtest
import vmucli
from vmtest import log
from vmucli import check

MIB = 1024 * 1024


def stock_cycle(dom, ram_mib):
    before = dom.serial.wait_for_tick(2)
    dom.managedsave()
    size = os.path.getsize(vmucli.image_path(dom.name))
    log("stock managed-save image: %d bytes" % size)
    # The stock path writes the RAM: the image is not device state only.
    assert size > 16 * MIB, "stock image unexpectedly small: %d" % size
    dom.start()
    after = dom.serial.wait_for_tick(before.tick + 3, timeout=60)
    dom.serial.assert_continued(before, after)


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    with vmucli.hook_installed():
        with vmtest.TestDomain(kernel, tag="stock-prep", fill_mib=64, start=False) as dom:
            check("prepare", dom.name)
            dom.start()
            dom.wait_first_tick()
            uuid = vmucli.uuid_of(dom.name)
            stock_cycle(dom, 256)
            # The hook kept holding the (new) RAM file and recorded no vmupdate save.
            assert os.path.exists(os.path.join(vmucli.preserved_dir(uuid), "pc.ram"))
            assert not os.path.exists(os.path.join(vmucli.STATE_DIR, "manifests", uuid + ".xml"))
            dom.destroy()
            assert not os.path.exists(vmucli.preserved_dir(uuid)), "RAM of a stopped domain not dropped"

        with vmtest.TestDomain(kernel, tag="stock-plain", fill_mib=64) as dom:
            dom.wait_first_tick()
            uuid = vmucli.uuid_of(dom.name)
            stock_cycle(dom, 256)
            assert not os.path.exists(vmucli.preserved_dir(uuid)), "hook touched an unmanaged domain"
            with open(vmucli.HOOK_LOG) as f:
                assert dom.name not in f.read(), "hook logged activity for an unmanaged domain"


vmtest.run(main)
