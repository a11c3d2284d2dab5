"""Fault case `discard`: a Nova-shaped domain (`<discard/>`, never prepared,
`manage = file-backed`) whose QEMU does not let its discard-data be switched off
as `vmupdate save` needs. The CLI stops at `save:discard-set` (right after its
qom-set, before it reads the value back), and then:
  * reverted: another monitor client sets discard-data back on, as a QEMU whose
    setter ignored the value would have left it. The save must be refused
    (exit 2) with the guest running on unchanged: discard-data on as it was, no
    manifest, x-ignore-shared off, counter and memory checksum continuing.
  * SIGKILL: the CLI dies between the switch and the check. The guest runs on;
    discard-data may stay off (harmless: QEMU then leaves its RAM in the file
    that libvirt deletes anyway).
And the restore side: the instance saved (its QEMU had discard on until the
save switched it off), the restore helper is killed at
`restore-helper-connected`, so QEMU refuses the image and libvirt stops the
restoring QEMU (SIGTERM, a graceful exit). That QEMU was started from the saved
XML, which has `<discard/>`; the restore hook dropped it, so the preserved RAM,
the same inode, must still be intact: a plain `vmupdate restore` continues the
guest with its memory checksum.
Afterwards a plain `vmupdate save` + `restore` of the same guest works."""
import json
import os
import signal

import faults
import vmtest
import vmucli
from faults import HELPER, CliRun, Guest, HookPoint, Injections, helper_pids, settle
from vmtest import log
from nova import CONF, nova_domain_xml, set_policy


def discard_data(g):
    q = json.dumps({"execute": "qom-get", "arguments": {"path": "/objects/pc.ram",
                                                         "property": "discard-data"}})
    return json.loads(vmtest.virsh("qemu-monitor-command", g.ref, q, quiet=True))["return"]


def set_discard(g, on):
    q = json.dumps({"execute": "qom-set", "arguments": {"path": "/objects/pc.ram",
                                                         "property": "discard-data", "value": on}})
    vmtest.virsh("qemu-monitor-command", g.ref, q)


def inject(inj, g, variant):
    if discard_data(g) is not True:
        set_discard(g, True)
    run = CliRun("save", g.name, point="save:discard-set")
    if not run.wait_stopped():
        outcome, lost, problems = settle(g)
        inj.record("save:discard-set", variant, "point-not-reached", lost,
                   ["CLI never stopped (rc=%s): %s" % (run.rc, (run.err or "").strip())] + problems)
        return
    problems = []
    if variant == "reverted":
        set_discard(g, True)
        run.cont()
        rc = run.finish()
        if rc != 2 or "still reports it on" not in (run.err or ""):
            problems.append("expected a refusal (exit 2, 'still reports it on'), got %s: %s"
                            % (rc, (run.err or "").strip()))
        if faults.domstate(g.ref) == "running" and discard_data(g) is not True:
            problems.append("discard-data not left as the guest had it (on)")
    else:
        run.signal(signal.SIGKILL)
        run.finish()
    outcome, lost, more = settle(g)
    inj.record("save:discard-set", variant, outcome, lost, problems + more)


def failed_restore(inj, g):
    """The restoring QEMU (from Nova's XML, <discard/> and all) stopped after a
    failed load: the preserved RAM must survive it."""
    if discard_data(g) is not True:
        set_discard(g, True)
    faults.save_ok(g)
    hp = HookPoint("restore-helper-connected")
    hp.arm()
    run = CliRun("restore", g.name)
    problems = []
    try:
        if not hp.wait_reached(timeout=60, proc=run):
            problems.append("the restore helper never stopped (CLI rc=%s)" % run.rc)
        for pid in helper_pids(g.uuid):
            log("kill -KILL %s %d" % (HELPER, pid))
            os.kill(pid, signal.SIGKILL)
        hp.release()
        if run.finish() == 0:
            problems.append("the restore succeeded without the helper")
    finally:
        hp.disarm()
        if run.rc is None:
            run.finish()
    outcome, lost, more = settle(g, expect=("restored",))
    inj.record("restore/restore-helper-connected", "SIGKILL-helper", outcome, lost, problems + more)


def main():
    kernel = faults.suite_setup()
    inj = Injections("discard")
    old = open(CONF).read() if os.path.exists(CONF) else None
    try:
        with vmucli.hook_installed():
            set_policy("file-backed")
            dom = vmtest.TestDomain(kernel, tag="fdisc", memory_mib=128, fill_mib=16, start=False)
            dom.xml = nova_domain_xml(dom, discard=True)
            with dom:
                dom.start()
                dom.wait_first_tick()
                g = Guest(dom)
                g.baseline()
                for variant in ("reverted", "SIGKILL"):
                    if faults.selected("save:discard-set", variant):
                        inject(inj, g, variant)
                if faults.selected("restore/restore-helper-connected", "SIGKILL-helper"):
                    failed_restore(inj, g)
                # The guest is still saveable: the switch works when nothing interferes.
                if discard_data(g) is not True:
                    set_discard(g, True)
                faults.save_ok(g)
                outcome, lost, problems = settle(g)
                inj.record("save-after", "plain", outcome, lost, problems)
    finally:
        if old is None:
            vmtest._unlink(CONF)
        else:
            with open(CONF, "w") as f:
                f.write(old)
    inj.finish()


vmtest.run(main)
