"""Fault case 4: the managed-save image truncated (to half, to zero) or
corrupted (one byte flipped, in the middle and in the last byte). `vmupdate
restore` refuses with exit 1 and keeps image and preserved RAM; `virsh start`
does not lose the VM either (the hook sends a foreign image down the stock
path, where QEMU rejects it, or libvirt rejects the file); once the original
image is back, a plain `vmupdate restore DOMAIN` continues the guest."""
import os
import shutil

import faults
import vmtest
import vmucli
from faults import Injections, settle
from vmtest import log


def damage(path, variant):
    size = os.path.getsize(path)
    if variant == "truncate-half":
        os.truncate(path, size // 2)
    elif variant == "truncate-zero":
        os.truncate(path, 0)
    else:
        off = size // 2 if variant == "flip-middle" else size - 1
        with open(path, "r+b") as f:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ 0x01]))
        log("flipped byte %d of %s" % (off, path))


def sha(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def kept(g, image, damaged_sum, ram, ram_size, libvirt_deletes=False):
    """What a refusal must keep. `libvirt_deletes`: libvirt 11.3 deletes a managed-
    save image whose header it cannot read before any hook runs; vmupdate then
    refuses the fresh boot and keeps the RAM and the save, so the operator can put
    the image back."""
    problems = []
    st = faults.domstate(g.ref)
    if st != "shut off":
        problems.append("domain is %s, not shut off" % st)
    if not os.path.exists(image):
        if not libvirt_deletes:
            problems.append("managed-save image deleted")
    elif sha(image) != damaged_sum:
        problems.append("image changed by the refusal")
    if not os.path.exists(ram) or os.path.getsize(ram) != ram_size:
        problems.append("preserved RAM gone or resized")
    if faults.manifest_state(g.uuid) not in ("saved",):
        problems.append("manifest state %s, not saved" % faults.manifest_state(g.uuid))
    return problems


def main():
    kernel = faults.suite_setup()
    inj = Injections("image")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fimg") as g:
            image = vmucli.image_path(g.name)
            ram = os.path.join(vmucli.preserved_dir(g.uuid), "pc.ram")
            for variant in ("truncate-half", "truncate-zero", "flip-middle", "flip-last"):
                for via in ("vmupdate-restore", "virsh-start"):
                    if not faults.selected(via, variant):
                        continue
                    if not faults.try_save(inj, g, via, variant):
                        continue
                    ram_size = os.path.getsize(ram)
                    shutil.copy2(image, image + ".orig")
                    damage(image, variant)
                    damaged = sha(image)
                    problems = []
                    if via == "vmupdate-restore":
                        r = vmucli.vmupdate("restore", g.name)
                        outcome = "refused(%d)" % r.returncode if r.returncode else "restored"
                        if r.returncode != faults.RESTORE_REFUSED_RC:
                            problems.append("restore of a damaged image exited %d, not %d: %s"
                                            % (r.returncode, faults.RESTORE_REFUSED_RC,
                                               r.stderr.strip()))
                        elif "kept" not in r.stderr:
                            problems.append("the refusal does not say what is kept: " + r.stderr.strip())
                    else:
                        r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "start", g.ref], check=False)
                        outcome = "refused" if r.returncode != 0 else "started"
                        if r.returncode == 0:
                            problems.append("virsh start of a damaged image succeeded (state %s)"
                                            % faults.domstate(g.ref))
                    if faults.domstate(g.ref) == "running":
                        # libvirt started it: settle() tells a continued guest from a
                        # cold boot (libvirt 11.3 deletes a managed-save image whose
                        # header it cannot read and boots the domain afresh).
                        problems.append("domain running after a damaged image: %s"
                                        % vmucli.vmupdate("status").stdout.strip().replace("\n", " | "))
                        vmtest._unlink(image + ".orig")
                    else:
                        problems += kept(g, image, damaged, ram, ram_size,
                                         via == "virsh-start" and variant == "truncate-zero")
                        # Put the original back: a plain restore must continue the guest.
                        os.replace(image + ".orig", image)
                    after, lost, more = settle(g)
                    outcome = "%s-kept" % outcome if not problems else outcome
                    inj.record(via, variant, "%s,then-%s" % (outcome, after), lost, problems + more)
    inj.finish()


vmtest.run(main)
