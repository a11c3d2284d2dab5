#include "vmupdate/pool.hpp"

#include "fd.hpp"
#include "fsutil.hpp"
#include "mountinfo.hpp"
#include "ndctl.hpp"
#include "process.hpp"

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace vmupdate {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

Result<std::string> read_mountinfo() {
    auto text = read_file("/proc/self/mountinfo", 16u << 20);
    if (!text)
        return std::unexpected(text.error());
    return text;
}

// Device number of /dev/<name> when it is a block device.
std::optional<dev_t> block_dev_number(const std::string& name) {
    struct stat st {};
    if (name.empty() || ::stat(("/dev/" + name).c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
        return std::nullopt;
    return st.st_rdev;
}

// Steps to take back, in reverse order, unless the whole operation succeeded.
class Undo {
public:
    Undo() = default;
    Undo(const Undo&) = delete;
    Undo& operator=(const Undo&) = delete;
    ~Undo() {
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it)
            (*it)();
    }
    void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
    void dismiss() { steps_.clear(); }

private:
    std::vector<std::function<void()>> steps_;
};

const PmemRegion* find_region(const std::vector<PmemRegion>& regions, const std::string& name) {
    for (const auto& r : regions)
        if (r.device == name || r.device == "region" + name)
            return &r;
    return nullptr;
}

// The namespace of a label-less region that create_pool can use whole.
const PmemNamespace* whole_namespace(const PmemRegion& r) {
    for (const auto& n : r.namespaces)
        if (!n.block_device.empty())
            return &n;
    return nullptr;
}

// Picks the region for a pool of `size` bytes: the named one, else the first
// labelled region with room, else (no labelled region at all) the first
// label-less one with an unmounted namespace.
Result<const PmemRegion*> choose_region(const std::vector<PmemRegion>& regions, std::uint64_t size,
                                        const std::optional<std::string>& name) {
    if (regions.empty())
        return fail(Errc::not_found, "pmem", "cannot create a pool",
                    "this host has no pmem region (no NVDIMM, no memmap= region)");
    if (name) {
        if (const PmemRegion* r = find_region(regions, *name))
            return r;
        std::string names;
        for (const auto& r : regions)
            names += (names.empty() ? "" : ", ") + r.device;
        return fail(Errc::not_found, *name, "cannot create a pool",
                    "no such pmem region (there are: " + names + ")");
    }
    const PmemRegion* best_labelled = nullptr;
    for (const auto& r : regions) {
        if (!r.labelled || !r.enabled)
            continue;
        if (r.max_extent >= size)
            return &r;
        if (!best_labelled || r.max_extent > best_labelled->max_extent)
            best_labelled = &r;
    }
    if (best_labelled)
        return best_labelled; // too small: refused with its sizes by the caller
    for (const auto& r : regions) {
        const PmemNamespace* n = whole_namespace(r);
        if (n && !n->mount)
            return &r;
    }
    return fail(Errc::refused, "pmem", "cannot create a pool",
                "every pmem namespace is in use already (see `vmupdate pool list`)");
}

Result<void> check_mount_point(const std::string& mount_point, std::string_view mountinfo) {
    for (const MountEntry& m : parse_mountinfo(mountinfo))
        if (m.mount_point == mount_point)
            return fail(Errc::refused, mount_point, "cannot mount the pool here",
                        "something is mounted on it already");
    std::error_code ec;
    auto st = fs::symlink_status(mount_point, ec);
    if (ec || !fs::exists(st))
        return {};
    if (!fs::is_directory(st))
        return fail(Errc::refused, mount_point, "cannot mount the pool here", "not a directory");
    if (!fs::is_empty(mount_point, ec) || ec)
        return fail(Errc::refused, mount_point, "cannot mount the pool here",
                    "the directory is not empty (the mount would hide its files)");
    return {};
}

// A label-less namespace is used whole and as it is: refuse when anything uses
// it or it holds a file system (perhaps a pool with preserved guest RAM).
Result<void> check_unused(const std::string& dev) {
    Fd fd(::open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    if (!fd) {
        if (errno == EBUSY)
            return fail(Errc::refused, dev, "cannot create a pool",
                        "the device is busy (mounted, or held by another program)");
        return fail_errno(errno, dev, "cannot open the device");
    }
    fd.reset();
    auto probe = run_process({"blkid", "-p", "-o", "value", "-s", "TYPE", dev}, 30s);
    if (!probe)
        return std::unexpected(probe.error());
    // blkid -p: 0 a signature found, 2 nothing found.
    if (probe->exit_code == 0) {
        std::string type = probe->out.substr(0, probe->out.find('\n'));
        return fail(
            Errc::refused, dev, "cannot create a pool",
            "it holds " +
                (type.empty() ? std::string("a file system") : "an " + type + " file system") +
                " already (an earlier pool? mount it instead, or erase it "
                "with `wipefs -a " +
                dev + "` if its data is not needed)");
    }
    if (probe->exit_code != 2)
        return fail(Errc::system, dev, "cannot check the device for a file system",
                    probe->err.empty() ? "blkid failed" : probe->err);
    return {};
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

} // namespace

std::string_view to_string(FsType fs) {
    return fs == FsType::xfs ? "xfs" : "ext4";
}

std::optional<PoolMount> mount_of_device(std::string_view mountinfo, unsigned major,
                                         unsigned minor) {
    const std::string want = std::to_string(major) + ":" + std::to_string(minor);
    for (const MountEntry& e : parse_mountinfo(mountinfo)) {
        if (e.device != want)
            continue;
        PoolMount m;
        m.mount_point = e.mount_point;
        m.fstype = e.fstype;
        m.options = e.options;
        if (!e.super_options.empty())
            m.options += "," + e.super_options;
        m.dax = has_dax_option(m.options);
        return m;
    }
    return std::nullopt;
}

Result<std::vector<PmemRegion>> list_pmem() {
    auto regions = nd::read_regions();
    if (!regions)
        return regions;
    auto mountinfo = read_mountinfo();
    if (!mountinfo)
        return std::unexpected(mountinfo.error());
    for (auto& r : *regions)
        for (auto& n : r.namespaces)
            if (auto dev = block_dev_number(n.block_device))
                n.mount = mount_of_device(*mountinfo, major(*dev), minor(*dev));
    return regions;
}

namespace {

// The mount point as create_pool uses it: absolute, normalised, never "/".
Result<std::string> normal_mount_point(std::string mount_point) {
    if (mount_point.empty() || mount_point[0] != '/')
        return fail(Errc::invalid_input, mount_point, "cannot create a pool",
                    "the mount point must be an absolute path");
    mount_point = fs::path(mount_point).lexically_normal().string();
    while (mount_point.size() > 1 && mount_point.back() == '/')
        mount_point.pop_back();
    if (mount_point == "/")
        return fail(Errc::invalid_input, mount_point, "cannot create a pool",
                    "refusing to mount over /");
    return mount_point;
}

// The region a pool on `mount_point` goes in; everything that can refuse before
// anything changes.
Result<PmemRegion> region_for_pool(const std::string& mount_point, std::uint64_t size,
                                   const std::optional<std::string>& region) {
    auto mountinfo = read_mountinfo();
    if (!mountinfo)
        return std::unexpected(mountinfo.error());
    if (auto ok = check_mount_point(mount_point, *mountinfo); !ok)
        return std::unexpected(ok.error());
    auto regions = list_pmem();
    if (!regions)
        return std::unexpected(regions.error());
    auto chosen = choose_region(*regions, size, region);
    if (!chosen)
        return std::unexpected(chosen.error());
    return **chosen;
}

// Whether labelled region `r` can hold a new namespace of `size` bytes.
Result<void> check_room(const PmemRegion& r, std::uint64_t size) {
    if (size == 0)
        return fail(Errc::invalid_input, r.device, "cannot create a pool",
                    "a labelled region needs a size (--size)");
    if (!r.enabled)
        return fail(Errc::refused, r.device, "cannot create a pool",
                    "the region is disabled (ndctl enable-region " + r.device + ")");
    if (r.max_extent < size)
        return fail(Errc::refused, r.device, "cannot create a pool",
                    format_size(size) + " requested, but the region has only " +
                        format_size(r.available) + " free of " + format_size(r.size) +
                        " (largest free range " + format_size(r.max_extent) +
                        "); nothing was changed");
    return {};
}

// A new fsdax namespace of `size` bytes in labelled region `r`, destroyed again
// by `undo` unless the pool is made.
Result<void> create_namespace(const PmemRegion& r, std::uint64_t size, PoolCreated& out,
                              Undo& undo) {
    if (auto ok = check_room(r, size); !ok)
        return ok;
    // libndctl's create-namespace is a multi-step sysfs dance (seed, uuid,
    // size, pfn seed, enable); ndctl(8) does it and prints the result.
    auto created = run_checked({"ndctl", "create-namespace", "--mode=fsdax",
                                "--size=" + std::to_string(size), "--region=" + r.device},
                               120s);
    if (!created) {
        created.error().object = r.device;
        created.error().step = "cannot create an fsdax namespace of " + format_size(size);
        return std::unexpected(created.error());
    }
    auto json = nlohmann::json::parse(*created, nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("dev") ||
        !json["dev"].is_string())
        return fail(Errc::system, r.device, "cannot read ndctl create-namespace's output",
                    *created);
    out.namespace_dev = json["dev"].get<std::string>();
    out.created_namespace = true;
    undo.add([dev = out.namespace_dev] {
        (void)run_process({"ndctl", "destroy-namespace", "--force", dev}, 60s);
    });
    // Read back what the kernel made (ndctl prints human-readable sizes).
    auto after = list_pmem();
    if (!after)
        return std::unexpected(after.error());
    for (const auto& ar : *after)
        for (const auto& n : ar.namespaces)
            if (n.device == out.namespace_dev) {
                out.block_device = n.block_device.empty() ? "" : "/dev/" + n.block_device;
                out.size = n.size;
            }
    if (out.block_device.empty())
        return fail(Errc::verify, out.namespace_dev, "cannot create a pool",
                    "the new namespace has no block device");
    return {};
}

// The whole namespace of label-less region `r`, as it is; `dax_hint` says why a
// DAX mount of it may fail.
Result<void> use_whole_namespace(const PmemRegion& r, std::uint64_t size, PoolCreated& out,
                                 std::string& dax_hint) {
    const PmemNamespace* n = whole_namespace(r);
    if (!n)
        return fail(Errc::refused, r.device, "cannot create a pool",
                    "the label-less region has no enabled namespace");
    if (n->mode != "fsdax" && n->mode != "raw")
        return fail(Errc::refused, n->device, "cannot create a pool",
                    "the namespace is in " + n->mode +
                        " mode; a pool needs fsdax (label-less regions cannot be "
                        "reconfigured here)");
    if (n->mount)
        return fail(Errc::refused, "/dev/" + n->block_device, "cannot create a pool",
                    "the device is mounted on " + n->mount->mount_point);
    if (size > n->size)
        return fail(Errc::refused, r.device, "cannot create a pool",
                    format_size(size) +
                        " requested, but the label-less region's only "
                        "namespace " +
                        n->device + " has " + format_size(n->size) +
                        " and cannot be extended; nothing was changed");
    if (n->mode == "raw")
        dax_hint = n->device + " is in raw mode, which has no DAX; an NVDIMM becomes divisible "
                               "into fsdax namespaces after `ndctl init-labels`";
    out.namespace_dev = n->device;
    out.block_device = "/dev/" + n->block_device;
    out.size = n->size;
    if (auto ok = check_unused(out.block_device); !ok)
        return ok;
    out.notes.push_back(
        r.device + " is label-less (" +
        (r.provider.empty() ? std::string("no labels") : r.provider) +
        "): it cannot be divided, so its whole namespace " + n->device + " (" +
        format_size(n->size) + ", " + out.block_device + ") is used as it is" +
        (size && size < n->size ? "; --size " + format_size(size) + " ignored" : ""));
    return {};
}

Result<void> make_filesystem(const PoolCreated& out, FsType fstype, Undo& undo) {
    std::vector<std::string> mkfs =
        fstype == FsType::ext4
            // Without -b 4096 mke2fs picks 1 KiB blocks for small devices, which DAX cannot map.
            ? std::vector<std::string>{"mkfs.ext4", "-q", "-F", "-b", "4096", out.block_device}
            // Reflink and DAX exclude each other on the kernels this runs on.
            : std::vector<std::string>{"mkfs.xfs", "-q", "-f", "-m", "reflink=0", out.block_device};
    if (auto made = run_checked(mkfs, 600s); !made) {
        made.error().object = out.block_device;
        made.error().step = "cannot make an " + std::string(to_string(fstype)) + " file system";
        return std::unexpected(made.error());
    }
    if (!out.created_namespace)
        // The namespace held no signature before: leave it that way on failure,
        // so that a retry is not refused for a file system of our own.
        undo.add([dev = out.block_device] { (void)run_process({"wipefs", "-qa", dev}, 60s); });
    return {};
}

// Creates the missing directories of `mount_point`, removed again (deepest
// first, only if empty) by `undo`.
Result<void> make_mount_point(const std::string& mount_point, Undo& undo) {
    std::vector<fs::path> made_dirs;
    std::error_code ec;
    for (fs::path p = mount_point; !fs::exists(p, ec) && p != p.parent_path(); p = p.parent_path())
        made_dirs.push_back(p);
    if (made_dirs.empty())
        return {};
    fs::create_directories(mount_point, ec);
    if (ec)
        return fail(Errc::system, mount_point, "cannot create the mount point", ec.message());
    undo.add([made_dirs] {
        std::error_code ignored;
        for (const auto& d : made_dirs)
            fs::remove(d, ignored);
    });
    return {};
}

// Mounts the new file system with DAX and checks that the kernel kept it.
Result<void> mount_with_dax(const PoolCreated& out, FsType fstype, const std::string& dax_hint,
                            Undo& undo) {
    auto mounted = run_process({"mount", "-t", std::string(to_string(fstype)), "-o", "dax",
                                out.block_device, out.mount_point},
                               120s);
    if (!mounted)
        return std::unexpected(mounted.error());
    if (mounted->exit_code != 0)
        return fail(Errc::refused, out.block_device, "cannot mount with DAX",
                    trimmed(mounted->err) + " (" + dax_hint + "; the pool was taken back)");
    undo.add([mount_point = out.mount_point] { (void)run_process({"umount", mount_point}, 60s); });
    auto info = read_mountinfo();
    if (!info)
        return std::unexpected(info.error());
    auto dev = block_dev_number(out.block_device.substr(5));
    auto m = dev ? mount_of_device(*info, major(*dev), minor(*dev)) : std::nullopt;
    if (!m || !m->dax)
        return fail(Errc::refused, out.block_device, "cannot mount with DAX",
                    "the kernel mounted it without DAX (options: " + (m ? m->options : "?") +
                        "); the pool was taken back");
    return {};
}

// The RAM directory in the mounted pool, and the lines that point libvirt and
// the next boot at it.
Result<void> finish_pool(PoolCreated& out, FsType fstype) {
    out.backing_dir = out.mount_point + "/ram";
    if (auto made = make_dir(out.backing_dir, 0755); !made)
        return made;
    if (auto synced = fsync_path(out.mount_point); !synced)
        return synced;
    out.conf_line = "memory_backing_dir = \"" + out.backing_dir + "\"";
    // A UUID survives pmem device renumbering across boots.
    std::string source = out.block_device;
    if (auto uuid = run_checked({"blkid", "-o", "value", "-s", "UUID", out.block_device}, 30s);
        uuid && !trimmed(*uuid).empty())
        source = "UUID=" + trimmed(*uuid);
    out.fstab_line =
        source + " " + out.mount_point + " " + std::string(to_string(fstype)) + " dax 0 0";
    return {};
}

} // namespace

Result<PoolCreated> create_pool(std::uint64_t size, std::optional<std::string> region,
                                std::string mount_point, FsType fstype) {
    auto where = normal_mount_point(std::move(mount_point));
    if (!where)
        return std::unexpected(where.error());
    auto r = region_for_pool(*where, size, region);
    if (!r)
        return std::unexpected(r.error());
    PoolCreated out;
    out.region = r->device;
    out.mount_point = *where;
    std::string dax_hint = "the kernel or the device lacks DAX support";
    Undo undo; // every step below is taken back unless the pool is made
    auto namespace_ready = r->labelled ? create_namespace(*r, size, out, undo)
                                       : use_whole_namespace(*r, size, out, dax_hint);
    if (!namespace_ready)
        return std::unexpected(namespace_ready.error());
    if (auto ok = make_filesystem(out, fstype, undo); !ok)
        return std::unexpected(ok.error());
    if (auto ok = make_mount_point(out.mount_point, undo); !ok)
        return std::unexpected(ok.error());
    if (auto ok = mount_with_dax(out, fstype, dax_hint, undo); !ok)
        return std::unexpected(ok.error());
    if (auto ok = finish_pool(out, fstype); !ok)
        return std::unexpected(ok.error());
    undo.dismiss();
    return out;
}

} // namespace vmupdate
