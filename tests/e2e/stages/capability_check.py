#!/usr/bin/env python3
"""capability_check.py DOMAIN [VMUPDATE]: in the host VM, after a case of
host_update_signals.sh: is x-ignore-shared off in the domain's QEMU, and does
vmupdate record no save for it? Prints "capability=on|off save_state=STATE";
exit 0 when both are as they must be, 1 otherwise."""
import json
import subprocess
import sys

name = sys.argv[1]
cli = sys.argv[2] if len(sys.argv) > 2 else "/shared/bin/vmupdate"
out = subprocess.run(["virsh", "-c", "qemu:///system", "qemu-monitor-command", name,
                      '{"execute":"query-migrate-capabilities"}'],
                     capture_output=True, text=True, check=True).stdout
cap = [c["state"] for c in json.loads(out)["return"] if c["capability"] == "x-ignore-shared"]
st = json.loads(subprocess.run([cli, "status", "--json"],
                               capture_output=True, text=True, check=True).stdout)
mine = [d for d in st if d["name"] == name]
save = mine[0]["save_state"] if mine else "?"
print("capability=%s save_state=%s" % ("on" if cap and cap[0] else "off", save or "none"))
sys.exit(0 if (not cap or not cap[0]) and save in ("", "restored") else 1)
