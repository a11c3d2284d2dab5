#!/usr/bin/env python3
"""Self-test of the integration test harness (vmtest.py) and the counter guest.

1. SerialLog parsing and assert_continued on synthetic logs (no VM).
2. Starts the daemons, boots the guest plainly through libvirt, checks that
   ticks arrive with a stable boot id and checksum over 3+ ticks.
3. Boots it again file-backed: QEMU must get a shared memory-backend-file;
   restarts libvirtd meanwhile and checks the guest keeps running.

Usage: selftest.py [--guest PATH]   (or VMUPDATE_TEST_GUEST=PATH)
Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmtest  # noqa: E402
from vmtest import log  # noqa: E402

ID = "0123456789abcdef"
SUM = "fedcba9876543210"


def check_parser():
    """assert_continued must accept a clean run and reject each failure kind."""
    good = ["VMUGUEST boot id=%s" % ID, "VMUGUEST filled mib=32 sum=%s" % SUM] + \
           ["VMUGUEST tick=%d id=%s sum=%s" % (i, ID, SUM) for i in range(1, 6)]
    bad = {
        "reboot": good[:4] + ["VMUGUEST boot id=1111111111111111"] + good[4:],
        "sum": good[:5] + ["VMUGUEST tick=4 id=%s sum=%s" % (ID, "0" * 16)],
        "gap": good[:4] + good[5:],
        "rollback": good + ["VMUGUEST tick=2 id=%s sum=%s" % (ID, SUM)],
    }
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "serial")

        def load(lines, partial=""):
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n" + partial)
            return vmtest.SerialLog(path)

        s = load(good, partial="VMUGUEST tick=6 id=")
        assert s.boots() == [ID], s.boots()
        assert s.filled() == [(32, SUM)], s.filled()
        t = s.last_tick()
        assert tuple(t) == (5, ID, SUM) and t.line == 6, (t, t.line)
        first = s.ticks()[0]
        s.assert_continued(first, t)
        assert s.wait_for(r"tick=3 ", timeout=1).group(0) == "tick=3 "
        for kind, lines in bad.items():
            s = load(lines)
            try:
                s.assert_continued(s.ticks()[0], verbose=False)
            except AssertionError as e:
                log("parser check: %s detected (%s)" % (kind, e))
            else:
                raise AssertionError("assert_continued missed a %s" % kind)
    log("serial parser checks passed")


def check_running_guest(dom, n_ticks=3):
    """First tick, then n_ticks more with the same boot id and checksum."""
    first = dom.wait_first_tick(timeout=60)
    boots = dom.serial.boots()
    assert len(boots) == 1, "expected one boot line, got %s" % boots
    assert first.id == boots[0], (first, boots)
    filled = dom.serial.filled()
    assert filled and filled[0][0] == 32, "filled line: %s" % filled
    assert first.sum == filled[0][1], "tick sum %s != filled sum %s" % (first.sum, filled[0][1])
    last = dom.serial.wait_for_tick(first.tick + n_ticks, timeout=n_ticks * 3 + 10)
    dom.serial.assert_continued(first, last)
    assert dom.state() == "running", dom.state()
    return dom.first_tick_after


def main():
    check_parser()
    vmtest.require_root_and_tools()
    kernel = vmtest.find_test_guest()
    daemons = vmtest.LibvirtDaemons().ensure()
    vmtest.cleanup_stale_domains()
    timings = {}

    with vmtest.TestDomain(kernel, tag="selftest-plain") as dom:
        timings["plain"] = check_running_guest(dom)
        kinds = [b.get("qom-type") for b in dom.memory_backends()]
        log("memory backends (plain): %s" % dom.memory_backends())
        assert "memory-backend-file" not in kinds, kinds

    with vmtest.TestDomain(kernel, tag="selftest-file", file_backed=True) as dom:
        timings["file_backed"] = check_running_guest(dom)
        backends = dom.memory_backends()
        log("memory backends (file-backed): %s" % backends)
        files = [b for b in backends if b.get("qom-type") == "memory-backend-file"]
        assert files, "no memory-backend-file in the QEMU command line: %s" % dom.qemu_argv()
        assert all(b.get("share") is True for b in files), "backend not share=on: %s" % files
        for b in files:
            assert os.path.exists(b["mem-path"]), "RAM file %s missing" % b["mem-path"]
        assert "memory-backend-file" in dom.qemu_log(), "not in %s.log" % dom.name

        # libvirtd restart: the domain and its QEMU must survive.
        pid = dom.qemu_pid()
        before = dom.serial.last_tick()
        daemons.restart_libvirtd()
        assert dom.state() == "running", dom.state()
        assert dom.qemu_pid() == pid, "QEMU pid changed: %s -> %s" % (pid, dom.qemu_pid())
        after = dom.serial.wait_for_tick(before.tick + 2, timeout=15)
        dom.serial.assert_continued(before, after)

    for k, v in timings.items():
        log("timing: %s: virsh start -> first tick %.3fs" % (k, v))


if __name__ == "__main__":
    vmtest.run(main)
