"""Fault case 5: the preserved RAM of a saved domain missing (renamed away),
resized (grown, shrunk) or replaced (a copy with the same bytes but another
inode, a hard link's sibling replaced by a symlink). `vmupdate restore` and
`virsh start` refuse (exit 1) and keep image and RAM; once the original is
back, a plain `vmupdate restore DOMAIN` continues the guest. Last, the RAM
deleted for good: the restore is refused and the image kept (the guest is
lost: lost=1 is the only possible outcome, and the test expects it)."""
import os
import shutil

import faults
import vmtest
import vmucli
from faults import Injections, settle
from vmtest import log

PAGE = 4096


def main():
    kernel = faults.suite_setup()
    inj = Injections("ram")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fram") as g:
            ram = os.path.join(vmucli.preserved_dir(g.uuid), "pc.ram")
            away = ram + ".away"
            variants = {
                "missing": (lambda: os.rename(ram, away), lambda: os.rename(away, ram)),
                "grown": (lambda: os.truncate(ram, size + PAGE), lambda: os.truncate(ram, size)),
                # Shrinking loses the tail for good unless it is kept aside: keep it.
                "shrunk": (lambda: (shutil.copyfile(ram, away), os.truncate(ram, size - PAGE)),
                           lambda: (os.truncate(ram, size), restore_tail(away, ram, size))),
                "replaced-copy": (lambda: (os.rename(ram, away), shutil.copyfile(away, ram)),
                                  lambda: os.replace(away, ram)),
                "replaced-symlink": (lambda: (os.rename(ram, away), os.symlink(away, ram)),
                                     lambda: os.replace(away, ram)),
            }
            for variant, (spoil, fix) in variants.items():
                for via in ("vmupdate-restore", "virsh-start"):
                    if not faults.selected(via, variant):
                        continue
                    if not faults.try_save(inj, g, via, variant):
                        continue
                    size = os.path.getsize(ram)
                    spoil()
                    label, problems = refused(g, via)
                    fix()
                    outcome, lost, more = settle(g)
                    inj.record(via, variant, "%s%s,then-%s" % (label, "" if problems else "-kept",
                                                               outcome), lost, problems + more)
            if faults.selected("vmupdate-restore", "deleted"):
                assert faults.try_save(inj, g, "vmupdate-restore", "deleted")
                os.unlink(ram)
                label, problems = refused(g, "vmupdate-restore", ram_expected=False)
                r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "start", g.ref], check=False)
                if r.returncode == 0:
                    problems.append("virsh start without RAM succeeded: state %s"
                                    % faults.domstate(g.ref))
                if not os.path.exists(vmucli.image_path(g.name)):
                    problems.append("image deleted")
                inj.record("vmupdate-restore", "deleted", label + ("-kept-image" if not problems
                           else ""), 1, problems)
                faults.fresh_start(g)
    inj.finish()


def restore_tail(saved, ram, size):
    with open(saved, "rb") as src, open(ram, "r+b") as dst:
        src.seek(size - PAGE)
        dst.seek(size - PAGE)
        dst.write(src.read(PAGE))
    os.unlink(saved)


def refused(g, via, ram_expected=True):
    problems = []
    image = vmucli.image_path(g.name)
    if via == "vmupdate-restore":
        r = vmucli.vmupdate("restore", g.name)
        label = "refused(%d)" % r.returncode if r.returncode else "restored"
        if r.returncode != faults.RESTORE_REFUSED_RC:
            problems.append("restore exited %d, not %d: %s" % (r.returncode, faults.RESTORE_REFUSED_RC,
                                                               r.stderr.strip()))
    else:
        r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "start", g.ref], check=False)
        label = "refused" if r.returncode else "started"
        if r.returncode == 0:
            problems.append("virsh start succeeded (state %s)" % faults.domstate(g.ref))
    st = faults.domstate(g.ref)
    if st != "shut off":
        problems.append("domain is %s" % st)
        vmtest.virsh("destroy", g.ref, check=False)
    if not os.path.exists(image):
        problems.append("managed-save image deleted")
    if faults.manifest_state(g.uuid) != "saved":
        problems.append("manifest state %s, not saved" % faults.manifest_state(g.uuid))
    return label, problems


vmtest.run(main)
