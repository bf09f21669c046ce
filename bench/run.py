#!/usr/bin/env python3
"""bench/run.py - run the side-by-side benchmark suite and write the table.

Builds nothing: give it a configured and built build directory.

    python3 bench/run.py build/bench                 # full run, 5 repetitions
    python3 bench/run.py build/bench --reps 7
    python3 bench/run.py build/bench --quick         # CI-sized (ctest -L bench)

Every bench_* binary found under <build>/bench (or <build>) is run once with
--benchmark_format=json --benchmark_repetitions=N, so that fiber, Boost.Fiber
and pthread variants of a topic are measured side by side in one process; a
full run also interleaves repetitions at random across variants.  If a binary
crashes, each of its benchmarks is rerun alone so the others still report and
the crash is recorded as that benchmark's error.  When `go` is on PATH the Go
peers in bench/go are built (offline, standard library only, GOCACHE in a
temporary directory) and run with GOMAXPROCS=1 and =nproc.  The JSON of the
run goes to the results directory; papers/scripts/bench_table.py then turns it
into the Markdown table (papers/results/bench.md, or bench-quick.md with
--quick).  Timing never fails the run: the exit status is nonzero only if
nothing could be measured or the table could not be written.

Raw data for the report's figures goes to the results directory too:
lateness.csv (every wake-up lateness sample, from bench_lateness through
FIBER_BENCH_SAMPLES_DIR) and fairness.csv (spin_demo --csv: per-fiber progress
over time, when examples/spin_demo is built).  Progress: one line per binary
with an ETA from the previous run's durations (timings.json).

Issue 12's benchmarks run after the suite (bench/io_run.py; --no-io skips
them, --io-only runs nothing else): TCP echo over loopback (fiber_echo's
client against the epoll loop, a thread per connection, the fiber server and
Go's net on 1 and 2 KLTs / GOMAXPROCS, several interleaved rounds, one
progress line per run) and bench_blocking_locks (contended std::mutex in
fibers vs fiber::mutex vs std::thread).  papers/scripts/io_table.py writes
their tables and SVG figures to papers/results/io-bench.md (+ figures/), or
beside the JSON with --quick.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import io_run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# bench_* programs that are not Google Benchmark binaries (run by io_run.py).
NOT_GBENCH = {"bench_blocking_locks"}


def find_binaries(build):
    for d in (os.path.join(build, "bench"), build):
        if os.path.isdir(d):
            bins = sorted(os.path.join(d, f) for f in os.listdir(d)
                          if f.startswith("bench_") and f not in NOT_GBENCH and os.access(os.path.join(d, f), os.X_OK)
                          and os.path.isfile(os.path.join(d, f)))
            if bins:
                return bins
    return []


def run_gbench(binary, args, env, timeout):
    try:
        p = subprocess.run([binary] + args, env=env, capture_output=True, text=True,
                           timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout after %ds" % timeout
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    doc = None
    if rc == 0:
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
    return rc, doc, err


def tail(text, n=3):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])


def run_binary(binary, gb_args, env, timeout, log):
    name = os.path.basename(binary)
    rc, doc, err = run_gbench(binary, gb_args, env, timeout)
    log.write("== %s rc=%s\n%s\n" % (name, rc, err))
    if doc is not None:
        return doc
    # Crash (or hang): rerun each benchmark alone.
    print("  %s failed (rc=%s): rerunning its benchmarks one by one" % (name, rc))
    p = subprocess.run([binary, "--benchmark_list_tests=true"], env=env,
                       capture_output=True, text=True, timeout=60)
    merged = {"context": {"executable": binary, "note": "rerun per benchmark after rc=%s" % rc},
              "benchmarks": []}
    for test in p.stdout.split():
        filt = "--benchmark_filter=^%s$" % re.escape(test)
        rc1, doc1, err1 = run_gbench(binary, gb_args + [filt], env, timeout)
        log.write("== %s %s rc=%s\n%s\n" % (name, test, rc1, err1))
        if doc1 is not None:
            merged["context"].update({k: v for k, v in doc1.get("context", {}).items()
                                      if k not in merged["context"]})
            merged["benchmarks"].extend(doc1.get("benchmarks", []))
        else:
            merged["benchmarks"].append({
                "name": test, "run_name": test, "run_type": "iteration",
                "error_occurred": True,
                "error_message": "process ended with rc=%s: %s" % (rc1, tail(err1))})
    return merged


def run_go(results, reps, quick, nproc, log):
    go = shutil.which("go")
    if not go:
        print("  go not found: Go peers skipped")
        return
    tmp = tempfile.mkdtemp(prefix="fiber-bench-go-")
    env = dict(os.environ, GOCACHE=os.path.join(tmp, "cache"), GOFLAGS="", GOPROXY="off",
               GOTOOLCHAIN="local", CGO_ENABLED="0")
    bins = {}
    for prog in ("skynet", "lateness", "peers"):
        out = os.path.join(tmp, prog)
        p = subprocess.run([go, "build", "-o", out, prog + ".go"], cwd=os.path.join(HERE, "go"),
                           env=env, capture_output=True, text=True)
        log.write("== go build %s rc=%d\n%s\n" % (prog, p.returncode, p.stderr))
        if p.returncode == 0:
            bins[prog] = out
        else:
            print("  go build %s failed: %s" % (prog, tail(p.stderr)))
    runs = []
    sizes = [("skynet10k", 10000), ("skynet100k", 100000)] + ([] if quick else [("skynet1m", 1000000)])
    for procs, tag in ((1, "go_p1"), (nproc, "go_pall")):
        for topic, size in sizes:
            runs.append(("skynet", procs, ["-size", str(size), "-reps", str(reps),
                                            "-name", "%s/%s" % (topic, tag)],
                         "go_%s_%s" % (topic, tag)))
    runs.append(("lateness", 1, ["-samples", "20" if quick else "100", "-reps", str(reps),
                                 "-name", "lateness/go_p1"], "go_lateness_p1"))
    runs.append(("peers", 1, ["-reps", str(reps), "-suffix", "go_p1"], "go_peers_p1"))
    for prog, procs, args, outname in runs:
        if prog not in bins:
            continue
        print("  go %s %s (GOMAXPROCS=%d)" % (prog, " ".join(args), procs))
        renv = dict(env, GOMAXPROCS=str(procs))
        try:
            p = subprocess.run([bins[prog]] + args, env=renv, capture_output=True, text=True,
                               timeout=1800)
            log.write("== go %s %s rc=%d\n%s\n" % (prog, args, p.returncode, p.stderr))
            doc = json.loads(p.stdout) if p.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError) as e:
            log.write("== go %s %s failed: %s\n" % (prog, args, e))
            doc = None
        if doc is not None:
            with open(os.path.join(results, outname + ".json"), "w") as f:
                json.dump(doc, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)


def eta_text(prev, remaining, t_start):
    """ETA of the remaining binaries from the previous run's durations."""
    names = [os.path.basename(r) for r in remaining]
    if not prev or any(n not in prev for n in names):
        return "(no ETA: no earlier run of these in this results directory)"
    left = sum(prev[n] for n in names)
    return "(elapsed %s, ETA ~%s from the last run)" % (clock(time.monotonic() - t_start), clock(left))


def clock(s):
    s = int(s + 0.5)
    return "%dh%02dm" % (s // 3600, s // 60 % 60) if s >= 3600 else "%dm%02ds" % (s // 60, s % 60)


def run_fairness(build, results, quick, log):
    """spin_demo's per-fiber progress over time: the fairness figure's data."""
    demo = os.path.join(build, "examples", "spin_demo")
    if not os.access(demo, os.X_OK):
        print("  spin_demo not built: no fairness data")
        return
    for klts, ts in ((1, 4000), (1, 1000)):
        out = os.path.join(results, "fairness_k%d_ts%d.csv" % (klts, ts))
        cmd = [demo, "--fibers", "8", "--klts", str(klts), "--timeslice", str(ts),
               "--seconds", "2" if quick else "6", "--period", "100", "--quiet", "--csv", out]
        print("  fairness: %s" % " ".join(cmd[1:]), flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        log.write("== spin_demo rc=%d\n%s\n%s\n" % (p.returncode, p.stdout, p.stderr))


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?", help="build directory (configured and built)")
    ap.add_argument("--build-dir", help="same as the positional argument")
    ap.add_argument("--reps", type=int, help="repetitions (default 5, --quick 3)")
    ap.add_argument("--quick", action="store_true", help="CI-sized problems, short runs")
    ap.add_argument("--results-dir", help="where the JSON goes (default <build>/bench-results)")
    ap.add_argument("--table", help="Markdown output (default papers/results/bench.md, "
                                    "bench-quick.md with --quick)")
    ap.add_argument("--filter", help="only binaries whose name contains this")
    ap.add_argument("--no-go", action="store_true", help="skip the Go peers")
    ap.add_argument("--no-io", action="store_true",
                    help="skip issue 12's benchmarks (echo over loopback, blocking locks)")
    ap.add_argument("--io-only", action="store_true", help="run only issue 12's benchmarks")
    ap.add_argument("--echo-rounds", type=int,
                    help="echo: interleaved rounds of every server configuration (default 3, --quick 1)")
    ap.add_argument("--echo-seconds", type=float, help="echo: seconds per run (default 2, --quick 1)")
    ap.add_argument("--echo-conns", help="echo: connection counts, comma-separated (default 100,1000; "
                                         "--quick 100)")
    ap.add_argument("--echo-procs", default="1,2",
                    help="echo: KLTs of the fiber server and GOMAXPROCS of Go's (default 1,2)")
    ap.add_argument("--io-table", help="issue 12's Markdown (default papers/results/io-bench.md; "
                                       "with --quick <results-dir>/io-bench.md)")
    a = ap.parse_args()
    build = a.build or a.build_dir
    if not build:
        ap.error("give the build directory")
    reps = a.reps or (3 if a.quick else 5)
    results = a.results_dir or os.path.join(build, "bench-results-quick" if a.quick else "bench-results")
    table = a.table or os.path.join(ROOT, "papers", "results",
                                    "bench-quick.md" if a.quick else "bench.md")
    os.makedirs(results, exist_ok=True)
    prev_times = {}
    try:
        with open(os.path.join(results, "timings.json")) as f:
            prev_times = json.load(f)
    except (OSError, ValueError):
        pass
    for f in os.listdir(results):
        if f.endswith((".json", ".csv", ".out")):  # .out: io_run.py's blocking-locks tables
            os.remove(os.path.join(results, f))

    bins = [] if a.io_only else find_binaries(build)
    if a.filter:
        bins = [b for b in bins if a.filter in os.path.basename(b)]
    if not bins and not a.io_only:
        print("no bench_* binaries under %s (build the bench targets first)" % build)
        return 1
    env = dict(os.environ, FIBER_BENCH_SAMPLES_DIR=os.path.abspath(results))
    if a.quick:
        env["FIBER_BENCH_QUICK"] = "1"
    gb_args = ["--benchmark_format=json", "--benchmark_repetitions=%d" % reps]
    if a.quick:
        gb_args.append("--benchmark_min_time=0.05")
    else:
        gb_args.append("--benchmark_enable_random_interleaving=true")
    nproc = os.cpu_count() or 1
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "git": git_rev(), "host": platform.node(), "kernel": platform.release(),
            "nproc": nproc, "reps": reps, "quick": a.quick, "args": gb_args,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}  # a busy machine inflates timings
    with open(os.path.join(results, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    times = {}
    t_start = time.monotonic()
    with open(os.path.join(results, "run.log"), "w") as log:
        for i, b in enumerate(bins):
            name = os.path.basename(b)
            print("[%d/%d] running %s %s" % (i + 1, len(bins), name,
                                           eta_text(prev_times, bins[i:], t_start)), flush=True)
            t0 = time.monotonic()
            doc = run_binary(b, gb_args, env, 600 if a.quick else 3600, log)
            times[name] = time.monotonic() - t0
            with open(os.path.join(results, name + ".json"), "w") as f:
                json.dump(doc, f, indent=1)
        if bins:
            run_fairness(build, results, a.quick, log)
        if not a.no_go and bins:
            print("[go] Go peers %s" % eta_text(prev_times, ["go"], t_start), flush=True)
            t0 = time.monotonic()
            run_go(results, reps, a.quick, nproc, log)
            times["go"] = time.monotonic() - t0
        if not a.no_io:
            run_io(a, build, results, log, times)
    with open(os.path.join(results, "timings.json"), "w") as f:
        json.dump(times, f, indent=1)
    rc = 0
    if not a.no_io:
        rc = io_tables(a, results)
    if not bins:
        return rc
    os.makedirs(os.path.dirname(os.path.abspath(table)), exist_ok=True)
    cmd = [sys.executable, os.path.join(ROOT, "papers", "scripts", "bench_table.py"),
           results, "-o", table]
    p = subprocess.run(cmd)
    if p.returncode != 0:
        return p.returncode
    print("table: %s" % table)
    return rc


def run_io(a, build, results, log, times):
    """Issue 12: echo (all servers) and the blocking-locks program."""
    rounds = a.echo_rounds or (1 if a.quick else 3)
    seconds = a.echo_seconds or (1.0 if a.quick else 2.0)
    conns = [int(x) for x in (a.echo_conns or ("100" if a.quick else "100,1000")).split(",")]
    procs = [int(x) for x in a.echo_procs.split(",")]
    print("[io] echo over loopback: %d round(s) x %.1f s, conns %s, KLTs/GOMAXPROCS %s" %
          (rounds, seconds, conns, procs), flush=True)
    t0 = time.monotonic()
    io_run.run_echo(build, results, log, rounds, seconds, conns, procs)
    times["echo"] = time.monotonic() - t0
    print("[io] readiness latency", flush=True)
    t0 = time.monotonic()
    io_run.run_latency(build, results, log, rounds, 300 if a.quick else 1500)
    times["io_latency"] = time.monotonic() - t0
    print("[io] blocking locks", flush=True)
    t0 = time.monotonic()
    io_run.run_locks(build, results, log, a.quick)
    times["blocking_locks"] = time.monotonic() - t0


def plot_python():
    """A Python that imports matplotlib for the figures: this one, else the
    system's (/usr/bin/python3 with python3-matplotlib, when this one is a
    pyenv or venv interpreter without it)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if os.access(py, os.X_OK) and subprocess.run([py, "-c", "import matplotlib"],
                                                      capture_output=True).returncode == 0:
            return py
    return sys.executable


def io_tables(a, results):
    out = a.io_table or (os.path.join(results, "io-bench.md") if a.quick
                         else os.path.join(ROOT, "papers", "results", "io-bench.md"))
    cmd = [plot_python(), os.path.join(ROOT, "papers", "scripts", "io_table.py"), results, "-o", out]
    p = subprocess.run(cmd)
    if p.returncode == 0:
        print("issue 12 table: %s" % out)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
