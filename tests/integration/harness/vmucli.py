"""Running the vmupdate CLI and its hook from integration tests."""
import contextlib
import os
import subprocess

import vmtest
from vmtest import log

CLI = os.environ.get("VMUPDATE_CLI", "vmupdate")
HOOK = os.environ.get("VMUPDATE_HOOK", os.path.join(os.path.dirname(CLI), "..", "hooks", "vmupdate-hook"))
STATE_DIR = "/var/lib/vmupdate"
HOOK_LOG = "/var/log/vmupdate/hook.log"


def vmupdate(*args, timeout=300):
    """Runs `vmupdate -c qemu:///system ARGS`; returns the CompletedProcess (logged)."""
    r = subprocess.run([CLI, "-c", vmtest.URI, *args], capture_output=True, text=True, timeout=timeout)
    log("vmupdate %s -> %d\n  stdout: %s\n  stderr: %s" % (" ".join(args), r.returncode,
                                                          r.stdout.strip(), r.stderr.strip()))
    return r


def check(*args, **kw):
    r = vmupdate(*args, **kw)
    assert r.returncode == 0, "vmupdate %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr)
    return r


@contextlib.contextmanager
def hook_installed():
    """Installs the built hook into /etc/libvirt/hooks/qemu.d, restarts libvirtd
    (it only runs hooks that existed when it started) and removes the hook
    afterwards, so no link into a build tree is left behind."""
    daemons = vmtest.LibvirtDaemons()
    daemons.ensure()
    check("hook", "install", "--hook", os.path.abspath(HOOK))
    daemons.restart_libvirtd()
    try:
        yield daemons
    except BaseException:
        dump_hook_log()
        raise
    finally:
        vmupdate("hook", "uninstall")


def dump_hook_log(lines=25):
    vmtest.dump_file(HOOK_LOG, lines, "hook log")


def preserved_dir(uuid, backing="/var/lib/libvirt/qemu/ram"):
    return os.path.join(backing, "vmupdate", uuid)


def uuid_of(name):
    return vmtest.virsh("domuuid", name, quiet=True).strip()


def image_path(name):
    return "/var/lib/libvirt/qemu/save/%s.save" % name
