"""Guest memory outside shared files travels in the image even with
x-ignore-shared (here a private NVDIMM whose backing file holds data). Such an
image is larger than half the RAM, but QEMU wrote it with x-ignore-shared on, so
only vmupdate can restore it: `save` keeps it as a vmupdate save (with a
warning) and `vmupdate restore` continues the guest. It used to drop the
manifest and say `virsh start` would restore it, which QEMU then refused
(capability mismatch): a VM nobody could restore."""
import json
import os

import vmtest
import vmucli
from vmtest import log
from vmucli import check

MIB = 1024 * 1024
RAM_MIB = 128
NVDIMM_MIB = 128


def nvdimm_xml(dom, nv_path):
    """The counter guest with one NUMA cell (NVDIMMs need one) and a private NVDIMM."""
    xml = vmtest.domain_xml(dom.name, dom.kernel, RAM_MIB, 16, dom.serial_path)
    xml = xml.replace("  <memory unit='MiB'>%d</memory>\n" % RAM_MIB,
                      "  <maxMemory slots='2' unit='MiB'>%d</maxMemory>\n"
                      "  <memory unit='MiB'>%d</memory>\n" % (RAM_MIB + NVDIMM_MIB + 64,
                                                              RAM_MIB + NVDIMM_MIB), 1)
    # Memory devices need ACPI.
    xml = xml.replace("  <clock offset='utc'/>\n",
                      "  <features><acpi/></features>\n"
                      "  <cpu><numa><cell id='0' cpus='0' memory='%d' unit='MiB'/></numa></cpu>\n"
                      "  <clock offset='utc'/>\n" % RAM_MIB, 1)
    xml = xml.replace("    <memballoon model='none'/>\n",
                      "    <memballoon model='none'/>\n"
                      "    <memory model='nvdimm' access='private'>\n"
                      "      <source><path>%s</path></source>\n"
                      "      <target><size unit='MiB'>%d</size><node>0</node></target>\n"
                      "    </memory>\n" % (nv_path, NVDIMM_MIB), 1)
    return xml


def main():
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    with vmucli.hook_installed():
        dom = vmtest.TestDomain(kernel, tag="nvdimm", start=False)
        nv_path = os.path.join(dom.stage, "nvdimm.img")
        dom.xml = nvdimm_xml(dom, nv_path)
        os.makedirs(dom.stage, exist_ok=True)
        with open(nv_path, "wb") as f:  # data, so that QEMU sends every page
            f.write(os.urandom(NVDIMM_MIB * MIB))
        with dom:
            check("prepare", dom.name)
            dom.start()
            before = dom.wait_first_tick()
            r = check("save", dom.name)
            assert "not in a shared file" in r.stderr, r.stderr
            image = vmucli.image_path(dom.name)
            size = os.path.getsize(image)
            log("image of a guest with a %d MiB private NVDIMM: %d bytes" % (NVDIMM_MIB, size))
            assert size > RAM_MIB * MIB // 2, size
            status = {s["name"]: s for s in json.loads(check("status", "--json").stdout)}[dom.name]
            assert status["save_state"] == "saved", status
            check("restore", dom.name)
            after = dom.serial.wait_for_tick(before.tick + 2, timeout=60, since=before.line)
            dom.serial.assert_continued(before, after)


vmtest.run(main)
