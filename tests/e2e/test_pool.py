#!/usr/bin/env python3
"""End-to-end: `vmupdate pool list|create` on real (emulated) pmem in a throwaway
host VM (tests/e2e/hostvm.py). Exit 0 pass, 1 fail, 77 skipped.

    python3 tests/e2e/test_pool.py [--nvdimm-only | --memmap-only] [--keep]

NVDIMM (labelled after `ndctl init-labels`):
  - `pool list --json` agrees with `ndctl list -R -N` (regions: size, free;
    namespaces: mode, size, block device);
  - `pool create --size 256M --mount /mnt/pool` makes an fsdax namespace, ext4,
    a DAX mount (/proc/mounts says dax) and /mnt/pool/ram; list shows it mounted;
  - `pool create --size 64G` is refused (exit 2, sizes named) and `ndctl list`
    is unchanged, no mount point left behind;
  - `--configure-libvirt` writes memory_backing_dir into qemu.conf, other lines kept.
Legacy memmap= pmem (label-less e820 region):
  - `pool list` shows the label-less region and its namespace;
  - `pool create --size 64G` is refused (the namespace is smaller);
  - `pool create` uses the whole namespace and says so; DAX mount;
  - again while mounted: refused; after umount: refused (holds ext4 already).
The stages (tests/e2e/stages/pool_nvdimm.sh, pool_memmap.sh) only record
outputs in /shared/out; the assertions run here afterwards.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
import hostvm  # noqa: E402
import vmtest  # noqa: E402
from e2elib import REPO, log  # noqa: E402


def read(vm, name):
    with open(os.path.join(vm.shared, "out", name)) as f:
        return f.read()


def rc(vm, name):
    return int(read(vm, name + ".rc").strip())


def ndctl_json(vm, name):
    """Regions of `ndctl list -R -N` (empty output means none) -> {dev: region}."""
    text = read(vm, name + ".json").strip()
    data = json.loads(text) if text else []
    regions = {}

    def walk(x):
        if isinstance(x, dict):
            if str(x.get("dev", "")).startswith("region"):
                regions[x["dev"]] = x
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(data)
    return regions


def assert_agrees(vm, ours_name, ndctl_name):
    ours = {r["region"]: r for r in json.loads(read(vm, ours_name + ".out"))}
    theirs = ndctl_json(vm, ndctl_name)
    assert set(ours) == set(theirs), "regions differ: ours %s, ndctl %s" % (sorted(ours), sorted(theirs))
    for dev, t in theirs.items():
        o = ours[dev]
        assert o["size"] == t["size"], "%s size %s != ndctl %s" % (dev, o["size"], t["size"])
        assert o["available"] == t.get("available_size", 0), \
            "%s available %s != ndctl %s" % (dev, o["available"], t.get("available_size"))
        tns = {n["dev"]: n for n in t.get("namespaces", [])}
        ons = {n["namespace"]: n for n in o["namespaces"]}
        assert set(ons) == set(tns), "%s namespaces: ours %s, ndctl %s" % (dev, sorted(ons), sorted(tns))
        for nd, tn in tns.items():
            on = ons[nd]
            assert on["mode"] == tn["mode"], "%s mode %s != ndctl %s" % (nd, on["mode"], tn["mode"])
            assert on["size"] == tn["size"], "%s size %s != ndctl %s" % (nd, on["size"], tn["size"])
            want_dev = tn.get("blockdev") or tn.get("chardev", "")
            assert on["blockdev"] == want_dev, "%s device %s != ndctl %s" % (nd, on["blockdev"], want_dev)
    return ours


def guest_files():
    """The counter guest and two domains for the capacity check (64 and 512 MiB)."""
    guest = vmtest.find_test_guest()
    hook = os.environ.get("VMUPDATE_HOOK", os.path.join(REPO, "build", "hooks", "vmupdate-hook"))
    files = {"bin/vmupdate-hook": "@" + hook,
             "bin/vmupdate-restore-helper": "@" + os.path.join(os.path.dirname(hook),
                                                              "vmupdate-restore-helper")}
    for name, mib in (("small", 64), ("big", 512)):
        files.update(e2elib.guest_files("vmu-pool-" + name, guest, xml=name, serial=name,
                                        memory_mib=mib, fill_mib=16))
    return files


def run_stage(vm, stage, steps, cli, extra_files=None):
    vm.start_stage(stage, files=dict({"bin/vmupdate": "@" + cli}, **(extra_files or {})))
    vm.wait_for(r"^VMU-BOOT stage=1 ", 120)
    for s in steps:
        e2elib.step(vm, s, 120)
    vm.wait_for(r"^VMU-STAGE-END stage=1 rc=0", 60)
    vm.wait_exit(60)


def test_nvdimm(work_root, cli, keep):
    wd = e2elib.work_dir("pool-nvdimm", work_root)
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="nvdimm", pmem_size_mib=1024, mem_mib=2048,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        run_stage(vm, "pool_nvdimm", ["raw", "labels", "list1", "create", "big", "conf", "capacity"], cli,
                  extra_files=guest_files())
        # Label-less NVDIMM: the kernel's raw namespace; either DAX works on it
        # or the create is refused and taken back completely.
        ours = assert_agrees(vm, "list0", "ndctl0")
        assert not any(r["labelled"] for r in ours.values()), "labelled before init-labels: %s" % ours
        raw = read(vm, "raw.out")
        log("pool create on the label-less NVDIMM: exit %d: %s" % (rc(vm, "raw"), raw))
        if rc(vm, "raw") == 0:
            assert "dax" in read(vm, "mounts0.txt") and "label-less" in raw, raw
        else:
            assert rc(vm, "raw") == 2 and "DAX" in raw, raw
            assert read(vm, "mounts0.txt") == "", "mount left behind"
            assert not os.path.exists(os.path.join(vm.shared, "out", "pool0-exists")), "/mnt/pool0 left behind"
            assert "TYPE=" not in read(vm, "raw-blkid.txt"), "file system left behind: " + read(vm, "raw-blkid.txt")

        assert rc(vm, "list1") == 0, read(vm, "list1.out")
        ours = assert_agrees(vm, "list1", "ndctl1")
        assert all(r["labelled"] for r in ours.values()), "region not labelled after init-labels: %s" % ours
        log("pool list before:\n" + read(vm, "table1.out"))

        out = read(vm, "create.out")
        assert rc(vm, "create") == 0, "pool create 256M: exit %d: %s" % (rc(vm, "create"), out)
        assert 'memory_backing_dir = "/mnt/pool/ram"' in out, out
        mounts = read(vm, "mounts.txt")
        assert "dax" in mounts and " ext4 " in mounts, "no ext4 DAX mount on /mnt/pool: %r" % mounts
        assert read(vm, "ramdir.txt").strip() == "yes", "no /mnt/pool/ram"
        ours = assert_agrees(vm, "list2", "ndctl2")
        ns = [n for r in ours.values() for n in r["namespaces"]]
        assert len(ns) == 1 and ns[0]["mode"] == "fsdax" and ns[0]["mount"] \
            and ns[0]["mount"]["mount_point"] == "/mnt/pool" and ns[0]["mount"]["dax"], ns
        assert 240 << 20 <= ns[0]["size"] <= 256 << 20, "namespace size %d" % ns[0]["size"]
        log("pool create 256M:\n" + out + "pool list after:\n" + read(vm, "table2.out"))

        big = read(vm, "big.out")
        assert rc(vm, "big") == 2, "pool create 64G: exit %d: %s" % (rc(vm, "big"), big)
        assert "64.0 GiB requested" in big and "free" in big, big
        assert read(vm, "ndctl3.json") == read(vm, "ndctl4.json"), "ndctl list changed by a refused create"
        assert not os.path.exists(os.path.join(vm.shared, "out", "pool2-exists")), "/mnt/pool2 left behind"
        log("pool create 64G (refused): " + big)

        assert rc(vm, "conf") == 0, read(vm, "conf.out")
        conf = read(vm, "qemu.conf")
        assert conf == '# a comment\nmemory_backing_dir = "/mnt/pool3/ram"\nuser = "root"\n', repr(conf)
        small, big = read(vm, "startsmall.out"), read(vm, "startbig.out")
        assert rc(vm, "startsmall") == 0, "64 MiB domain on a 128 MiB pool: %s" % small
        assert "vmu-pool-small" in read(vm, "ramfiles.txt"), read(vm, "ramfiles.txt")
        assert rc(vm, "startbig") != 0 and "cannot start on the pmem pool" in big and "needed" in big, \
            "512 MiB domain on a 128 MiB pool: exit %d: %s" % (rc(vm, "startbig"), big)
        log("start refused: " + big)
    log("nvdimm: %.1f s" % (time.monotonic() - t0))
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)


def test_memmap(work_root, cli, keep):
    wd = e2elib.work_dir("pool-memmap", work_root)
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, mem_mib=2048,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        run_stage(vm, "pool_memmap", ["list1", "big", "create", "refusals"], cli)
        assert rc(vm, "list1") == 0, read(vm, "list1.out")
        ours = assert_agrees(vm, "list1", "ndctl1")
        assert len(ours) == 1, ours
        r = list(ours.values())[0]
        assert not r["labelled"] and r["provider"] == "e820", r
        assert len(r["namespaces"]) == 1 and r["namespaces"][0]["blockdev"] == "pmem0", r
        log("pool list (legacy):\n" + read(vm, "table1.out"))

        big = read(vm, "big.out")
        assert rc(vm, "big") == 2 and "cannot be extended" in big, "exit %d: %s" % (rc(vm, "big"), big)

        out = read(vm, "create.out")
        assert rc(vm, "create") == 0, "pool create (legacy): exit %d: %s" % (rc(vm, "create"), out)
        assert "label-less" in out and "whole namespace" in out, out
        mounts = read(vm, "mounts.txt")
        assert mounts.startswith("/dev/pmem0 /mnt/pool ext4") and "dax" in mounts, mounts
        log("pool create (legacy):\n" + out)

        again = read(vm, "again.out")
        assert rc(vm, "again") == 2 and "in use" in again, "while mounted: %s" % again
        sig = read(vm, "signature.out")
        assert rc(vm, "signature") == 2 and "ext4" in sig and "wipefs" in sig, "after umount: %s" % sig
        log("refusals: " + again + sig)
    log("memmap: %.1f s" % (time.monotonic() - t0))
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)


def main():
    args = sys.argv[1:]
    hostvm.skip_unless_ready(nvdimm=True)
    cli = os.environ.get("VMUPDATE_CLI", os.path.join(REPO, "build", "cli", "vmupdate"))
    if not os.access(cli, os.X_OK):
        vmtest.skip("%s not built" % cli)
    probe = subprocess.run([cli, "pool", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        vmtest.skip("%s has no `pool` command yet: %s" % (cli, probe.stderr.strip()))
    work_root = os.environ.get("VMU_E2E_WORK", hostvm.DEFAULT_WORK_ROOT)
    os.makedirs(work_root, exist_ok=True)
    keep = "--keep" in args
    if "--memmap-only" not in args:
        test_nvdimm(work_root, cli, keep)
    if "--nvdimm-only" not in args:
        test_memmap(work_root, cli, keep)


if __name__ == "__main__":
    hostvm.run(main)
