#include "hold_ram.hpp"

#include "vmupdate/ram.hpp"

namespace vmupdate {

Result<HeldRam> hold_domain_ram(std::string_view backing_dir, std::string_view uuid, int id,
                                std::string_view name, const std::vector<std::string>& ram_files) {
    auto pres = preserved_dir(backing_dir, uuid);
    if (!pres)
        return std::unexpected(pres.error());
    auto ram_dir = find_domain_ram_dir(backing_dir, id, name);
    if (!ram_dir)
        return std::unexpected(ram_dir.error());
    auto held = preserve_ram(*ram_dir, *pres, ram_files);
    if (!held)
        return std::unexpected(held.error());
    return HeldRam{std::move(*pres), std::move(*held)};
}

} // namespace vmupdate
