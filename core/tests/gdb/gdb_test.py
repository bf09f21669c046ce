#!/usr/bin/env python3
"""core/tests/gdb/gdb_test.py TARGET EXTENSION - runs the gdb extension
(tools/gdb/fiber_gdb.py) in batch mode on gdb_target, live and on a core file
written with gcore, and checks `info fibers`, `info klts` and `fiber bt`.
Exit 77 (ctest: skipped) when gdb is absent or the build has no debug info."""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def gdb(args):
    env = dict(os.environ, FIBER_DEADLOCK="0")
    p = subprocess.run(["gdb", "-batch", "-nx"] + args, capture_output=True, text=True, env=env, timeout=120)
    return p.stdout + p.stderr


def check(out, what):
    ok = True
    for pat in [r'\n(\d+)\s+"gdb-waiter"\s+parked\s+mutex 0x[0-9a-f]+',
                r'\n\d+\s+"gdb-holder"\s+parked\s+semaphore 0x[0-9a-f]+',
                r"klt 0 (idle|scheduling|running fiber \d+), ticks \d+ deferred \d+",
                r"#\d+\s+0x[0-9a-f]+ in gdb_target_waits",
                r"#0\s+0x[0-9a-f]+ in fiber::detail::switch_out"]:
        if not re.search(pat, out):
            print("%s: missing /%s/" % (what, pat))
            ok = False
    # Time in state, decoded from the state word (core/src/diag.hpp): the
    # waiter has been parked for about the target's 300 ms sleep.
    m = re.search(r'\n\d+\s+"gdb-waiter"\s+parked\s+mutex 0x[0-9a-f]+\s+-\s+(\d+\.\d)s', out)
    if not m or not 0.1 <= float(m.group(1)) <= 60:
        print("%s: the waiter's time in state is missing or off (want 0.1-60 s): %s" %
              (what, m.group(1) if m else None))
        ok = False
    return ok


def main():
    target, ext = sys.argv[1], sys.argv[2]
    if shutil.which("gdb") is None:
        print("SKIP: gdb is not installed; the gdb extension was not tested")
        return 77
    probe = gdb(["-ex", "python print('fcb-size', gdb.lookup_type('fiber::detail::fcb').sizeof)", target])
    if "fcb-size" not in probe:
        print("SKIP: %s has no debug info for libfiber (a Release build); the extension needs it" % target)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        core = os.path.join(tmp, "target.core")
        # Live: stop at fiber_gdb_ready, list, backtrace the waiter, then write a core.
        script = os.path.join(tmp, "live.py")
        with open(script, "w") as f:
            f.write(
                "import gdb, re\n"
                "out = gdb.execute('info fibers', to_string=True)\n"
                "print(out)\n"
                "m = re.search(r'\\n(\\d+)\\s+\"gdb-waiter\"', out)\n"
                "gdb.execute('fiber bt %%s' %% m.group(1))\n"
                "gdb.execute('info klts')\n"
                "gdb.execute('gcore %s')\n" % core)
        live = gdb(["-ex", "source " + ext, "-ex", "break fiber_gdb_ready", "-ex", "run",
                    "-ex", "source " + script, "-ex", "kill", target])
        print(live)
        ok = check(live, "live")
        if not os.path.exists(core):
            print("gcore wrote no core file")
            return 1
        script2 = os.path.join(tmp, "core.py")
        with open(script2, "w") as f:
            f.write(
                "import gdb, re\n"
                "out = gdb.execute('info fibers', to_string=True)\n"
                "print(out)\n"
                "m = re.search(r'\\n(\\d+)\\s+\"gdb-waiter\"', out)\n"
                "gdb.execute('fiber bt %s' % m.group(1))\n"
                "gdb.execute('info klts')\n")
        post = gdb(["-ex", "source " + ext, "-ex", "source " + script2, target, core])
        print(post)
        ok = check(post, "core") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
