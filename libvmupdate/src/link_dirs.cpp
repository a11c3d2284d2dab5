#include "link_dirs.hpp"

#include "fsutil.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmupdate::held {
namespace {

// Root's and closed to others: then only root can change what it holds, even
// if the QEMU user renames it or puts something else under its name.
Result<void> check_private(int fd, const std::string& shown) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return fail_errno(errno, shown, "cannot examine directory");
    if (st.st_uid != ::geteuid())
        return fail(Errc::refused, shown, "cannot use directory",
                    "it is owned by " + user_text(st.st_uid) + ", not by " +
                        user_text(::geteuid()) + ": another user made it");
    if ((st.st_mode & 077) != 0)
        return fail(Errc::refused, shown, "cannot use directory",
                    "other users have access to it (mode " + std::to_string((st.st_mode >> 6) & 7) +
                        std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
                        ")");
    return {};
}

} // namespace

Identity identity_of(const struct stat& st) {
    return Identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                    static_cast<std::uint64_t>(st.st_size)};
}

Result<Identity> identity_at(int dir, const std::string& name, const std::string& path,
                             std::string_view domain, std::string_view what) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return fail_errno(errno, std::string(domain), std::string(what) + " " + path);
    if (!S_ISREG(st.st_mode))
        return fail(Errc::verify, std::string(domain), std::string(what) + " " + path,
                    "not a regular file");
    return identity_of(st);
}

Result<void> matches(const RamFile& f, const Identity& id, std::string_view domain,
                     const std::string& path) {
    if (id.device != f.device || id.inode != f.inode)
        return fail(Errc::verify, std::string(domain), "RAM file " + path,
                    "is not the file saved with the domain (device/inode differ)");
    if (id.size != f.size)
        return fail(Errc::verify, std::string(domain), "RAM file " + path,
                    "size is " + std::to_string(id.size) + " bytes, saved with " +
                        std::to_string(f.size));
    return {};
}

// RAM file names come from libvirt's directory listing or a manifest; never let
// one name a path outside the directory.
bool safe_file_name(std::string_view n) {
    return !n.empty() && n != "." && n != ".." && n.find('/') == std::string_view::npos;
}

Split split(std::string_view path) {
    while (path.size() > 1 && path.back() == '/')
        path.remove_suffix(1);
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos)
        return {".", std::string(path)};
    return {slash == 0 ? "/" : std::string(path.substr(0, slash)),
            std::string(path.substr(slash + 1))};
}

Result<HeldDir> open_held(const std::string& preserved, bool create) {
    HeldDir h;
    h.where = split(preserved);
    Split base = split(h.where.dir);
    if (!safe_file_name(h.where.name) || !safe_file_name(base.name))
        return fail(Errc::invalid_input, preserved, "invalid preserved RAM directory");
    auto backing = open_dir_no_links(base.dir);
    if (!backing)
        return std::unexpected(backing.error());
    auto top = create ? make_dir_at(backing->get(), base.name, 0700, std::nullopt, h.where.dir)
                      : open_dir_at(backing->get(), base.name, h.where.dir);
    if (!top)
        return std::unexpected(top.error());
    h.top = std::move(*top);
    if (auto ok = check_private(h.top.get(), h.where.dir); !ok)
        return std::unexpected(ok.error());
    auto dir = create ? make_dir_at(h.top.get(), h.where.name, 0700, std::nullopt, preserved)
                      : open_dir_at(h.top.get(), h.where.name, preserved);
    if (!dir)
        return std::unexpected(dir.error());
    h.dir = std::move(*dir);
    if (auto ok = check_private(h.dir.get(), preserved); !ok)
        return std::unexpected(ok.error());
    return h;
}

Result<VerifiedFile> open_verified(std::string_view domain, const RamFile& f) {
    Split at = split(f.preserved);
    if (!safe_file_name(at.name))
        return fail(Errc::invalid_input, std::string(domain), "invalid preserved RAM file",
                    f.preserved);
    auto held = open_held(at.dir, false);
    if (!held) {
        held.error().step = "preserved RAM file " + f.preserved + ": " + held.error().step + " " +
                            held.error().object;
        held.error().object = std::string(domain);
        return std::unexpected(held.error());
    }
    auto id = identity_at(held->dir.get(), at.name, f.preserved, domain, "preserved RAM file");
    if (!id)
        return std::unexpected(id.error());
    if (auto ok = matches(f, *id, domain, f.preserved); !ok)
        return std::unexpected(ok.error());
    return VerifiedFile{std::move(*held), std::move(at.name)};
}

Result<std::vector<VerifiedFile>> open_all_verified(std::string_view domain,
                                                    const std::vector<RamFile>& ram) {
    if (ram.empty())
        return fail(Errc::verify, std::string(domain), "cannot verify preserved RAM",
                    "no RAM file recorded");
    std::vector<VerifiedFile> out;
    for (const auto& f : ram) {
        auto v = open_verified(domain, f);
        if (!v)
            return std::unexpected(v.error());
        out.push_back(std::move(*v));
    }
    return out;
}

} // namespace vmupdate::held
