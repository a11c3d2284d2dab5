#include "vmupdate/domain_xml.hpp"

#include "xml.hpp"

#include <charconv>
#include <libxml/tree.h>

namespace vmupdate {
namespace {

constexpr std::string_view metadata_element = "managed";
constexpr std::string_view mark_change = "marked as managed by vmupdate";

// Bytes per unit, as libvirt's virScaleInteger reads units: case-insensitive,
// "k"/"KiB" binary, "KB" decimal, KiB when no unit is given.
std::optional<std::uint64_t> unit_scale(std::string_view unit) {
    if (unit.empty())
        return 1024;
    std::string u;
    for (char c : unit)
        u += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (u == "b" || u == "byte" || u == "bytes")
        return 1;
    constexpr std::string_view prefixes = "kmgtpe";
    auto pos = prefixes.find(u[0]);
    if (pos == std::string_view::npos)
        return std::nullopt;
    std::string_view rest = std::string_view(u).substr(1);
    std::uint64_t base = rest == "b" ? 1000 : 1024;
    if (!rest.empty() && rest != "b" && rest != "ib")
        return std::nullopt;
    std::uint64_t scale = 1;
    for (size_t i = 0; i <= pos; ++i)
        scale *= base;
    return scale;
}

// libvirt's <metadata> may hold elements of any namespace; ours is found by URI,
// whatever prefix libvirt or the user gave it.
xmlNode* find_metadata_element(xmlNode* metadata) {
    if (metadata == nullptr)
        return nullptr;
    for (xmlNode* c = metadata->children; c != nullptr; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && c->ns != nullptr && c->ns->href != nullptr &&
            reinterpret_cast<const char*>(c->ns->href) == metadata_namespace &&
            xml::name(c) == metadata_element)
            return c;
    }
    return nullptr;
}

std::vector<xmlNode*> numa_cells(xmlNode* root) {
    return xml::children(xml::child(xml::child(root, "cpu"), "numa"), "cell");
}

// The ids libvirt gives QEMU's memory backends, which name their files in the
// domain's RAM directory (qemu_command.c): the machine's default RAM id without
// NUMA ("pc.ram" on x86 pc and q35, the only machines vmupdate runs), one
// "ram-node<N>" per NUMA cell, and "mem<alias>" for DIMM and virtio-mem devices
// with no file of their own (nvdimm and virtio-pmem always name theirs).
std::vector<std::string> ram_file_names(xmlNode* root, const std::string& machine) {
    std::vector<std::string> names;
    auto cells = numa_cells(root);
    if (cells.empty())
        names.push_back(machine.starts_with("microvm") ? "microvm.ram" : "pc.ram");
    for (size_t i = 0; i < cells.size(); ++i)
        names.push_back("ram-node" + std::to_string(i));
    int dimms = 0;
    int virtio_mems = 0;
    for (xmlNode* mem : xml::children(xml::child(root, "devices"), "memory")) {
        std::string model = xml::attr(mem, "model");
        if (model != "dimm" && model != "virtio-mem")
            continue;
        int& index = model == "dimm" ? dimms : virtio_mems;
        std::string alias = xml::attr(xml::child(mem, "alias"), "name");
        if (alias.empty()) // an inactive definition: the alias libvirt will assign
            alias = (model == "dimm" ? "dimm" : "virtiomem") + std::to_string(index);
        ++index;
        if (xml::child(xml::child(mem, "source"), "path") == nullptr)
            names.push_back("mem" + alias);
    }
    return names;
}

// Elements that conventionally precede <metadata> in libvirt's own output.
xmlNode* metadata_anchor(xmlNode* root) {
    xmlNode* anchor = nullptr;
    for (xmlNode* c = root->children; c != nullptr; c = c->next)
        if (xml::is(c, "name") || xml::is(c, "uuid") || xml::is(c, "genid") ||
            xml::is(c, "title") || xml::is(c, "description"))
            anchor = c;
    return anchor;
}

// libvirt places <memoryBacking> after the memory size elements.
xmlNode* memory_backing_anchor(xmlNode* root) {
    xmlNode* anchor = nullptr;
    for (xmlNode* c = root->children; c != nullptr; c = c->next)
        if (xml::is(c, "maxMemory") || xml::is(c, "memory") || xml::is(c, "currentMemory"))
            anchor = c;
    return anchor ? anchor : metadata_anchor(root);
}

struct Translator {
    xmlNode* root;
    std::string name;
    std::vector<std::string> changes;
    // Whether a domain is vmupdate's under file-backed does not depend on discard,
    // which the save switches off in the running QEMU; prepare still removes it.
    bool keep_discard = false;

    std::unexpected<Error> refuse(std::string element, std::string why) const {
        return fail(Errc::refused, name, "element " + std::move(element), std::move(why));
    }

    Result<void> check_supported() {
        std::string type = xml::attr(root, "type");
        if (type != "qemu" && type != "kvm")
            return refuse(
                "<domain type='" + type + "'>",
                "only QEMU/KVM domains (type 'qemu' or 'kvm') can keep their RAM across a "
                "host update");
        if (xml::child(root, "memory") == nullptr && numa_cells(root).empty())
            return fail(Errc::invalid_input, name, "element <memory>",
                        "missing: the domain sets no memory size");

        xmlNode* backing = xml::child(root, "memoryBacking");
        if (xml::child(backing, "hugepages") != nullptr)
            return refuse("<memoryBacking><hugepages>",
                          "hugepages cannot be preserved: QEMU maps them from a hugetlbfs "
                          "directory and unlinks the file at once, so the RAM dies with QEMU; "
                          "remove <hugepages> to let vmupdate keep the RAM in a file");
        if (xml::child(root, "launchSecurity") != nullptr)
            return refuse("<launchSecurity>",
                          "confidential guests cannot be saved: their memory and device state "
                          "are encrypted and QEMU blocks saving them");

        xmlNode* devices = xml::child(root, "devices");
        for (xmlNode* hostdev : xml::children(devices, "hostdev")) {
            std::string t = xml::attr(hostdev, "type");
            if (t == "pci" || t == "mdev")
                return refuse("<hostdev type='" + t + "'>",
                              "PCI passthrough (vfio) is not supported: the device's state cannot "
                              "be saved without suspending the guest");
        }
        for (xmlNode* iface : xml::children(devices, "interface"))
            if (xml::attr(iface, "type") == "hostdev")
                return refuse("<interface type='hostdev'>",
                              "PCI passthrough (vfio) is not supported: the device's state cannot "
                              "be saved without suspending the guest");

        for (xmlNode* mem : xml::children(devices, "memory")) {
            std::string model = xml::attr(mem, "model");
            // nvdimm and virtio-pmem are backed by the user's own file: a shared one
            // keeps its data there, a private one travels whole in the save image.
            if (model == "nvdimm" || model == "virtio-pmem")
                continue;
            xmlNode* pagesize = xml::child(xml::child(mem, "source"), "pagesize");
            if (pagesize != nullptr) {
                auto kib = to_kib(xml::text(pagesize), xml::attr(pagesize, "unit"));
                if (!kib || *kib > 4)
                    return refuse("<memory model='" + model + "'><source><pagesize>",
                                  "hugepages cannot be preserved: QEMU maps them from a hugetlbfs "
                                  "directory and unlinks the file at once");
            }
        }
        return {};
    }

    void share_ram() {
        xmlNode* backing = xml::child(root, "memoryBacking");
        if (backing == nullptr) {
            backing = xml::add_child(root, "memoryBacking", memory_backing_anchor(root));
            changes.emplace_back("added <memoryBacking>");
        }
        xmlNode* source = xml::child(backing, "source");
        if (source == nullptr) {
            source = xml::add_child(backing, "source");
            xml::set_attr(source, "type", "file");
            changes.emplace_back("RAM source set to file");
        } else if (xml::attr(source, "type") != "file") {
            changes.emplace_back("RAM source " + xml::attr(source, "type") + " changed to file");
            xml::set_attr(source, "type", "file");
        }
        xmlNode* access = xml::child(backing, "access");
        if (access == nullptr) {
            access = xml::add_child(backing, "access", source);
            xml::set_attr(access, "mode", "shared");
            changes.emplace_back("RAM access set to shared");
        } else if (xml::attr(access, "mode") != "shared") {
            changes.emplace_back("RAM access " + xml::attr(access, "mode") + " changed to shared");
            xml::set_attr(access, "mode", "shared");
        }
        // QEMU would punch the RAM out of the file when it exits.
        for (xmlNode* discard :
             keep_discard ? std::vector<xmlNode*>{} : xml::children(backing, "discard")) {
            xml::remove(discard);
            changes.emplace_back("removed <discard/>");
        }

        for (xmlNode* cell : numa_cells(root)) {
            std::string id = xml::attr(cell, "id");
            if (xml::attr(cell, "memAccess") != "shared") {
                xml::set_attr(cell, "memAccess", "shared");
                changes.emplace_back("NUMA cell " + id + " memAccess set to shared");
            }
            if (!keep_discard && xml::attr(cell, "discard") == "yes") {
                xml::remove_attr(cell, "discard");
                changes.emplace_back("NUMA cell " + id + " discard removed");
            }
        }

        // Hotplugged DIMMs and virtio-mem get their own file in the same directory;
        // they follow the same rules as the main RAM.
        for (xmlNode* mem : xml::children(xml::child(root, "devices"), "memory")) {
            std::string model = xml::attr(mem, "model");
            if (model != "dimm" && model != "virtio-mem")
                continue;
            if (xml::has_attr(mem, "access") && xml::attr(mem, "access") != "shared") {
                xml::set_attr(mem, "access", "shared");
                changes.emplace_back("memory device " + model + " access set to shared");
            }
            if (!keep_discard && xml::attr(mem, "discard") == "yes") {
                xml::remove_attr(mem, "discard");
                changes.emplace_back("memory device " + model + " discard removed");
            }
        }
    }

    void mark_managed() {
        xmlNode* metadata = xml::child(root, "metadata");
        if (find_metadata_element(metadata) != nullptr)
            return;
        if (metadata == nullptr)
            metadata = xml::add_child(root, "metadata", metadata_anchor(root));
        xmlNode* mark = xml::add_child(metadata, metadata_element);
        std::string href(metadata_namespace);
        xmlNs* ns = xmlNewNs(mark, reinterpret_cast<const xmlChar*>(href.c_str()),
                             reinterpret_cast<const xmlChar*>("vmupdate"));
        xmlSetNs(mark, ns);
        xml::set_attr(mark, "version", "1");
        changes.emplace_back(mark_change);
    }
};

Result<std::pair<xml::Doc, std::string>> parse_domain(std::string_view text,
                                                      std::string_view source) {
    auto doc = xml::parse(text, source);
    if (!doc)
        return std::unexpected(doc.error());
    xmlNode* root = xmlDocGetRootElement(doc->get());
    if (!xml::is(root, "domain"))
        return fail(Errc::invalid_input, std::string(source), "not a libvirt domain",
                    "root element is <" + std::string(xml::name(root)) + ">, expected <domain>");
    std::string name = xml::text(xml::child(root, "name"));
    if (name.empty())
        return fail(Errc::invalid_input, std::string(source), "element <name>",
                    "missing: a domain needs a name");
    return std::pair{std::move(*doc), std::move(name)};
}

constexpr std::string_view qemu_namespace = "http://libvirt.org/schemas/domain/qemu/1.0";
constexpr std::string_view monitor_id = "vmupdate-qmp";

bool in_qemu_ns(const xmlNode* n, std::string_view local) {
    return n != nullptr && n->type == XML_ELEMENT_NODE && n->ns != nullptr &&
           n->ns->href != nullptr && reinterpret_cast<const char*>(n->ns->href) == qemu_namespace &&
           xml::name(n) == local;
}

xmlNode* qemu_commandline(xmlNode* root) {
    for (xmlNode* c = root->children; c != nullptr; c = c->next)
        if (in_qemu_ns(c, "commandline"))
            return c;
    return nullptr;
}

// Removes the "-chardev socket,id=vmupdate-qmp,..." and "-mon chardev=vmupdate-qmp,..."
// argument pairs; returns whether anything was removed.
bool remove_monitor_args(xmlNode* root) {
    xmlNode* cmdline = qemu_commandline(root);
    if (cmdline == nullptr)
        return false;
    std::vector<xmlNode*> args;
    for (xmlNode* c = cmdline->children; c != nullptr; c = c->next)
        if (in_qemu_ns(c, "arg"))
            args.push_back(c);
    // Only the exact option/value pairs add_private_monitor writes: a user's own
    // chardev may mention "vmupdate-qmp," in a path, and each argument must be
    // removed at most once.
    const std::string chardev_value = "socket,id=" + std::string(monitor_id) + ",";
    const std::string mon_value = "chardev=" + std::string(monitor_id) + ",";
    std::vector<xmlNode*> doomed;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
        std::string option = xml::attr(args[i], "value");
        std::string value = xml::attr(args[i + 1], "value");
        if ((option == "-chardev" && value.starts_with(chardev_value)) ||
            (option == "-mon" && value.starts_with(mon_value))) {
            doomed.push_back(args[i]);
            doomed.push_back(args[i + 1]);
            ++i;
        }
    }
    for (xmlNode* n : doomed)
        xml::remove(n);
    bool empty = true;
    for (xmlNode* c = cmdline->children; c != nullptr; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            empty = false;
    if (empty && !doomed.empty())
        xml::remove(cmdline);
    return !doomed.empty();
}

} // namespace

Result<std::string> add_private_monitor(std::string_view text, std::string_view socket_path) {
    if (socket_path.find(',') != std::string_view::npos)
        return fail(Errc::invalid_input, std::string(socket_path), "invalid monitor socket path",
                    "QEMU option values cannot contain ','");
    auto parsed = parse_domain(text, "restore XML");
    if (!parsed)
        return std::unexpected(parsed.error());
    xmlNode* root = xmlDocGetRootElement(parsed->first.get());
    remove_monitor_args(root);
    xmlNode* cmdline = qemu_commandline(root);
    xmlNs* ns = nullptr;
    if (cmdline == nullptr) {
        std::string href(qemu_namespace);
        ns = xmlSearchNsByHref(root->doc, root, reinterpret_cast<const xmlChar*>(href.c_str()));
        if (ns == nullptr)
            ns = xmlNewNs(root, reinterpret_cast<const xmlChar*>(href.c_str()),
                          reinterpret_cast<const xmlChar*>("qemu"));
        cmdline = xml::add_child(root, "commandline");
        xmlSetNs(cmdline, ns);
    } else {
        ns = cmdline->ns;
    }
    auto arg = [&](const std::string& value) {
        xmlNode* a = xml::add_child(cmdline, "arg");
        xmlSetNs(a, ns);
        xml::set_attr(a, "value", value);
    };
    // server=off: QEMU connects to root's socket, on which the helper already
    // listens, rather than listening itself. Every QEMU runs as one user and
    // Debian's kernels do not mediate connect(): a monitor QEMU listened on could
    // be reached by another domain's QEMU; root's listener checks the peer's pid
    // and hangs up on anyone else. No reconnect: once the helper is done, the
    // monitor is gone for good. The connect happens at QEMU's start, long before
    // libvirt begins the incoming migration; a helper that is gone makes QEMU
    // fail to start (ECONNREFUSED), and the save stays for a retry.
    arg("-chardev");
    arg("socket,id=" + std::string(monitor_id) + ",path=" + std::string(socket_path) +
        ",server=off");
    arg("-mon");
    arg("chardev=" + std::string(monitor_id) + ",mode=control");
    return xml::serialize(parsed->first.get());
}

Result<std::optional<std::string>> strip_private_monitor(std::string_view text) {
    auto parsed = parse_domain(text, "domain XML");
    if (!parsed)
        return std::unexpected(parsed.error());
    if (!remove_monitor_args(xmlDocGetRootElement(parsed->first.get())))
        return std::optional<std::string>{};
    return std::optional<std::string>{xml::serialize(parsed->first.get())};
}

std::optional<std::uint64_t> to_kib(std::string_view value, std::string_view unit) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || ptr != value.data() + value.size())
        return std::nullopt;
    auto scale = unit_scale(unit);
    if (!scale)
        return std::nullopt;
    if (n != 0 && *scale > UINT64_MAX / n)
        return std::nullopt;
    std::uint64_t bytes = n * *scale;
    return bytes / 1024 + (bytes % 1024 != 0 ? 1 : 0);
}

Result<void> check_domain_name(std::string_view name) {
    if (name.empty() || name.size() > 200 || name == "." || name == "..")
        return fail(Errc::invalid_input, std::string(name), "invalid domain name",
                    "must be 1 to 200 bytes and not '.' or '..'");
    for (char c : name)
        if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return fail(Errc::invalid_input, std::string(name), "invalid domain name",
                        "must not contain '/' or control characters");
    return {};
}

namespace {

Result<Translation> translate(std::string_view text, std::string_view source, bool keep_discard) {
    auto parsed = parse_domain(text, source);
    if (!parsed)
        return std::unexpected(parsed.error());
    auto& [doc, name] = *parsed;
    Translator t{xmlDocGetRootElement(doc.get()), name, {}, keep_discard};
    if (auto ok = t.check_supported(); !ok)
        return std::unexpected(ok.error());
    t.share_ram();
    t.mark_managed();
    return Translation{std::move(name), xml::serialize(doc.get()), std::move(t.changes)};
}

} // namespace

Result<Translation> translate_domain(std::string_view text, std::string_view source) {
    return translate(text, source, false);
}

namespace {

// What translate_domain would change besides the mark and discard; an error when
// it refuses.
Result<std::vector<std::string>> changes_needed(std::string_view text, std::string_view source) {
    auto t = translate(text, source, true);
    if (!t)
        return std::unexpected(t.error());
    std::erase(t->changes, std::string(mark_change));
    return std::move(t->changes);
}

} // namespace

std::string why_unmanaged(std::string_view text, const DomainInfo& info, ManagePolicy policy) {
    if (info.managed)
        return {};
    auto needed = changes_needed(text, info.name);
    if (!needed)
        return "cannot be preserved: " + needed.error().step + ": " + needed.error().cause;
    if (needed->empty())
        return "not marked for vmupdate (manage = " + std::string(to_string(policy)) +
               "): run 'vmupdate prepare " + info.name + "'";
    std::string what;
    for (const auto& c : *needed)
        what += (what.empty() ? "" : "; ") + c;
    return "its definition needs: " + what + "; run 'vmupdate prepare " + info.name +
           "' and cold-start it";
}

Result<DomainInfo> inspect_domain(std::string_view text, std::string_view source,
                                  ManagePolicy policy) {
    auto parsed = parse_domain(text, source);
    if (!parsed)
        return std::unexpected(parsed.error());
    auto& [doc, name] = *parsed;
    xmlNode* root = xmlDocGetRootElement(doc.get());
    DomainInfo info;
    info.name = name;
    info.uuid = xml::text(xml::child(root, "uuid"));
    info.type = xml::attr(root, "type");
    info.marked = find_metadata_element(xml::child(root, "metadata")) != nullptr;
    info.managed = info.marked;
    xmlNode* backing = xml::child(root, "memoryBacking");
    info.shared_file_ram = xml::attr(xml::child(backing, "source"), "type") == "file" &&
                           xml::attr(xml::child(backing, "access"), "mode") == "shared";
    if (std::string id = xml::attr(root, "id"); !id.empty()) {
        int v = -1;
        auto [ptr, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
        info.id = ec == std::errc{} && ptr == id.data() + id.size() ? v : -1;
    }
    info.machine = xml::attr(xml::child(xml::child(root, "os"), "type"), "machine");
    info.ram_files = ram_file_names(root, info.machine);
    // The same places translate_domain clears: any one zeroes RAM on QEMU's exit.
    if (xml::child(backing, "discard") != nullptr)
        info.discard = "<memoryBacking><discard/>";
    for (xmlNode* cell : numa_cells(root))
        if (info.discard.empty() && xml::attr(cell, "discard") == "yes")
            info.discard = "NUMA cell " + xml::attr(cell, "id") + " discard='yes'";
    for (xmlNode* mem : xml::children(xml::child(root, "devices"), "memory"))
        if (info.discard.empty() && xml::attr(mem, "discard") == "yes")
            info.discard = "memory device " + xml::attr(mem, "model") + " discard='yes'";
    auto cells = numa_cells(root);
    info.numa_cells = static_cast<int>(cells.size());
    if (xmlNode* mem = xml::child(root, "memory")) {
        info.memory_kib = to_kib(xml::text(mem), xml::attr(mem, "unit")).value_or(0);
    } else {
        for (xmlNode* cell : cells)
            info.memory_kib +=
                to_kib(xml::attr(cell, "memory"), xml::attr(cell, "unit")).value_or(0);
    }
    // A definition a management layer regenerates loses the mark: under
    // file-backed it is vmupdate's when preparing it would change nothing else.
    if (!info.marked && policy == ManagePolicy::file_backed)
        if (auto needed = changes_needed(text, source); needed && needed->empty())
            info.managed = true;
    return info;
}

} // namespace vmupdate
