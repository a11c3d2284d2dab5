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
The stages only record outputs in /shared; the assertions run here afterwards.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostvm  # noqa: E402
import vmtest  # noqa: E402

log = hostvm.log
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

COMMON = "#!/bin/sh\n" + r"""
up() { read -r u _ < /proc/uptime; echo "$u"; }
ok() { echo "VMU-STEP $1 ok uptime=$(up) $2"; }
B=/shared/bin
S=/shared/out
mkdir -p $S
# rec NAME CMD...: stdout+stderr to $S/NAME.out, exit code to $S/NAME.rc, echoed on the console
rec() { n=$1; shift; echo "+ $*"; "$@" > $S/$n.out 2>&1; echo $? > $S/$n.rc; cat $S/$n.out; }
ndlist() { ndctl list -R -N > $S/$1.json 2>&1; }
"""

STAGE_NVDIMM = COMMON + r"""
modprobe nfit 2>/dev/null; modprobe dax_pmem 2>/dev/null
# label-less NVDIMM: one raw namespace over the whole region
ndlist ndctl0; rec list0 $B/vmupdate pool list --json
rec raw $B/vmupdate pool create --mount /mnt/pool0
grep ' /mnt/pool0 ' /proc/mounts > $S/mounts0.txt
[ -e /mnt/pool0 ] && echo yes > $S/pool0-exists
blkid -p /dev/pmem0 > $S/raw-blkid.txt 2>&1
umount /mnt/pool0 2>/dev/null; wipefs -qa /dev/pmem0 2>/dev/null
ok raw
ndctl disable-region all && ndctl init-labels all && ndctl enable-region all || echo "VMU-STEP labels FAIL"
ok labels
ndlist ndctl1; rec list1 $B/vmupdate pool list --json; rec table1 $B/vmupdate pool list
ok list1
rec create $B/vmupdate pool create --size 256M --mount /mnt/pool
grep ' /mnt/pool ' /proc/mounts > $S/mounts.txt; cat $S/mounts.txt
[ -d /mnt/pool/ram ] && echo yes > $S/ramdir.txt
ndlist ndctl2; rec list2 $B/vmupdate pool list --json; rec table2 $B/vmupdate pool list
ok create
ndlist ndctl3
rec big $B/vmupdate pool create --size 64G --mount /mnt/pool2
ndlist ndctl4
[ -e /mnt/pool2 ] && echo yes > $S/pool2-exists
ok big
printf '# a comment\nmemory_backing_dir = "/old"\nuser = "root"\n' > /etc/libvirt/qemu.conf
rec conf $B/vmupdate pool create --size 128M --mount /mnt/pool3 --configure-libvirt
cp /etc/libvirt/qemu.conf $S/qemu.conf
ok conf
# Capacity: with memory_backing_dir on the 128 MiB pool, a managed domain of
# 64 MiB starts and one of 512 MiB is refused at start by the hook.
V="virsh -c qemu:///system"
$B/vmupdate hook install --hook $B/vmupdate-hook > /dev/null
virtlogd -d
setsid tini -s -- libvirtd > $S/libvirtd.log 2>&1 < /dev/null &
i=0; until $V version > /dev/null 2>&1; do i=$((i+1)); [ $i -lt 900 ] || break; sleep 0.2; done
for d in small big; do $B/vmupdate translate /shared/guest/$d.xml > /tmp/$d.xml && $V define /tmp/$d.xml; done
rec startsmall $V start vmu-pool-small
rec startbig $V start vmu-pool-big
find /mnt/pool3/ram -name pc.ram > $S/ramfiles.txt
$V destroy vmu-pool-small
ok capacity
kill $(cat /run/libvirtd.pid) 2>/dev/null; sleep 1
umount /mnt/pool /mnt/pool3
"""

STAGE_MEMMAP = COMMON + r"""
ndlist ndctl1; rec list1 $B/vmupdate pool list --json; rec table1 $B/vmupdate pool list
ok list1
rec big $B/vmupdate pool create --size 64G --mount /mnt/pool
ok big
rec create $B/vmupdate pool create --mount /mnt/pool
grep ' /mnt/pool ' /proc/mounts > $S/mounts.txt; cat $S/mounts.txt
rec list2 $B/vmupdate pool list --json
ok create
rec again $B/vmupdate pool create --mount /mnt/pool2
umount /mnt/pool
rec signature $B/vmupdate pool create --mount /mnt/pool2
ok refusals
"""


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
    files = {"guest/counter-guest.elf": "@" + guest, "bin/vmupdate-hook": "@" + hook,
             "bin/vmupdate-restore-helper": "@" + os.path.join(os.path.dirname(hook),
                                                              "vmupdate-restore-helper")}
    for name, mib in (("small", 64), ("big", 512)):
        files["guest/%s.xml" % name] = vmtest.domain_xml("vmu-pool-" + name, "/shared/guest/counter-guest.elf",
                                                          memory_mib=mib, fill_mib=16,
                                                          serial_log="/shared/guest/%s.serial" % name)
    return files


def run_stage(vm, stage, steps, cli, extra_files=None):
    vm.start(stage, files=dict({"bin/vmupdate": "@" + cli}, **(extra_files or {})))
    vm.wait_for(r"^VMU-BOOT stage=1 ", 120)
    for s in steps:
        _, t = vm.wait_for(r"VMU-STEP %s ok\b" % s, 120)
        log("step %s ok at %.1fs" % (s, t))
    vm.wait_for(r"^VMU-STAGE-END stage=1 rc=0", 60)
    vm.wait_exit(60)


def test_nvdimm(work_root, cli, keep):
    wd = os.path.join(work_root, "pool-nvdimm-%d" % os.getpid())
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="nvdimm", pmem_size_mib=1024, mem_mib=2048,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        run_stage(vm, STAGE_NVDIMM, ["raw", "labels", "list1", "create", "big", "conf", "capacity"], cli,
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
    wd = os.path.join(work_root, "pool-memmap-%d" % os.getpid())
    t0 = time.monotonic()
    with hostvm.HostVM(wd, pmem="memmap", pmem_size_mib=512, mem_mib=2048,
                       cache_dir=os.path.join(work_root, "cache")) as vm:
        run_stage(vm, STAGE_MEMMAP, ["list1", "big", "create", "refusals"], cli)
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
