#!/usr/bin/env python3
"""proptests/counterexample_trace.py - a shrunk counterexample opens as a trace.

    counterexample_trace.py [--max-steps N] -- PROG ARGS...

Runs a property-test binary (its planted-bug controls) with
FIBER_PROP_TRACE_DIR set to a fresh directory; every control that fails as it
must writes the shrunk counterexample's simulator run there as Chrome trace
JSON (proptests/sim_trace.hpp).  Requires exit 0, at least one trace, each
passing the schema check of the native exports (tools/trace_check.py schema:
ui.perfetto.dev opens it), and each counterexample's schedule at most N steps
(issue 16: "a shrunk property counterexample has at most 10 steps").  Prints
one line per trace.  Exit 1 on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import trace_check  # noqa: E402  (the schema of the native exports)


def main(argv):
    ap = argparse.ArgumentParser(prog="counterexample_trace.py", description=__doc__.split("\n")[0],
                                 usage="counterexample_trace.py [--max-steps N] -- PROG ARGS...")
    ap.add_argument("--max-steps", type=int, default=10, help="most schedule steps a shrunk counterexample may have")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no program to run")
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(cmd, env=dict(os.environ, FIBER_PROP_TRACE_DIR=d), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            print(p.stdout[-4000:])
            print("FAIL: %s exited %d" % (cmd[0], p.returncode))
            return 1
        files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
        if not files:
            print("FAIL: no control wrote a counterexample trace")
            return 1
        for f in files:
            doc = json.load(open(os.path.join(d, f)))
            problems = trace_check.schema(doc)
            info = doc.get("otherData", {})
            steps = info.get("schedule_steps", -1)
            runs = sum(1 for e in doc["traceEvents"] if e["ph"] == "B")
            verdict = "ok"
            if problems:
                verdict = "FAIL: schema: %s" % "; ".join(problems[:3])
            elif not 0 <= steps <= a.max_steps:
                verdict = "FAIL: %d schedule steps (at most %d)" % (steps, a.max_steps)
            bad += verdict != "ok"
            print("%-60s %3d schedule + %3d drain steps, %4d events, %3d runs: %s" % (
                f, steps, info.get("drain_steps", -1), len(doc["traceEvents"]), runs, verdict))
    print("%d traces, %d failing" % (len(files), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
