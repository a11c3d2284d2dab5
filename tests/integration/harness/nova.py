"""Nova-shaped domains for the integration tests: the counter guest's definition
with Nova's own <metadata> and <sysinfo> from the corpus (tests/corpus/nova/)
and file_backed_memory's <memoryBacking>, and vmupdate's `manage` setting."""
import os
import re
import xml.etree.ElementTree as ET

from vmtest import log

CONF = "/etc/vmupdate/vmupdate.conf"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NOVA_XML = os.path.join(REPO, "tests", "corpus", "nova", "instance-file-backed.xml")


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
    and file_backed_memory's <memoryBacking> (plus, when asked, what Nova adds
    where QEMU supports it: <allocation mode='immediate'/> and <discard/>)."""
    metadata, sysinfo = nova_parts()
    xml = dom.xml
    backing = "<source type='file'/>\n    <access mode='shared'/>\n"
    if discard:
        backing += "    <allocation mode='immediate'/>\n    <discard/>\n"
    xml = xml.replace("  <vcpu>", "  " + metadata + "\n  <memoryBacking>\n    " + backing +
                      "  </memoryBacking>\n  " + sysinfo + "\n  <vcpu>", 1)
    xml = xml.replace("  </os>", "    <smbios mode='sysinfo'/>\n  </os>", 1)
    return xml


def set_policy(value):
    os.makedirs(os.path.dirname(CONF), exist_ok=True)
    with open(CONF, "w") as f:
        f.write("# written by an integration test (harness/nova.py)\nmanage = %s\n" % value)
    log("%s: manage = %s" % (CONF, value))
