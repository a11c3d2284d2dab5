"""test_points: vmupdate's test points, read from their one list,
libvmupdate/src/test_points.def (an X-macro the C++ includes too).

    import test_points
    test_points.NAMES                   # {"save:locked": "the domain's lock taken, ...", ...}
    test_points.point("save:locked")    # the name; KeyError if the .def lacks it
    test_points.points("save:")         # every name starting with "save:", in .def order

The fault and e2e tests name their points through point()/points(), so a point
renamed or dropped in the .def fails the test that uses it at once instead of
reporting "point-not-reached"; tests/check-test-points (ctest test_points.list)
checks statically that every listed point has a call site and a test.
Python 3 standard library only."""
import os
import re

DEF = os.environ.get("VMUPDATE_TEST_POINTS_DEF") or os.path.abspath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "libvmupdate", "src",
    "test_points.def"))
# VMUPDATE_TEST_POINT(id, "name", "doc"), one entry per line
ENTRY = re.compile(r'^\s*VMUPDATE_TEST_POINT\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)')


def parse(path=DEF):
    """[(id, name, doc)] in the order of the file; ValueError on a line that
    mentions the macro but does not parse, or on a repeated id or name."""
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.lstrip().startswith("//") or "VMUPDATE_TEST_POINT(" not in line:
                continue
            m = ENTRY.match(line)
            if not m:
                raise ValueError("%s:%d: not VMUPDATE_TEST_POINT(id, \"name\", \"doc\"): %s"
                                 % (path, n, line.strip()))
            entries.append(m.groups())
    for i in (0, 1):
        seen = [e[i] for e in entries]
        dups = sorted({x for x in seen if seen.count(x) > 1})
        if dups:
            raise ValueError("%s: repeated %s: %s" % (path, ("id", "name")[i], ", ".join(dups)))
    return entries


NAMES = {name: doc for _, name, doc in parse()}


def point(name):
    """`name` if test_points.def lists it, else KeyError (a renamed or dropped point)."""
    if name not in NAMES:
        raise KeyError("test point %r is not in %s" % (name, DEF))
    return name


def points(prefix):
    """Every listed point whose name starts with `prefix`, in the .def's order."""
    found = [n for n in NAMES if n.startswith(prefix)]
    if not found:
        raise KeyError("no test point starting with %r in %s" % (prefix, DEF))
    return found
