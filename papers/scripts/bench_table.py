#!/usr/bin/env python3
"""papers/scripts/bench_table.py - turn one run of bench/run.py into Markdown.

    python3 papers/scripts/bench_table.py <results-dir> -o papers/results/bench.md

Reads every *.json (Google Benchmark output, and the Go peers' output in the
same shape) in the results directory.  For each benchmark "<topic>/<variant>"
it takes the per-repetition iteration entries (aggregates are ignored and
recomputed), converts real_time to ns and divides by counter "ops" (default
1): the per-op time.  Every number printed is the median over the run's
repetitions; ratios are between medians of the same run.  Target thresholds
are the project's goals (bench/README.md); nothing measured is hard-coded.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

TOPICS = [
    ("yield", "(a) yield between two ULTs on one kernel thread, per yield", ["yield"]),
    ("create", "(b) create + join, serial, per pair", ["create"]),
    ("skynet", "(c) skynet, per ULT created (total per tree in brackets)",
     ["skynet1m", "skynet100k", "skynet10k"]),
    ("preempt", "(d) preemption overhead: two CPU-bound fibers on 1 KLT, per run of both",
     ["preempt"]),
    ("lateness", "(e) wake-up lateness of a 100 us sleeper beside a spinner, one kernel thread",
     ["lateness"]),
    ("sync", "(f) synchronisation", ["mutex", "mutex1klt", "mutexmt", "pingpong"]),
]
# The variant each topic's "x fiber" column divides by.
REFERENCE = {"yield": "fiber", "create": "fiber", "skynet1m": "fiber_1klt",
             "skynet100k": "fiber_1klt", "skynet10k": "fiber_1klt", "preempt": "fiber_ts0",
             "lateness": "fiber_ts4000", "mutex": "fiber", "mutex1klt": "fiber",
             "mutexmt": "fiber", "pingpong": "fiber"}


def base_name(name):
    parts = [p for p in name.split("/")
             if p not in ("real_time", "manual_time") and not re.match(r"^(iterations|repeats|min_time):", p)]
    return "/".join(parts[:2])


def load(results):
    runs, errors, contexts = {}, {}, []
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        if os.path.basename(path) == "meta.json":
            continue
        with open(path) as f:
            try:
                doc = json.load(f)
            except ValueError:
                continue
        contexts.append(doc.get("context", {}))
        for b in doc.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue
            name = base_name(b.get("run_name") or b["name"])
            if b.get("error_occurred"):
                errors.setdefault(name, b.get("error_message", "error"))
                continue
            ops = float(b.get("ops", 1.0)) or 1.0
            per_op = float(b["real_time"]) * UNIT_NS[b.get("time_unit", "ns")] / ops
            r = runs.setdefault(name, {"per_op": [], "total": [], "counters": {}})
            r["per_op"].append(per_op)
            r["total"].append(float(b["real_time"]) * UNIT_NS[b.get("time_unit", "ns")])
            for k, v in b.items():
                if k.startswith("lat_") or k == "switches":
                    r["counters"].setdefault(k, []).append(float(v))
    med = {}
    for name, r in runs.items():
        med[name] = {"per_op": statistics.median(r["per_op"]), "n": len(r["per_op"]),
                     "total": statistics.median(r["total"]),
                     "counters": {k: statistics.median(v) for k, v in r["counters"].items()}}
    return med, errors


def fmt_ns(ns):
    if ns is None:
        return "-"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= div:
            return "%.3g %s" % (ns / div, unit)
    return "%.3g ns" % ns


def fmt_ratio(r):
    return "-" if r is None else ("%.3gx" % r)


def get(med, name, key="per_op"):
    m = med.get(name)
    if m is None:
        return None
    return m["counters"].get(key) if key not in ("per_op", "total") else m[key]


def topic_table(out, med, errors, prefix):
    names = sorted({n for n in list(med) + list(errors) if n.split("/")[0] == prefix})
    if not names:
        return
    ref = get(med, prefix + "/" + REFERENCE.get(prefix, "fiber"))
    lat = prefix == "lateness"
    out.append("")
    out.append("**%s** (reference for the ratio: `%s`)" % (prefix, REFERENCE.get(prefix, "fiber")))
    out.append("")
    if lat:
        out.append("| variant | median lateness | p99 | max | reps |")
        out.append("|---|---|---|---|---|")
    else:
        out.append("| variant | median per op | x reference | reps | note |")
        out.append("|---|---|---|---|---|")
    for n in names:
        variant = n.split("/", 1)[1]
        if n not in med:
            cols = 3 if lat else 2
            out.append("| %s | FAILED: %s |%s" % (variant, errors[n].replace("|", "/"), " |" * (cols + 1)))
            continue
        m = med[n]
        if lat:
            c = m["counters"]
            out.append("| %s | %s | %s | %s | %d |" % (variant, fmt_ns(c.get("lat_median_ns")),
                                                      fmt_ns(c.get("lat_p99_ns")),
                                                      fmt_ns(c.get("lat_max_ns")), m["n"]))
            continue
        ratio = m["per_op"] / ref if ref else None
        note = ""
        if prefix.startswith("skynet"):
            note = "tree %s" % fmt_ns(m["total"])
        if "switches" in m["counters"]:
            note = "%.3g preemptive switches/run" % m["counters"]["switches"]
        out.append("| %s | %s | %s | %d | %s |" % (variant, fmt_ns(m["per_op"]), fmt_ratio(ratio),
                                                   m["n"], note))


def first(med, *names):
    for n in names:
        if n in med:
            return n
    return names[0]


def targets(med, errors):
    """(label, numerator name, denominator name, how, threshold, kind)."""
    rows = []

    def ratio_row(label, num, den, op, thr, key="per_op"):
        a, b = get(med, num, key), get(med, den, key)
        if a is None or b is None:
            why = errors.get(num) or errors.get(den) or "not measured"
            rows.append((label, "-", "%s %s" % (op, thr), "n/a (%s)" % why))
            return
        r = a / b
        ok = r <= thr if op == "<=" else (r >= thr if op == ">=" else r < thr)
        rows.append((label, "%.3g (%s / %s)" % (r, fmt_ns(a), fmt_ns(b)), "%s %s" % (op, thr),
                     "met" if ok else "MISSED"))

    fib_mutex = first(med, "mutex/fiber", "mutex/fiber_c")
    fib_pp = first(med, "pingpong/fiber", "pingpong/fiber_c")
    ratio_row("(a) yield: fiber / Boost.Fiber", "yield/fiber", "yield/boost", "<=", 0.8)
    ratio_row("(a) yield: pthread sched_yield pair / fiber", "yield/pthread_yield", "yield/fiber", ">=", 20)
    ratio_row("(a) yield: pthread futex handoff / fiber", "yield/pthread_futex", "yield/fiber", ">=", 20)
    ratio_row("(b) create+join: fiber / Boost.Fiber", "create/fiber", "create/boost", "<=", 0.8)
    ratio_row("(b) create+join: pthread / fiber", "create/pthread", "create/fiber", ">=", 20)
    for size in ("skynet1m", "skynet100k", "skynet10k"):
        if not any(n.startswith(size + "/") for n in list(med) + list(errors)):
            continue
        ratio_row("(c) %s 1 KLT: fiber / Boost.Fiber recycled stacks" % size,
                  size + "/fiber_1klt", size + "/boost_pooled", "<", 1.0)
        ratio_row("(c) %s 1 KLT: fiber / Go GOMAXPROCS=1" % size,
                  size + "/fiber_1klt", size + "/go_p1", "<=", 1.5)
    for ts in ("4000", "1000"):
        a, b = get(med, "preempt/fiber_ts" + ts), get(med, "preempt/fiber_ts0")
        if a is None or b is None:
            rows.append(("(d) preemption overhead, quantum %s us" % ts, "-", "< 2%", "n/a"))
        else:
            ov = a / b - 1
            rows.append(("(d) preemption overhead, quantum %s us" % ts,
                         "%+.2f%% (%s vs %s)" % (ov * 100, fmt_ns(a), fmt_ns(b)), "< 2%",
                         "met" if ov < 0.02 else "MISSED"))
    for ts in (4000, 1000):
        bound = ts * 1e3 + 1e6
        for key, what in (("lat_median_ns", "median"), ("lat_p99_ns", "p99")):
            v = get(med, "lateness/fiber_ts%d" % ts, key)
            if v is None:
                rows.append(("(e) lateness %s, quantum %d us" % (what, ts), "-", "<= quantum + 1 ms",
                             "n/a (%s)" % errors.get("lateness/fiber_ts%d" % ts, "not measured")))
                continue
            rows.append(("(e) lateness %s, quantum %d us" % (what, ts), fmt_ns(v),
                         "<= %s" % fmt_ns(bound), "met" if v <= bound else "MISSED"))
    ratio_row("(f) uncontended lock+unlock: %s / std::mutex" % fib_mutex, fib_mutex, "mutex/std", "<=", 1.5)
    ratio_row("(f) ping-pong: %s / Boost.Fiber" % fib_pp, fib_pp, "pingpong/boost", "<=", 0.6)
    ratio_row("(f) ping-pong: pthread pair (same CPU) / %s" % fib_pp, "pingpong/pthread_samecpu",
              fib_pp, ">=", 10)
    ratio_row("(f) ping-pong: pthread pair (cross CPU) / %s" % fib_pp, "pingpong/pthread_crosscpu",
              fib_pp, ">=", 10)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    med, errors = load(a.results)
    if not med and not errors:
        print("bench_table: no results in %s" % a.results, file=sys.stderr)
        return 1
    meta = {}
    mp = os.path.join(a.results, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    out = ["# Benchmarks: fiber vs Boost.Fiber vs pthreads vs Go", "",
           "Generated by `papers/scripts/bench_table.py` from one run of `bench/run.py`; do not edit.",
           "Every number is the median over the run's repetitions, all measured in the same run",
           "(compare ratios, not absolutes: see bench/README.md for what each variant does).", ""]
    if meta:
        out.append("Run: %s, git %s, %s CPUs, kernel %s, %d repetitions%s." % (
            meta.get("date"), meta.get("git"), meta.get("nproc"), meta.get("kernel"),
            meta.get("reps", 0), ", quick mode" if meta.get("quick") else ""))
    out += ["", "## Targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    for label, measured, goal, verdict in targets(med, errors):
        out.append("| %s | %s | %s | %s |" % (label, measured, goal, verdict.replace("|", "/")))
    for key, title, prefixes in TOPICS:
        out += ["", "## " + title]
        for p in prefixes:
            topic_table(out, med, errors, p)
    with open(a.output, "w") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
