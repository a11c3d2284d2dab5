"""hostvm: a throwaway "host" VM for vmupdate's end-to-end tests (Python 3 stdlib only).

vmupdate's real job (keep VMs across a kexec host update) cannot be tested on
the test machine itself: kexec there would take the machine down. HostVM boots
a QEMU (TCG) VM that runs THIS machine's installed system -- its kernel from
/boot, its root file system shared read-only over 9p -- with a writable
overlay on top, pmem for guest RAM and a 9p share for control and results.
Inside it the test runs libvirtd, starts nested guests (TCG in TCG) and may
kexec the VM's kernel as often as it likes.

    import hostvm
    with hostvm.HostVM("/var/tmp/vmupdate-e2e/t1", pmem="memmap") as vm:
        vm.start(STAGE_SH)                  # shell script run as root inside
        vm.wait_for(r"VMU-STEP pmem ok", 120)
        vm.wait_exit(300)                   # the VM powers off after the stage

How the VM is put together
--------------------------
* kernel: /boot/vmlinuz-<ver> of this machine (the newest one that has
  /lib/modules/<ver>; $VMU_E2E_KERNEL overrides), booted with -kernel/-initrd.
* initramfs (built here from busybox-static and cached in `cache_dir`, key =
  hash of everything in it): /init insmods the modules listed in MODULES
  (with their dependencies, resolved with modinfo; built-ins are skipped),
  mounts the outer root read-only over 9p (mount tag `hostroot`), puts an
  overlay on it whose upper layer is a tmpfs (default) or, with
  persist_root=True, an ext4 file system on a virtio disk (so everything
  written in the VM -- libvirt's managed-save images and domain definitions,
  /var/lib/vmupdate -- survives a kexec, as on a real host's disk), hides
  the outer machine's libvirt/vmupdate state (HIDE_DIRS, see below), mounts
  the per-VM host directory `shared` read-write at /shared (tag `vmushared`),
  fresh tmpfs on /run and /tmp, and switch_roots into the overlay with
  `tini -- /bin/sh /run/vmu/init2` as PID 1 (tini reaps orphans at once).
* init2 finds the stage number in the kernel command line (`vmu_stage=N`,
  default 1) -- or in /shared/.vmu/next-stage if that file exists (it is
  consumed; for kexecs done by something that reuses the command line,
  e.g. `vmupdate host-update --reuse-cmdline`) -- records the boot id
  (/shared/.vmu/boot_ids, one line "<stage> <boot_id> <uptime>" per boot; `VMU-BOOT stage=N boot_id=...` on
  the serial console), runs `/bin/sh /shared/stage.sh N` with its output
  appended to /shared/stage.log AND copied to the serial console, writes
  /shared/.vmu/stage-N.rc, prints `VMU-STAGE-END stage=N rc=RC` and powers
  the VM off -- unless /run/vmu/stay-up exists (then it idles; stop() it).
* Environment of stage.sh: VMU_STAGE, VMU_BOOT_ID, VMU_KERNEL (the running
  kernel, /boot/vmlinuz-`uname -r` through the 9p root), VMU_INITRD (a copy
  of our initramfs in /shared/.vmu), VMU_BASE_CMDLINE (this boot's command
  line without vmu_stage=; e.g. for `vmupdate host-update --kernel
  $VMU_KERNEL --initrd $VMU_INITRD --append "$VMU_BASE_CMDLINE vmu_stage=2"`),
  VMU_SHARED=/shared, PATH with the outer machine's tools (virsh, libvirtd,
  kexec, ndctl, mkfs.ext4, ...; the build tree is visible at its outer path).
  No systemd (init="tini", the default): the stage starts `virtlogd -d` and
  `setsid tini -s -- libvirtd &` itself, and does what boot-time units would
  do. With init="systemd" (`vmu_init=systemd`), /lib/systemd/systemd is PID 1
  instead, the outer machine's enabled units start (SYSTEMD_MASK excepted; the
  outer /etc/fstab is replaced by an empty one and /.dockerenv hidden, or
  systemd would think it runs in a container and reboot instead of kexec),
  and init2 runs as vmu-stage.service after libvirtd, libvirt-guests and
  vmupdate-restore.service.
* `/run/vmu/vmu-kexec N [extra cmdline words]` loads the same kernel and
  initramfs with the same command line but vmu_stage=N and executes it
  (`kexec -l` + `sync` + `kexec -e`). Unmount or at least sync the pmem file
  system first. The new kernel runs the same stage.sh with VMU_STAGE=N.
* pmem: "memmap" reserves `pmem_size_mib` at `pmem_offset_mib` of the VM's
  RAM with memmap=SIZE!OFFSET (legacy e820 pmem, /dev/pmem0, keeps its data
  across kexec because the new kernel gets the same memmap= option);
  "nvdimm" adds an emulated NVDIMM backed by `<work_dir>/nvdimm.img` (label
  area 128K; inside: ndctl init-labels / create-namespace); None: no pmem.
* Serial console -> <work_dir>/serial.log; a reader thread stamps every line
  with the time since QEMU started (serial.ts.log, and `VMU-*` lines are also
  echoed to the test log). QEMU's own output -> <work_dir>/qemu.log.

Hidden outer state (HIDE_DIRS): the overlay's lower layer is the outer
machine's live root, including the state of the libvirtd that runs there.
The inner libvirtd must not see it: outer persistent domains
(/etc/libvirt/qemu/*.xml, autostart links: it would load, and maybe start,
them), hooks (/etc/libvirt/hooks: somebody's test hook would run inside),
secrets and storage pools, /var/lib/libvirt (managed-save images, RAM files,
per-domain dirs of running outer domains), /var/log/libvirt (outer logs;
appending to one would copy it up), and vmupdate's state and logs
(/var/lib/vmupdate, /var/log/vmupdate, the integration harness dirs). Each is
replaced by an empty directory with the same owner and mode (for
/var/lib/libvirt and /var/log/libvirt: with the same subdirectories, empty),
done with an overlay whiteout + opaque directory, so it is an ordinary
directory inside (and persists with persist_root). /etc/libvirt's
configuration files (qemu.conf, libvirtd.conf, ...) stay visible; writing
one copies it up into the overlay, the outer file is never touched (the 9p
export is read-only).

API (host side)
---------------
HostVM(work_dir, pmem="memmap"|"nvdimm"|None, pmem_size_mib=512 (nvdimm: 1024),
       pmem_offset_mib=1024, mem_mib=3072, smp=2, persist_root=False, ...)
  .start(stage_text, files={relpath: str | bytes | "@/host/file"})  boot, returns at once
  .start_stage(name, env={VAR: value}, files=...)  the same with stages/NAME.sh
  .wait_for(regex, timeout, since=0) -> (re.Match, seconds since spawn)
        on serial lines; raises VMFailed on a failure line (DEFAULT_FAIL:
        `VMU-STEP x FAIL`, init fatal, kernel panic, non-zero stage end),
        on QEMU exit or timeout
  .wait_exit(timeout) -> QEMU exit code;  .stop() kills QEMU (also __exit__)
  .shared (host path of /shared), .serial_path, .lines(), .mark(), .stage_log(),
  .boot_ids() -> [(stage, boot_id, uptime)], .stage_rc(stage), .qmp(cmd),
  .t_first_serial, .elapsed(), .dump_logs()
require_prerequisites() raises Skip, skip_unless_ready() exits 77;
build_initramfs(cache_dir, kver); find_kernel(); run(main) = vmtest.run.
Markers on the console: VMU-INIT, VMU-BOOT stage=N boot_id=..., VMU-STAGE-START,
VMU-STAGE-END stage=N rc=RC, VMU-KEXEC stage=N, VMU-STAY-UP, VMU-POWEROFF.

Everything is logged with timestamps relative to the test start (vmtest.log).
"""

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "integration", "harness"))
import vmtest  # noqa: E402  (log, Skip, skip, run, domain_xml, find_test_guest)

log = vmtest.log
Skip = vmtest.Skip
SKIP_EXIT = vmtest.SKIP_EXIT

# Modules the initramfs loads (in this order, dependencies first; missing or
# built-in ones are skipped). virtio + 9p + overlay to reach the root, virtio
# disk + ext4 for persist_root, libnvdimm & co. for pmem. Everything else is
# loaded after switch_root by modprobe from the real /lib/modules.
MODULES = [
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "overlay",
    "virtio_blk", "crc32c_generic", "crc32c_intel", "crc16", "mbcache", "jbd2", "ext4",
    "libnvdimm", "nd_btt", "nd_pmem", "nd_e820", "nfit", "dax_pmem", "device_dax",
]

# Outer directories replaced by empty ones inside the VM (see module docstring).
HIDE_DIRS = [
    "/etc/libvirt/qemu", "/etc/libvirt/hooks", "/etc/libvirt/secrets", "/etc/libvirt/storage",
    "/var/lib/libvirt", "/var/log/libvirt",
    "/var/lib/vmupdate", "/var/log/vmupdate",
    "/var/lib/vmupdate-tests", "/var/log/vmupdate-tests",
]
# Of those, directories whose subdirectories (2 levels, no files, no
# per-domain `domain-*` dirs) are recreated empty with the outer owner/mode.
SKELETON_DIRS = ["/var/lib/libvirt", "/var/log/libvirt"]

# Units masked in a host VM booted by systemd (init="systemd"): services of the
# outer machine that do not belong in it, consoles that would compete with the
# serial log, and waits for devices and networks the VM does not have.
SYSTEMD_MASK = [
    "postgresql.service", "ndctl-monitor.service", "e2scrub_reap.service",
    "serial-getty@ttyS0.service", "getty@tty1.service", "console-getty.service", "systemd-timesyncd.service",
    "systemd-networkd-wait-online.service", "networking.service", "apt-daily.timer",
    "apt-daily-upgrade.timer", "e2scrub_all.timer", "man-db.timer", "fstrim.timer",
    "systemd-firstboot.service", "systemd-remount-fs.service", "dpkg-db-backup.timer",
    "logrotate.timer", "ldconfig.service", "systemd-hwdb-update.service",
    "systemd-journal-catalog-update.service", "systemd-update-done.service",
]

SHARED_TAG = "vmushared"
ROOT_TAG = "hostroot"
DEFAULT_WORK_ROOT = os.environ.get("VMU_E2E_WORK", "/var/tmp/vmupdate-e2e")
# The stage scripts (tests/e2e/README.md, "Stage scripts"): copied to /shared/stages.
STAGES_DIR = os.path.join(_HERE, "stages")

# ------------------------------------------------------------ guest scripts ---

INIT_SH = r"""#!/bin/busybox sh
# vmupdate e2e host VM: initramfs /init (generated by tests/e2e/hostvm.py)
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
set -f
mount -t proc proc /proc
mount -t sysfs sysfs /sys

up() { read -r u _ < /proc/uptime; echo "$u"; }
log() { echo "VMU-INIT [$(up)] $*"; }
fatal() { log "FATAL: $*"; echo "VMU-INIT-FATAL $*"; sleep 1; poweroff -f; sleep 10; }

VMU_UPPER=tmpfs
VMU_INIT=tini
for w in $(cat /proc/cmdline); do
  case "$w" in vmu_upper=*) VMU_UPPER="${w#vmu_upper=}" ;; vmu_init=*) VMU_INIT="${w#vmu_init=}" ;; esac
done
log "initramfs init: kernel $(uname -r), upper=$VMU_UPPER"

# 1. modules (dependencies first; already loaded or failing ones are logged, not fatal)
while read -r m; do
  [ -n "$m" ] || continue
  n="${m%.ko}"
  grep -q "^$n " /proc/modules && continue
  if ! out=$(insmod "/lib/modules/$m" 2>&1); then
    case "$out" in *"File exists"*) ;; *) log "insmod $m failed: $out" ;; esac
  fi
done < /modules.list
log "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

# 2. the outer root, read-only over 9p (retried until virtio-9p has probed)
mkdir -p /lower /ov /newroot
i=0
while ! err=$(mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose @ROOT_TAG@ /lower 2>&1); do
  i=$((i+1)); [ $i -lt 200 ] || fatal "cannot mount 9p @ROOT_TAG@: $err"; usleep 50000
done

# 3. the overlay's upper layer: tmpfs, or ext4 on /dev/vda (persist_root)
if [ "$VMU_UPPER" = disk ]; then
  i=0
  while [ ! -b /dev/vda ]; do i=$((i+1)); [ $i -lt 200 ] || fatal "no /dev/vda"; usleep 50000; done
  mount -t ext4 /dev/vda /ov || fatal "cannot mount /dev/vda on /ov"
else
  mount -t tmpfs -o mode=0755 tmpfs /ov
fi
mkdir -p /ov/upper /ov/work
FIRST=0; [ -e /ov/vmu-initialized ] || FIRST=1

copy_attrs() {  # copy_attrs PATH [TARGET]: owner+mode of /lower/PATH onto TARGET (default upper/PATH)
  local src="/lower$1" dst="${2:-/ov/upper$1}"
  if [ -e "$src" ]; then
    chmod "$(stat -c %a "$src")" "$dst"; chown "$(stat -c %u:%g "$src")" "$dst"
  fi
}
upper_parents() {  # create the parents of PATH in the upper layer, attributes as in the lower
  local d; d=$(dirname "$1"); [ "$d" = / ] && return 0
  upper_parents "$d"
  if [ ! -d "/ov/upper$d" ]; then mkdir "/ov/upper$d"; copy_attrs "$d"; fi
}
HIDE="@HIDE@"
SKEL="@SKEL@"
if [ $FIRST = 1 ]; then
  for h in $HIDE; do
    upper_parents "$h"
    # a whiteout hides the outer directory; mkdir through the overlay below
    # then makes an empty opaque directory in its place
    [ -e "/lower$h" ] && mknod "/ov/upper$h" c 0 0
  done
fi
mount -t overlay overlay -o lowerdir=/lower,upperdir=/ov/upper,workdir=/ov/work /newroot \
  || fatal "overlay mount failed"
if [ $FIRST = 1 ]; then
  for h in $HIDE; do
    [ -e "/lower$h" ] || continue
    mkdir -p "/newroot$h"; copy_attrs "$h" "/newroot$h"
  done
  for s in $SKEL; do
    [ -d "/lower$s" ] || continue
    find "/lower$s" -mindepth 1 -maxdepth 2 -type d ! -name 'domain-*' | while read -r d; do
      p="${d#/lower}"; mkdir -p "/newroot$p"; copy_attrs "$p" "/newroot$p"
    done
  done
  touch /ov/vmu-initialized
fi

# 4. control share, fresh /run and /tmp
mkdir -p /newroot/shared
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 @SHARED_TAG@ /newroot/shared \
  || fatal "cannot mount 9p @SHARED_TAG@"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/run/lock /newroot/run/vmu
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/tmp
cp /vmu/init2 /vmu/vmu-kexec /newroot/run/vmu/
chmod 0755 /newroot/run/vmu/init2 /newroot/run/vmu/vmu-kexec
base=""
for w in $(cat /proc/cmdline); do case "$w" in vmu_stage=*) ;; *) base="$base $w" ;; esac; done
echo "${base# }" > /newroot/run/vmu/base_cmdline
log "switching root (first=$FIRST)"
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
if [ "$VMU_INIT" = systemd ] && [ -x /newroot/lib/systemd/systemd ]; then
  # A host booted by systemd: init2 runs as a unit after libvirt and vmupdate's
  # restore unit; units that make no sense in this VM (or wait for devices
  # it lacks) are masked, and the outer fstab is replaced (stages may add to it).
  S=/newroot/etc/systemd/system
  mkdir -p $S/multi-user.target.wants
  cat > $S/vmu-stage.service <<'UNIT'
[Unit]
Description=vmupdate e2e host VM stage (hostvm.py init2)
After=libvirtd.service virtqemud.service vmupdate-restore.service libvirt-guests.service

[Service]
Type=simple
ExecStart=/bin/sh /run/vmu/init2
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TimeoutStopSec=10
UNIT
  ln -sf ../vmu-stage.service $S/multi-user.target.wants/vmu-stage.service
  for u in @SYSTEMD_MASK@; do ln -sf /dev/null "$S/$u"; done
  [ $FIRST = 1 ] && echo "# vmupdate e2e host VM" > /newroot/etc/fstab
  # The outer root may be a Docker image: with /.dockerenv systemd believes it
  # runs in a container and turns `systemctl kexec` into a plain reboot.
  rm -f /newroot/.dockerenv /newroot/run/.containerenv
  log "switching root to systemd"
  exec switch_root /newroot /lib/systemd/systemd
fi
if [ -x /newroot/usr/bin/tini ]; then
  exec switch_root /newroot /usr/bin/tini -- /bin/sh /run/vmu/init2
fi
exec switch_root /newroot /bin/sh /run/vmu/init2
"""

INIT2_SH = r"""#!/bin/sh
# vmupdate e2e host VM: runs after switch_root under tini (generated by tests/e2e/hostvm.py)
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
exec </dev/null >/dev/console 2>&1
up() { read -r u _ < /proc/uptime; echo "$u"; }
BB=/bin/busybox; [ -x "$BB" ] || BB=/usr/bin/busybox
mkdir -p /dev/pts /dev/shm /dev/mqueue
if ! grep -q ' /dev/pts ' /proc/mounts; then  # under systemd: mounted already
  mount -t devpts -o mode=620,ptmxmode=666 devpts /dev/pts
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
  mount -t mqueue mqueue /dev/mqueue 2>/dev/null
fi
$BB dmesg -n 4            # kernel messages below warning stay out of the console
$BB hostname vmu-hostvm
grep -q vmu-hostvm /etc/hosts 2>/dev/null || echo "127.0.1.1 vmu-hostvm" >> /etc/hosts
$BB ip link set lo up 2>/dev/null
# libvirt's QEMU capabilities cache from earlier runs (see HostVM caps_cache)
CAPS=/var/cache/libvirt/qemu/capabilities
if [ -d /shared/.vmu/libvirt-caps ]; then
  # once per root file system (persist_root keeps it across kexec); the
  # marker's mtime tells which files libvirtd wrote afterwards
  if [ ! -e $CAPS/../.vmu-caps-seeded ]; then
    mkdir -p $CAPS && cp -p /shared/.vmu/libvirt-caps/*.xml $CAPS/ 2>/dev/null
    touch $CAPS/../.vmu-caps-seeded
  fi
fi
VMU_STAGE=1
set -f
for w in $(cat /proc/cmdline); do case "$w" in vmu_stage=*) VMU_STAGE="${w#vmu_stage=}" ;; esac; done
set +f
# a stage that kexecs through something else (vmupdate host-update --reuse-cmdline)
# names the next stage in this file instead of the command line
if [ -f /shared/.vmu/next-stage ]; then
  VMU_STAGE=$(cat /shared/.vmu/next-stage); rm -f /shared/.vmu/next-stage
fi
VMU_BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
VMU_KERNEL=/boot/vmlinuz-$(uname -r)
VMU_INITRD=/shared/.vmu/initrd.img
VMU_SHARED=/shared
VMU_BASE_CMDLINE=$(cat /run/vmu/base_cmdline)
export VMU_STAGE VMU_BOOT_ID VMU_KERNEL VMU_INITRD VMU_SHARED VMU_BASE_CMDLINE
mkdir -p /shared/.vmu
echo "$VMU_STAGE $VMU_BOOT_ID $(up)" >> /shared/.vmu/boot_ids
echo "VMU-BOOT stage=$VMU_STAGE boot_id=$VMU_BOOT_ID uptime=$(up)"
rc=127
if [ -f /shared/stage.sh ]; then
  rm -f /run/vmu/out.fifo; mkfifo /run/vmu/out.fifo
  # tee keeps running for daemons started by the stage that write to its output
  $BB tee -a /shared/stage.log < /run/vmu/out.fifo &
  echo "VMU-STAGE-START stage=$VMU_STAGE uptime=$(up)"
  /bin/sh /shared/stage.sh "$VMU_STAGE" > /run/vmu/out.fifo 2>&1
  rc=$?
  $BB usleep 200000
else
  echo "VMU: no /shared/stage.sh"
fi
echo "$rc" > /shared/.vmu/stage-$VMU_STAGE.rc
if [ -d /shared/.vmu/libvirt-caps ] && [ -d $CAPS ]; then
  # only files libvirtd (re)wrote after seeding: valid for this VM
  find $CAPS -name '*.xml' -newer $CAPS/../.vmu-caps-seeded | while read -r f; do
    mkdir -p /shared/.vmu/libvirt-caps-out && cp "$f" /shared/.vmu/libvirt-caps-out/
  done
fi
echo "VMU-STAGE-END stage=$VMU_STAGE rc=$rc uptime=$(up)"
if [ -e /run/vmu/stay-up ]; then
  echo "VMU-STAY-UP"
  while :; do $BB sleep 3600; done
fi
sync
echo "VMU-POWEROFF uptime=$(up)"
$BB poweroff -f
echo o > /proc/sysrq-trigger
$BB sleep 60
"""

VMU_KEXEC_SH = r"""#!/bin/sh
# vmu-kexec NEXT_STAGE [EXTRA CMDLINE WORDS...] (generated by tests/e2e/hostvm.py)
# kexec into the running kernel and the same initramfs, same command line but
# vmu_stage=NEXT_STAGE. Unmount (or at least sync) pmem file systems first.
set -e
next="$1"; shift
kernel="${VMU_KERNEL:-/boot/vmlinuz-$(uname -r)}"
initrd="${VMU_INITRD:-/shared/.vmu/initrd.img}"
append="$(cat /run/vmu/base_cmdline) vmu_stage=$next${*:+ $*}"
echo "VMU-KEXEC-LOAD stage=$next kernel=$kernel append=$append"
kexec -l "$kernel" --initrd="$initrd" --append="$append"
sync
read -r u _ < /proc/uptime
echo "VMU-KEXEC stage=$next uptime=$u" > /dev/console
kexec -e
echo "VMU-KEXEC-FAILED rc=$?" > /dev/console
exit 1
"""



def stage_script(name, env=None):
    """(stage.sh text, files) that run stages/NAME.sh in the VM with `env`
    exported; files maps stages/* in /shared to the files here."""
    path = os.path.join(STAGES_DIR, name + ".sh")
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    lines = ["#!/bin/sh", "# generated by tests/e2e/hostvm.py: stages/%s.sh" % name]
    for var, value in sorted((env or {}).items()):
        lines.append("%s=%s; export %s" % (var, shlex.quote(str(value)), var))
    lines.append('exec /bin/sh /shared/stages/%s.sh "$@"' % name)
    files = {"stages/" + f: "@" + os.path.join(STAGES_DIR, f)
             for f in sorted(os.listdir(STAGES_DIR)) if f.endswith((".sh", ".py"))}
    return "\n".join(lines) + "\n", files

# ------------------------------------------------------------ prerequisites ---


def _which(tool):
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _version_key(v):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", v)]


def find_kernel(root="/"):
    """(path, version) of the kernel to boot: $VMU_E2E_KERNEL, else the newest
    <root>/boot/vmlinuz-<ver> with <root>/lib/modules/<ver>. Raises Skip if none."""
    env = os.environ.get("VMU_E2E_KERNEL") if root == "/" else None
    if env:
        ver = os.path.basename(env).replace("vmlinuz-", "", 1)
        if not os.path.isdir("/lib/modules/" + ver):
            raise Skip("VMU_E2E_KERNEL=%s: no /lib/modules/%s" % (env, ver))
        return env, ver
    cands = []
    try:
        names = os.listdir(os.path.join(root, "boot"))
    except OSError:
        names = []
    for n in names:
        if n.startswith("vmlinuz-") and os.path.isdir(os.path.join(root, "lib/modules", n[8:])):
            cands.append(n[8:])
    if not cands:
        raise Skip("no %s with matching %s (install linux-image-amd64)"
                   % (os.path.join(root, "boot/vmlinuz-<ver>"), os.path.join(root, "lib/modules/<ver>")))
    ver = sorted(cands, key=_version_key)[-1]
    path = os.path.join(root, "boot", "vmlinuz-" + ver)
    if not os.access(path, os.R_OK):
        raise Skip("%s is not readable (run as root)" % path)
    return path, ver


def find_busybox():
    """Path of a statically linked busybox, or raise Skip."""
    for c in ("/bin/busybox", "/usr/bin/busybox", _which("busybox")):
        if c and os.path.isfile(c):
            with open(c, "rb") as f:
                head = f.read(1 << 20)
            # a dynamic ELF names its interpreter (PT_INTERP -> ld-linux)
            if b"ld-linux" not in head and b"/lib64/ld-" not in head:
                return c
    raise Skip("no statically linked busybox (install busybox-static)")


def require_prerequisites(nvdimm=False, extra_tools=()):
    """Raise Skip (-> exit 77) unless everything HostVM needs is here."""
    if os.geteuid() != 0:
        raise Skip("the host VM tests need root (kernel image, 9p passthrough)")
    tools = ["qemu-system-x86_64", "mkfs.ext4"] + list(extra_tools)
    missing = [t for t in tools if not _which(t)]
    # tools used INSIDE the VM come from this machine's root file system
    for t in ("kexec", "tini", "virsh", "libvirtd", "virtlogd") + (("ndctl",) if nvdimm else ()):
        if not _which(t):
            missing.append(t)
    if missing:
        raise Skip("missing tools: %s" % " ".join(missing))
    find_kernel()
    find_busybox()


def skip_unless_ready(nvdimm=False, extra_tools=()):
    """Print `SKIPPED: reason` and exit 77 unless require_prerequisites passes."""
    try:
        require_prerequisites(nvdimm, extra_tools)
    except Skip as e:
        vmtest.skip(str(e))

# --------------------------------------------------------------- initramfs ---


def _cpio_newc(entries):
    """A newc cpio archive from (name, mode, data_or_None, rdev_major, rdev_minor)."""
    out = io.BytesIO()
    ino = 1

    def pad(n):
        return b"\0" * ((4 - n % 4) % 4)

    for name, mode, data, rmaj, rmin in list(entries) + [("TRAILER!!!", 0, None, 0, 0)]:
        data = data or b""
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0))
        out.write(hdr.encode() + nb + pad(110 + len(nb)))
        out.write(data + pad(len(data)))
        ino += 1
    return out.getvalue()


def _modinfo(kver, name, field=None, root="/"):
    argv = ["modinfo", "-b", root, "-k", kver] + (["-F", field] if field else ["-n"]) + [name]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        return None
    out = p.stdout.strip()
    # a path inside the root ("/lib/modules/...") is read from outside it
    if root != "/" and out.startswith("/lib/") and not out.startswith(root.rstrip("/") + "/"):
        return os.path.join(root, out.lstrip("/"))
    return out


def resolve_modules(kver, names=MODULES, root="/"):
    """[(modname, path)] for `names` plus dependencies, dependencies first;
    built-in or missing modules are left out (returned in the 2nd list)."""
    order, seen, skipped = [], set(), []

    def visit(n):
        n = n.replace("-", "_")
        if n in seen:
            return
        seen.add(n)
        path = _modinfo(kver, n, root=root)
        if not path or not re.search(r"\.ko(\.xz|\.zst|\.gz)?$", path):
            skipped.append("%s (%s)" % (n, path or "not found"))
            return
        for d in (_modinfo(kver, n, "depends", root) or "").split(","):
            if d.strip():
                visit(d.strip())
        order.append((n, path))

    for n in names:
        visit(n)
    return order, skipped


def _read_module(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, stdout=subprocess.PIPE).stdout
    return data


def _render(text, hide=True):
    return (text.replace("@ROOT_TAG@", ROOT_TAG).replace("@SHARED_TAG@", SHARED_TAG)
            .replace("@SYSTEMD_MASK@", " ".join(SYSTEMD_MASK))
            .replace("@HIDE@", " ".join(HIDE_DIRS) if hide else "")
            .replace("@SKEL@", " ".join(SKELETON_DIRS) if hide else ""))


def build_initramfs(cache_dir, kver, root="/"):
    """Build (or reuse from cache_dir) the initramfs for kernel `kver` of `root`
    (modules from <root>/lib/modules); returns its path. Outer state is hidden
    (HIDE_DIRS) only when the VM boots this machine's own root."""
    busybox = find_busybox()
    mods, skipped = resolve_modules(kver, root=root)
    hide = root == "/"
    init, init2, kx = _render(INIT_SH, hide), _render(INIT2_SH, hide), _render(VMU_KEXEC_SH, hide)
    h = hashlib.sha256()
    for part in (init, init2, kx, kver, root):
        h.update(part.encode() + b"\0")
    for p in [busybox] + [p for _, p in mods]:
        st = os.stat(p)
        h.update(("%s %d %d\0" % (p, st.st_size, st.st_mtime_ns)).encode())
    path = os.path.join(cache_dir, "initramfs-%s-%s.img" % (kver, h.hexdigest()[:12]))
    if os.path.exists(path):
        log("initramfs: cached %s" % path)
        return path
    t = time.monotonic()
    os.makedirs(cache_dir, exist_ok=True)
    with open(busybox, "rb") as f:
        bb = f.read()
    d, f_, c = stat.S_IFDIR | 0o755, stat.S_IFREG, stat.S_IFCHR
    entries = [(n, d, None, 0, 0) for n in (
        "bin", "dev", "proc", "sys", "tmp", "lower", "ov", "newroot", "vmu", "lib",
        "lib/modules")]
    entries += [("dev/console", c | 0o600, None, 5, 1), ("dev/null", c | 0o666, None, 1, 3),
                ("bin/busybox", f_ | 0o755, bb, 0, 0), ("bin/sh", stat.S_IFLNK | 0o777, b"busybox", 0, 0),
                ("init", f_ | 0o755, init.encode(), 0, 0),
                ("vmu/init2", f_ | 0o755, init2.encode(), 0, 0),
                ("vmu/vmu-kexec", f_ | 0o755, kx.encode(), 0, 0)]
    for n, p in mods:
        entries.append(("lib/modules/%s.ko" % n, f_ | 0o644, _read_module(p), 0, 0))
    entries.append(("modules.list", f_ | 0o644, ("".join("%s.ko\n" % n for n, _ in mods)).encode(), 0, 0))
    data = gzip.compress(_cpio_newc(entries), compresslevel=6)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)
    for old in os.listdir(cache_dir):  # images of earlier versions, unused for a day
        op = os.path.join(cache_dir, old)
        if (old.startswith("initramfs-") and op != path
                and time.time() - os.stat(op).st_mtime > 86400):
            os.unlink(op)
    log("initramfs: built %s (%d KiB, %d modules: %s; skipped: %s) in %.2fs"
        % (path, len(data) // 1024, len(mods), " ".join(n for n, _ in mods),
           ", ".join(skipped) or "none", time.monotonic() - t))
    return path

# ------------------------------------------------------------------ HostVM ---


def _die_with_parent():
    """In the child before exec: SIGKILL it when the test process dies
    (even by SIGKILL, e.g. a ctest timeout), so no QEMU is left behind."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class VMFailed(Exception):
    """The VM died, printed a failure marker, or a wait timed out."""


class HostVM:
    """A throwaway TCG VM running this machine's system; see the module docstring.

    work_dir      per-VM directory (created; serial.log, qemu.log, shared/, disks)
    pmem          "memmap" (legacy pmem via memmap=SIZE!OFFSET), "nvdimm"
                  (emulated NVDIMM, label area 128K) or None
    pmem_size_mib size of the memmap region / the NVDIMM (nvdimm default 1024)
    pmem_offset_mib  physical start of the memmap region (inside low RAM; the
                  region is taken from the VM's RAM, memmap's "!" type 12)
    mem_mib, smp  VM RAM and vCPUs (TCG)
    persist_root  overlay upper layer on an ext4 virtio disk instead of tmpfs
                  (survives kexec; fresh for every start() unless keep_disk)
    cache_dir     where the initramfs is cached (default <work_dir>/../cache)
    extra_append  more kernel command line words (kept across vmu-kexec)
    init          "tini" (init2 is PID 1's only job; stages start libvirtd
                  themselves) or "systemd" (/lib/systemd/systemd is PID 1, the
                  outer machine's enabled units start, init2 runs as
                  vmu-stage.service after libvirtd and vmupdate-restore.service)
    root          the root file system the VM boots (default "/": this
                  machine's); another one (a debootstrapped Debian 13 with a
                  package installed, say) brings its own kernel and modules
                  (<root>/boot, <root>/lib/modules) and nothing is hidden in
                  it. It must not be in use (no mounts below it, no chroot).
    caps_cache    carry libvirt's QEMU capabilities cache between runs
                  (<cache_dir>/libvirt-caps): the inner libvirtd cannot use
                  the outer machine's cache (it was made with /dev/kvm usable)
                  and re-probing QEMU under TCG costs about 6 s per boot.
                  libvirt validates the files itself (binary ctimes etc.).
    """

    def __init__(self, work_dir, pmem="memmap", pmem_size_mib=None, pmem_offset_mib=1024,
                 mem_mib=3072, smp=2, persist_root=False, persist_disk_mib=2048,
                 cache_dir=None, extra_append="", kernel=None, keep_disk=False, name=None,
                 caps_cache=True, init="tini", root="/"):
        if init not in ("tini", "systemd"):
            raise ValueError("init must be 'tini' or 'systemd'")
        self.init = init
        if pmem not in ("memmap", "nvdimm", None):
            raise ValueError("pmem must be 'memmap', 'nvdimm' or None")
        self.work_dir = os.path.abspath(work_dir)
        self.pmem = pmem
        self.pmem_size_mib = pmem_size_mib or (1024 if pmem == "nvdimm" else 512)
        self.pmem_offset_mib = pmem_offset_mib
        low_mib = mem_mib if mem_mib <= 2816 else 2048  # q35: >2.75 GiB -> 2 GiB below 4 GiB
        if pmem == "memmap" and pmem_offset_mib + self.pmem_size_mib > low_mib:
            raise ValueError("memmap region %dM@%dM is not inside the VM's low RAM"
                             % (self.pmem_size_mib, pmem_offset_mib))
        self.mem_mib = mem_mib
        self.smp = smp
        self.persist_root = persist_root
        self.persist_disk_mib = persist_disk_mib
        self.keep_disk = keep_disk
        self.cache_dir = cache_dir or os.path.join(os.path.dirname(self.work_dir), "cache")
        self.extra_append = extra_append
        self.name = name or os.path.basename(self.work_dir)
        self.caps_cache = caps_cache
        self.root = os.path.abspath(root)
        if kernel:
            self.kernel, self.kver = kernel, os.path.basename(kernel).replace("vmlinuz-", "", 1)
        else:
            self.kernel, self.kver = find_kernel(self.root)
        self.shared = os.path.join(self.work_dir, "shared")
        self.serial_path = os.path.join(self.work_dir, "serial.log")
        self.qemu_log_path = os.path.join(self.work_dir, "qemu.log")
        self.disk_path = os.path.join(self.work_dir, "persist.img")
        self.nvdimm_path = os.path.join(self.work_dir, "nvdimm.img")
        self.qmp_path = os.path.join(self.work_dir, "qmp.sock")
        if len(self.qmp_path) > 100:  # sun_path limit
            self.qmp_path = "/tmp/vmu-hostvm-%d-%x.qmp" % (os.getpid(), id(self))
        self.initrd = None
        self.proc = None
        self.t_start = None          # monotonic time QEMU was spawned
        self.t_first_serial = None   # seconds from spawn to the first serial byte
        self._lines = []             # [(seconds since spawn, line)]
        self._lock = threading.Lock()
        self._reader = None
        self._stop_reader = threading.Event()
        self._qemu_log_f = None

    # ---------------------------------------------------------- lifecycle
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.proc is not None:
            self.dump_logs()
        self.stop()
        return False

    def cmdline(self, stage=1):
        words = ["console=ttyS0,115200", "panic=-1", "vmu_upper=%s" % ("disk" if self.persist_root else "tmpfs")]
        if self.init == "systemd":
            words.append("vmu_init=systemd")
        if self.pmem == "memmap":
            words.append("memmap=%dM!%dM" % (self.pmem_size_mib, self.pmem_offset_mib))
        if self.extra_append:
            words.append(self.extra_append)
        words.append("vmu_stage=%d" % stage)
        return " ".join(words)

    def qemu_argv(self, stage=1):
        machine = "q35,accel=tcg" + (",nvdimm=on" if self.pmem == "nvdimm" else "")
        mem = "%dM" % self.mem_mib
        if self.pmem == "nvdimm":
            mem += ",slots=2,maxmem=%dM" % (self.mem_mib + self.pmem_size_mib + 1024)
        argv = [_which("qemu-system-x86_64"), "-name", "vmu-e2e-" + self.name,
                "-machine", machine, "-cpu", "max", "-smp", str(self.smp), "-m", mem,
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", self.kernel, "-initrd", self.initrd, "-append", self.cmdline(stage),
                "-chardev", "file,id=ser0,path=%s" % self.serial_path, "-serial", "chardev:ser0",
                "-virtfs", "local,path=%s,mount_tag=%s,security_model=none,readonly=on,multidevs=remap"
                % (self.root, ROOT_TAG),
                "-virtfs", "local,path=%s,mount_tag=%s,security_model=none,multidevs=remap" % (self.shared, SHARED_TAG),
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.persist_root:
            argv += ["-drive", "file=%s,if=virtio,format=raw,cache=unsafe,discard=unmap" % self.disk_path]
        if self.pmem == "nvdimm":
            argv += ["-object", "memory-backend-file,id=nv1,share=on,mem-path=%s,size=%dM"
                     % (self.nvdimm_path, self.pmem_size_mib),
                     "-device", "nvdimm,id=nvdimm1,memdev=nv1,label-size=128K"]
        return argv

    def _prepare(self, stage_script, files):
        os.makedirs(self.work_dir, exist_ok=True)
        self.initrd = build_initramfs(self.cache_dir, self.kver, self.root)
        if os.path.isdir(self.shared):
            shutil.rmtree(self.shared)
        os.makedirs(os.path.join(self.shared, ".vmu"))
        os.chmod(self.shared, 0o755)
        shutil.copyfile(self.initrd, os.path.join(self.shared, ".vmu", "initrd.img"))
        if self.caps_cache:
            dst = os.path.join(self.shared, ".vmu", "libvirt-caps")
            os.makedirs(dst)
            src = os.path.join(self.cache_dir, "libvirt-caps")
            n = 0
            for fn in (os.listdir(src) if os.path.isdir(src) else []):
                if fn.endswith(".xml"):
                    shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))
                    n += 1
            log("hostvm %s: %d cached libvirt capabilities file(s)" % (self.name, n))
        with open(os.path.join(self.shared, "stage.sh"), "w") as f:
            f.write(stage_script)
        for rel, content in (files or {}).items():
            dst = os.path.join(self.shared, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if isinstance(content, bytes):
                with open(dst, "wb") as f:
                    f.write(content)
            elif isinstance(content, str) and content.startswith("@"):
                shutil.copyfile(content[1:], dst)   # "@/path": copy that file
            else:
                with open(dst, "w") as f:
                    f.write(content)
            exe = rel.endswith(".sh") or (isinstance(content, str) and content.startswith("@")
                                           and os.access(content[1:], os.X_OK))
            os.chmod(dst, 0o755 if exe else 0o644)
        for p in (self.serial_path, self.serial_path + ".ts", self.qemu_log_path, self.qmp_path):
            if os.path.exists(p):
                os.unlink(p)
        if self.persist_root and not (self.keep_disk and os.path.exists(self.disk_path)):
            if os.path.exists(self.disk_path):
                os.unlink(self.disk_path)
            with open(self.disk_path, "wb") as f:
                f.truncate(self.persist_disk_mib << 20)
            vmtest.run_cmd(["mkfs.ext4", "-q", "-F", "-L", "vmu-persist", "-E",
                            "lazy_itable_init=0,lazy_journal_init=0", self.disk_path], timeout=120)
        if self.pmem == "nvdimm":
            if os.path.exists(self.nvdimm_path):
                os.unlink(self.nvdimm_path)
            with open(self.nvdimm_path, "wb") as f:
                f.truncate(self.pmem_size_mib << 20)

    def start(self, stage_script, files=None):
        """Write stage_script to shared/stage.sh (plus `files`: {relpath in
        shared: str|bytes|"@/path/to/copy"}) and boot the VM. Returns at once."""
        if self.proc is not None:
            raise RuntimeError("HostVM already started")
        self._prepare(stage_script, files)
        argv = self.qemu_argv()
        log("hostvm %s: $ %s" % (self.name, " ".join("'%s'" % a if " " in a or "!" in a else a for a in argv)))
        self._qemu_log_f = open(self.qemu_log_path, "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._qemu_log_f,
                                     stderr=subprocess.STDOUT, close_fds=True,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        log("hostvm %s: QEMU pid %d (serial %s)" % (self.name, self.proc.pid, self.serial_path))
        self._stop_reader.clear()
        self._reader = threading.Thread(target=self._read_serial, name="hostvm-serial", daemon=True)
        self._reader.start()
        return self

    def start_stage(self, name, env=None, files=None):
        """start() with tests/e2e/stages/NAME.sh as the stage: the whole stages
        directory goes to /shared/stages, and /shared/stage.sh exports `env`
        ({VAR: value}) and runs it."""
        text, stage_files = stage_script(name, env)
        stage_files.update(files or {})
        return self.start(text, files=stage_files)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def elapsed(self):
        """Seconds since QEMU was spawned."""
        return time.monotonic() - self.t_start if self.t_start else 0.0

    def wait_exit(self, timeout):
        """Wait until QEMU exits (the VM powered off); returns its exit code."""
        t = time.monotonic()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise VMFailed("hostvm %s still running after %ss" % (self.name, timeout)) from None
        time.sleep(0.2)  # let the reader take the last lines
        log("hostvm %s: QEMU exited rc=%s after %.1fs (%.1fs since spawn)"
            % (self.name, rc, time.monotonic() - t, self.elapsed()))
        return rc

    def _harvest_caps(self):
        """Keep the capabilities cache the VM left in shared/.vmu/libvirt-caps-out."""
        src = os.path.join(self.shared, ".vmu", "libvirt-caps-out")
        if not self.caps_cache or not os.path.isdir(src):
            return
        dst = os.path.join(self.cache_dir, "libvirt-caps")
        os.makedirs(dst, exist_ok=True)
        for fn in os.listdir(src):
            if fn.endswith(".xml"):
                tmp = os.path.join(dst, ".%s.tmp%d" % (fn, os.getpid()))
                shutil.copyfile(os.path.join(src, fn), tmp)
                os.rename(tmp, os.path.join(dst, fn))
        shutil.rmtree(src, ignore_errors=True)

    def stop(self, grace=3):
        """Kill QEMU (SIGTERM, then SIGKILL) if it still runs; stop the reader."""
        if self.proc is not None and self.proc.poll() is None:
            log("hostvm %s: stopping QEMU pid %d" % (self.name, self.proc.pid))
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            log("hostvm %s: QEMU gone (rc=%s)" % (self.name, self.proc.returncode))
        self._stop_reader.set()
        try:
            self._harvest_caps()
        except OSError as e:
            log("hostvm %s: could not keep the libvirt capabilities cache: %s" % (self.name, e))
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        if self._qemu_log_f is not None:
            self._qemu_log_f.close()
            self._qemu_log_f = None

    def qmp(self, command, arguments=None, timeout=10):
        """Run one QMP command on the VM's QEMU; returns the 'return' value."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        try:
            json.loads(f.readline())  # greeting
            for cmd in ({"execute": "qmp_capabilities"},
                        dict({"execute": command}, **({"arguments": arguments} if arguments else {}))):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:
                    r = json.loads(f.readline())
                    if "return" in r or "error" in r:
                        break
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (command, r["error"]))
            return r["return"]
        finally:
            f.close()
            s.close()

    # ------------------------------------------------------------- serial
    def _read_serial(self):
        pos, buf = 0, b""
        ts = open(self.serial_path + ".ts", "a")
        try:
            while True:
                stopping = self._stop_reader.is_set() or not self.alive()
                try:
                    with open(self.serial_path, "rb") as f:
                        f.seek(pos)
                        data = f.read()
                except FileNotFoundError:
                    data = b""
                if data:
                    now = self.elapsed()
                    if self.t_first_serial is None:
                        self.t_first_serial = now
                        log("hostvm %s: first serial output %.2fs after spawn" % (self.name, now))
                    pos += len(data)
                    buf += data
                    *complete, buf = buf.split(b"\n")
                    for raw in complete:
                        line = raw.decode("utf-8", "replace").rstrip("\r")
                        with self._lock:
                            self._lines.append((now, line))
                        ts.write("%8.3f %s\n" % (now, line))
                        if line.startswith("VMU-") or "Kernel panic" in line:
                            log("hostvm %s [%7.2fs] %s" % (self.name, now, line))
                    ts.flush()
                if stopping and not data:
                    if buf:
                        with self._lock:
                            self._lines.append((self.elapsed(), buf.decode("utf-8", "replace")))
                    return
                time.sleep(0.05)
        finally:
            ts.close()

    def lines(self):
        """[(seconds since spawn, line)] of the serial console so far."""
        with self._lock:
            return list(self._lines)

    def mark(self):
        """Number of serial lines so far: pass as `since` to wait_for."""
        with self._lock:
            return len(self._lines)

    def stage_log(self):
        try:
            with open(os.path.join(self.shared, "stage.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    DEFAULT_FAIL = r"VMU-STEP \S+ FAIL|VMU-INIT-FATAL|VMU-KEXEC-FAILED|Kernel panic|VMU-STAGE-END stage=\d+ rc=[1-9]"

    def wait_for(self, regex, timeout, since=0, fail=DEFAULT_FAIL):
        """Wait for a serial line (at or after line index `since`) matching
        `regex` (re.search) and return (match, seconds since spawn). Raises
        VMFailed if a line matches `fail` first, QEMU exits, or on timeout."""
        rx = re.compile(regex)
        frx = re.compile(fail) if fail else None
        deadline = time.monotonic() + timeout
        i = since
        while True:
            lines = self.lines()
            for t, line in lines[i:]:
                m = rx.search(line)
                if m:
                    return m, t
                if frx and frx.search(line):
                    raise VMFailed("hostvm %s: failure line while waiting for %r: %s"
                                   % (self.name, regex, line))
            i = len(lines)
            if not self.alive() and (self._reader is None or not self._reader.is_alive()):
                raise VMFailed("hostvm %s: QEMU exited (rc=%s) while waiting for %r"
                               % (self.name, self.proc.returncode if self.proc else None, regex))
            if time.monotonic() >= deadline:
                raise VMFailed("hostvm %s: timed out after %ss waiting for %r; last lines: %s"
                               % (self.name, timeout, regex, [l for _, l in lines[-5:]]))
            time.sleep(0.05)

    def wait_file(self, name, regex, timeout):
        """Wait until the file `name` in the shared directory matches `regex`
        (re.search, multi-line) and return (match, seconds since spawn). For
        output the VM writes just before `systemctl kexec`: the shutdown may
        stop the stage before it copies the file to the console, but what
        reached the share stays. Raises VMFailed on timeout, or when QEMU has
        exited and the file still does not match."""
        rx = re.compile(regex, re.M)
        path = os.path.join(self.shared, name)
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()
            t = self.elapsed()
            try:
                with open(path, errors="replace") as f:
                    m = rx.search(f.read())
            except FileNotFoundError:
                m = None
            if m:
                return m, t
            if not alive:
                raise VMFailed("hostvm %s: QEMU exited (rc=%s) and %s never matched %r"
                               % (self.name, self.proc.returncode if self.proc else None,
                                  path, regex))
            if time.monotonic() >= deadline:
                raise VMFailed("hostvm %s: timed out after %ss waiting for %r in %s"
                               % (self.name, timeout, regex, path))
            time.sleep(0.05)

    def boot_ids(self):
        """[(stage, boot_id, uptime_at_init2)] in boot order (from /shared/.vmu/boot_ids)."""
        out = []
        try:
            with open(os.path.join(self.shared, ".vmu", "boot_ids")) as f:
                for l in f:
                    p = l.split()
                    if len(p) >= 2:
                        out.append((p[0], p[1], float(p[2]) if len(p) > 2 else None))
        except FileNotFoundError:
            pass
        return out

    def stage_rc(self, stage):
        try:
            with open(os.path.join(self.shared, ".vmu", "stage-%s.rc" % stage)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def dump_logs(self, lines=40):
        log("hostvm %s: diagnostics" % self.name)
        tail = self.lines()[-lines:]
        print("----- serial (last %d lines) -----" % len(tail))
        for t, l in tail:
            print("%8.3f %s" % (t, l))
        vmtest.dump_file(os.path.join(self.shared, "stage.log"), lines, "stage log")
        vmtest.dump_file(self.qemu_log_path, 15, "QEMU log")
        log("hostvm %s: all logs in %s (serial.log, serial.log.ts, qemu.log, shared/)"
            % (self.name, self.work_dir))
        sys.stdout.flush()


def run(main, *args, **kwargs):
    """vmtest.run: exit 0 pass, 1 fail, 77 skip (Skip raised)."""
    vmtest.run(main, *args, **kwargs)
