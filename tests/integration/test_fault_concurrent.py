"""Fault case 7: `vmupdate save` of a domain while someone runs `virsh
shutdown`, `virsh destroy`, `virsh start` or `virsh managedsave` on the same
domain: once at a fixed step (the CLI held at a test point: after switching
x-ignore-shared on, before libvirt's managed save; or after the managed save,
before the final manifest) and once racing (both started together). The
counter guest ignores ACPI shutdown requests. Afterwards the guest runs on, or
a plain `vmupdate restore DOMAIN` continues it; after a `virsh destroy` (the
operator powered it off) it must be startable again with nothing of vmupdate's
left behind (outcome destroyed)."""
import subprocess
import time

import faults
import vmtest
import vmucli
from faults import CliRun, Injections, settle
from vmtest import log

# (virsh command, CLI point at which it runs)
AT_POINT = [("shutdown", "save:capability-on"), ("destroy", "save:capability-on"),
            ("managedsave", "save:capability-on"), ("start", "save:managed-saved"),
            ("destroy", "save:managed-saved")]


def judge_destroyed(g):
    """After the operator destroyed the domain: vmupdate must not keep it as saved."""
    problems = []
    st = faults.domstate(g.ref)
    ms = faults.manifest_state(g.uuid)
    saved = faults.has_managed_save(g.ref)
    log("after destroy: domstate %s, manifest %s, managed save %s" % (st, ms, saved))
    if st == "running":
        return settle(g)
    if saved:
        # Whatever made it to the image: a plain restore must work.
        return settle(g)
    if ms is not None:
        problems.append("manifest '%s' left after the domain was destroyed" % ms)
    vmtest._forget_vmupdate_state(g.uuid)
    vmtest.virsh("start", g.ref, check=False)
    if faults.domstate(g.ref) != "running":
        problems.append("domain does not start after destroy")
        return "destroyed", 1, problems
    g.baseline()
    return "destroyed", 0, problems


def inject_at_point(inj, g, cmd, point):
    run = CliRun("save", g.name, point=point)
    reached = run.wait_stopped()
    if reached:
        r = vmtest.run_cmd(["virsh", "-c", vmtest.URI, cmd, g.ref], check=False, timeout=120)
        run.cont()
        run.finish()
    outcome, lost, problems = judge_destroyed(g) if cmd == "destroy" else settle(g)
    if not reached:
        problems.insert(0, "CLI never stopped at %s" % point)
        outcome = "point-not-reached"
    inj.record(point, "virsh-" + cmd, outcome, lost, problems)


def inject_racing(inj, g, cmd):
    run = CliRun("save", g.name)
    p = subprocess.Popen(["virsh", "-c", vmtest.URI, cmd, g.ref], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    log("virsh %s -> %d %s" % (cmd, p.returncode, err.strip()))
    run.finish()
    outcome, lost, problems = judge_destroyed(g) if cmd == "destroy" else settle(g)
    inj.record("save-racing", "virsh-" + cmd, outcome, lost, problems)


def main():
    kernel = faults.suite_setup()
    inj = Injections("concurrent")
    with vmucli.hook_installed():
        with faults.managed_guest(kernel, "fconc") as g:
            for cmd, point in AT_POINT:
                if faults.selected(point, "virsh-" + cmd):
                    inject_at_point(inj, g, cmd, point)
            for cmd in ("shutdown", "destroy", "start", "managedsave"):
                if faults.selected("save-racing", "virsh-" + cmd):
                    inject_racing(inj, g, cmd)
    inj.finish()


vmtest.run(main)
