// Managed-save images as libvirt lays them out (src/qemu/qemu_saveimage.h), for
// tests: header, domain XML, then the start of QEMU's migration stream.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace vmupdate::testing {

/// An image whose stream lists x-ignore-shared when `ignore_shared`; `complete`
/// false gives libvirt's partial magic, `format` its compression field.
inline std::string save_image(bool complete = true, bool ignore_shared = true,
                              std::uint32_t format = 0, const std::string& tail = "") {
    std::string xml = "<domain type='qemu'><name>web1</name></domain>";
    std::uint32_t data_len = static_cast<std::uint32_t>(xml.size() + 13); // zero padding
    std::string out = complete ? "LibvirtQemudSave" : "LibvirtQemudPart";
    auto u32 = [&](std::uint32_t v) {
        char b[4];
        std::memcpy(b, &v, 4);
        out.append(b, 4);
    };
    u32(2);        // version
    u32(data_len); // XML (and cookie) length
    u32(1);        // was_running
    u32(format);
    u32(0); // cookieOffset
    for (int i = 0; i < 14; ++i)
        u32(0);
    out += xml;
    out.append(data_len - xml.size(), '\0');
    // QEVM, version 3, the configuration section: machine name, then the
    // validated capabilities QEMU had on.
    out += std::string("QEVM\0\0\0\x03\x07\0\0\0\x0dpc-i440fx-9.2", 21);
    if (ignore_shared)
        out += std::string("\x01\x0fx-ignore-shared", 17);
    out += "device state of a small guest" + tail;
    return out;
}

} // namespace vmupdate::testing
