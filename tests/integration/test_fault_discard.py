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
Afterwards a plain `vmupdate save` + `restore` of the same guest works."""
import json
import os
import signal

import faults
import vmtest
import vmucli
from faults import CliRun, Guest, Injections, settle
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
