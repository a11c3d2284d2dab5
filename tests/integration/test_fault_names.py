"""Fault case 8: hostile domain names. For each name: libvirt rejects it (then
that is asserted), or `vmupdate prepare`, a cold start, `vmupdate save` and
`vmupdate restore` by that name work (the guest continues) or refuse cleanly
(exit 2, the guest runs on); a stock `virsh managedsave` + `virsh start` cycle
through the installed hook continues the guest as well. Names: `--restore-helper`
(the hook binary's own helper switch), `-x`, spaces, quotes, shell syntax, UTF-8
longer than libvirt's 20-character short name, `.`, `..`, a slash, a newline.
Domains are addressed by UUID in virsh; vmupdate gets the name."""
import os
import uuid as uuidlib

import faults
import vmtest
import vmucli
from faults import Guest, Injections
from vmtest import log

NAMES = [
    ("restore-helper", "--restore-helper"),
    ("dash-x", "-x"),
    ("spaces", "vmut name with  spaces"),
    ("quotes", "vmut-q'uo\"te"),
    ("shell", "vmut-$(touch${IFS}.vmut-pwned)`id`;x&"),
    ("utf8-long", "vmüt-ünïcödé-dömäin-ñämé-λλλ"),
    ("dot", "."),
    ("dotdot", ".."),
    ("slash", "vmut/../x"),
    ("newline", "vmut-new\nline"),
]
PWNED = "/.vmut-pwned"  # the hook runs in libvirtd's working directory, /


class NamedDomain(vmtest.TestDomain):
    """A counter guest with an arbitrary name and a fixed UUID; its files are
    named after a safe unique name."""

    def __init__(self, kernel, name, label):
        super().__init__(kernel, tag="name-" + label, memory_mib=128, fill_mib=16, start=False)
        self.uuid = str(uuidlib.uuid4())
        self.ref = self.uuid
        self.name = name
        self.xml = vmtest.domain_xml(name, self.kernel, 128, 16, self.serial_path).replace(
            "  <name>", "  <uuid>%s</uuid>\n  <name>" % self.uuid, 1)

    def start(self, *args):
        self._start_mark = self.serial.mark()
        vmtest.virsh("start", self.ref, *args)

    def cleanup(self, failed=False):
        log("cleaning up %r" % self.name)
        vmtest.remove_domain(self.ref)
        vmtest._unlink(self.serial_path)
        import shutil
        shutil.rmtree(self.stage, ignore_errors=True)


def prepare(dom):
    r = vmucli.vmupdate("prepare", "--", dom.name)
    if r.returncode == 0:
        return "prepare-ok", []
    problems = [] if r.returncode == 2 else ["prepare exited %d" % r.returncode]
    # Refused by name (e.g. taken for an option): prepare through translate to go on.
    xml = vmtest.virsh("dumpxml", "--inactive", "--security-info", dom.ref)
    t = vmtest.run_cmd([vmucli.CLI, "translate", "-"], input=xml)
    path = os.path.join(dom.stage, "prepared.xml")
    with open(path, "w") as f:
        f.write(t.stdout)
    vmtest.virsh("define", path)
    return "prepare-refused(%d)" % r.returncode, problems


def one_name(inj, kernel, label, name):
    dom = NamedDomain(kernel, name, label)
    try:
        dom.define()
    except vmtest.CommandError as e:
        inj.record(label, "define", "rejected-by-libvirt", 0, [])
        log("libvirt rejected %r: %s" % (name, e.stderr.strip()))
        dom.cleanup()
        return
    try:
        got = vmtest.virsh("domname", dom.ref).rstrip("\n")
        if got != name:
            log("libvirt stored the name %r as %r" % (name, got))
        what, problems = prepare(dom)
        dom.start()
        dom.wait_first_tick()
        g = Guest(dom)
        g.baseline()
        inj.record(label, "prepare+start", what, 0, problems)

        r = vmucli.vmupdate("save", "--", name)
        st = faults.domstate(g.ref)
        problems = []
        if r.returncode == 0:
            if st != "shut off" or faults.manifest_state(g.uuid) != "saved":
                problems.append("save said ok, domain %s, manifest %s"
                                % (st, faults.manifest_state(g.uuid)))
            outcome, lost, more = faults.settle(g)
            inj.record(label, "save+restore", "saved,then-" + outcome, lost, problems + more)
        else:
            if r.returncode != 2:
                problems.append("save exited %d (not a clean refusal): %s"
                                % (r.returncode, r.stderr.strip()))
            outcome, lost, more = faults.settle(g)
            inj.record(label, "save+restore", "save-refused(%d),then-%s" % (r.returncode, outcome),
                       lost, problems + more)

        # The hook on the stock path with this name.
        vmtest.virsh("managedsave", g.ref)
        r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, "start", g.ref], check=False)
        outcome, lost, more = faults.settle(g)
        problems = [] if r.returncode == 0 else ["virsh start after a stock managedsave failed: %s"
                                                 % r.stderr.strip()]
        inj.record(label, "stock-managedsave+start", outcome, lost, problems + more)
        if os.path.exists(PWNED):
            inj.record(label, "shell", "command-executed", 0, ["%s was created" % PWNED])
            os.unlink(PWNED)
    except Exception as e:
        inj.record(label, "error", "error", 1, ["%s: %s" % (type(e).__name__, e)])
        vmucli.dump_hook_log()
    finally:
        dom.cleanup()


def main():
    kernel = faults.suite_setup()
    vmtest._unlink(PWNED)
    inj = Injections("names")
    with vmucli.hook_installed():
        for label, name in NAMES:
            if any(faults.selected(label, phase) for phase in
                   ("define", "prepare+start", "save+restore", "stock-managedsave+start")):
                one_name(inj, kernel, label, name)
    inj.finish()


vmtest.run(main)
