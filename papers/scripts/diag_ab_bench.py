#!/usr/bin/env python3
"""papers/scripts/diag_ab_bench.py - wall time of the fiber-state bookkeeping
(issue 17), compiled in vs out: the same benchmarks from two Release build
trees of the same source, one configured with -DFIBER_DIAG_NO_STATE=ON, run
interleaved (A B, then B A, ...) so that machine load drifts over both alike.

  diag_ab_bench.py --on build/rel-on --off build/rel-off [--rounds 8] [--reps 5]

For each benchmark: the median, min and max of every repetition's real time
per build, the on/off ratio of the medians, and the spread of each build
((max - min) / median over the per-round medians).  "Not measurable" means
the ratio's distance from 1 is inside the run-to-run spread of either build.
Prints a markdown table (papers/results/icount-diag.md)."""
import argparse
import json
import os
import statistics
import subprocess
import sys

BENCHES = [("bench/bench_yield", "yield/fiber"), ("bench/bench_create", "create/fiber"),
           ("bench/bench_sync", "pingpong/fiber_c")]


def run(build, exe, name, reps, min_time):
    cmd = [os.path.join(build, exe), "--benchmark_filter=^%s/real_time$" % name, "--benchmark_repetitions=%d" % reps,
           "--benchmark_min_time=%s" % min_time, "--benchmark_format=json",
           "--benchmark_report_aggregates_only=false"]
    env = dict(os.environ, FIBER_DEADLOCK="0")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd), p.stderr[-2000:]))
    data = json.loads(p.stdout)
    assert all(b["time_unit"] == "ns" for b in data["benchmarks"]), "want ns"
    its = [b for b in data["benchmarks"] if b.get("run_type") == "iteration"]
    return [b["real_time"] for b in its], [b["cpu_time"] for b in its]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--on", required=True, help="build tree with the bookkeeping (default build)")
    ap.add_argument("--off", required=True, help="build tree configured with -DFIBER_DIAG_NO_STATE=ON")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", default="0.2", help="--benchmark_min_time (seconds; Google Benchmark 1.7)")
    a = ap.parse_args()
    keys = [(n, v, m) for _, n in BENCHES for v in ("on", "off") for m in ("real", "cpu")]
    samples = {k: [] for k in keys}
    rounds = {k: [] for k in keys}
    for r in range(a.rounds):
        order = ("on", "off") if r % 2 == 0 else ("off", "on")
        for exe, name in BENCHES:
            for v in order:
                for m, t in zip(("real", "cpu"), run(a.on if v == "on" else a.off, exe, name, a.reps, a.min_time)):
                    samples[(name, v, m)] += t
                    rounds[(name, v, m)].append(statistics.median(t))
                print("round %d %-18s %-3s median real %.1f cpu %.1f ns" % (
                    r, name, v, rounds[(name, v, "real")][-1], rounds[(name, v, "cpu")][-1]), file=sys.stderr)
    # real: wall time per iteration; cpu: the measuring thread's CPU time per
    # iteration (Google Benchmark's cpu_time: here the KLT that runs the loop),
    # which leaves out the time the loaded machine gave to other processes.
    print("| benchmark | time | on: median [min, max] ns | off: median [min, max] ns | on/off (medians) |"
          " round-median spread on / off | per-round on/off ratios: median [min, max] |")
    print("|---|---|---:|---:|---:|---:|---:|")
    spread = lambda xs: (max(xs) - min(xs)) / statistics.median(xs) * 100
    for _, name in BENCHES:
        for m in ("real", "cpu"):
            on, off = samples[(name, "on", m)], samples[(name, "off", m)]
            ron, roff = rounds[(name, "on", m)], rounds[(name, "off", m)]
            ratios = [x / y for x, y in zip(ron, roff)]
            print("| %s | %s | %.1f [%.1f, %.1f] | %.1f [%.1f, %.1f] | %.3f | %.1f %% / %.1f %% | %.3f [%.3f, %.3f] |" % (
                name, m, statistics.median(on), min(on), max(on), statistics.median(off), min(off), max(off),
                statistics.median(on) / statistics.median(off), spread(ron), spread(roff),
                statistics.median(ratios), min(ratios), max(ratios)))


if __name__ == "__main__":
    main()
