// The restoring QEMU's domain XML, as the `restore begin` hook prints it: the
// guest's RAM is already in its file, so that QEMU must neither discard it nor
// preallocate it.
#include "vmupdate/domain_xml.hpp"
#include "xml.hpp"

namespace vmupdate {

Result<RestoreXml> restoring_qemu_xml(std::string_view text) {
    auto doc = xml::parse(text, "restore XML");
    if (!doc)
        return std::unexpected(doc.error());
    xmlNode* root = xmlDocGetRootElement(doc->get());
    if (!xml::is(root, "domain"))
        return fail(Errc::invalid_input, "restore XML", "not a libvirt domain");
    RestoreXml out;
    // A restore that fails once QEMU runs ends in libvirt's SIGTERM; a QEMU with
    // discard-data on would then punch the preserved RAM out of its file (the
    // same inode as vmupdate's link), losing the guest whose image is kept.
    xmlNode* backing = xml::child(root, "memoryBacking");
    for (xmlNode* discard : xml::children(backing, "discard")) {
        xml::remove(discard);
        out.changes.emplace_back("<memoryBacking><discard/> removed");
    }
    for (xmlNode* cell : xml::children(xml::child(xml::child(root, "cpu"), "numa"), "cell"))
        if (xml::attr(cell, "discard") == "yes") {
            xml::remove_attr(cell, "discard");
            out.changes.emplace_back("NUMA cell " + xml::attr(cell, "id") + " discard removed");
        }
    for (xmlNode* mem : xml::children(xml::child(root, "devices"), "memory"))
        if (xml::attr(mem, "discard") == "yes") {
            xml::remove_attr(mem, "discard");
            out.changes.emplace_back("memory device " + xml::attr(mem, "model") +
                                     " discard removed");
        }
    // prealloc=on would make QEMU touch every page of the file before it loads
    // the device state, a cost that grows with the RAM for RAM that is there.
    for (xmlNode* alloc : xml::children(backing, "allocation"))
        if (xml::attr(alloc, "mode") == "immediate") {
            xml::remove(alloc);
            out.changes.emplace_back("<memoryBacking><allocation mode='immediate'/> removed");
        }
    out.xml = xml::serialize(doc->get());
    return out;
}

} // namespace vmupdate
