#!/usr/bin/env python3
"""papers/scripts/io_table.py - issue 12's benchmark tables and figures.

    python3 papers/scripts/io_table.py <results-dir> -o papers/results/io-bench.md

Reads what bench/run.py (bench/io_run.py) left in the results directory:
echo.json (TCP echo over loopback, every run of every round) and
blocking_locks.out (bench_blocking_locks' own tables), io_latency.json
(fiber_io_latency: readiness latency, idle poll on/off).  Writes the Markdown and,
when matplotlib is importable, SVG figures in figures/ next to it.  Echo:
for each connection count and server configuration, the median requests/s
over the rounds with [min, max], the ratio to the epoll loop computed per
round (same round, so the same machine load) with its median and [min,
max], and the median p99 latency.  Nothing measured is hard-coded.
"""
import argparse
import json
import os
import statistics
import sys


def fmt_range(vals, f="%.0f"):
    if not vals:
        return "-"
    return (f + " [" + f + ", " + f + "]") % (statistics.median(vals), min(vals), max(vals))


def label(server, procs):
    if server == "fiber":
        return "fiber, %d KLT%s" % (procs, "s" if procs > 1 else "")
    if server == "fiber-nopoll":
        return "fiber, %d KLT%s, no idle poll" % (procs, "s" if procs > 1 else "")
    if server == "go":
        return "Go net, GOMAXPROCS=%d" % procs
    return {"epoll": "epoll loop (1 thread)", "thread": "thread per connection"}.get(server, server)


def echo_rows(doc):
    """{conns: [(server, procs, req_s list, ratio list, p99 list, ok, total)]}"""
    runs = doc["runs"]
    epoll = {(r["round"], r["conns"]): r["result"]["req_s"] for r in runs
             if r["server"] == "epoll" and r["result"]}
    order = {"epoll": 0, "fiber": 1, "fiber-nopoll": 2, "go": 3, "thread": 4}
    out = {}
    keys = sorted({(r["conns"], r["server"], r["procs"]) for r in runs},
                  key=lambda k: (k[0], order.get(k[1], 9), k[2]))
    for conns, server, procs in keys:
        mine = [r for r in runs if (r["conns"], r["server"], r["procs"]) == (conns, server, procs)]
        ok = [r for r in mine if r["result"]]
        req = [r["result"]["req_s"] for r in ok]
        ratio = [r["result"]["req_s"] / epoll[(r["round"], conns)] for r in ok
                 if epoll.get((r["round"], conns))]
        p99 = [r["result"]["p99_us"] for r in ok]
        out.setdefault(conns, []).append((server, procs, req, ratio, p99, len(ok), len(mine)))
    return out


def echo_markdown(doc, meta, fig):
    loads = [r["loadavg"][0] for r in doc["runs"]]
    L = ["## TCP echo over loopback (bench/echo.cpp, bench/go/echo.go)", "",
         "Commit %s, %s, %d CPUs; %d interleaved rounds of %.1f s per run; load average (1 min) "
         "before the runs: %.1f to %.1f, after: %s.  The client runs on the same CPUs as the server." %
         (meta.get("git", "?"), meta.get("date", "?"), doc.get("nproc") or 0, doc["rounds"], doc["seconds"],
          min(loads) if loads else 0, max(loads) if loads else 0,
          "/".join("%.1f" % x for x in doc.get("loadavg_end", []))), "",
         "Median over the rounds, [min, max] across rounds.  x epoll = the run's requests/s over the "
         "epoll loop's in the same round.", ""]
    for conns, rows in sorted(echo_rows(doc).items()):
        L += ["### %d connections" % conns, "",
              "| server | req/s | x epoll | p99 us | runs |", "|---|---:|---:|---:|---:|"]
        for server, procs, req, ratio, p99, ok, total in rows:
            L.append("| %s | %s | %s | %s | %d/%d |" % (label(server, procs), fmt_range(req),
                                                        fmt_range(ratio, "%.2f"), fmt_range(p99), ok, total))
        L.append("")
    L += head_to_head(doc)
    if fig:
        L += ["![requests/s relative to the epoll loop](%s)" % fig, ""]
    return L


def head_to_head(doc):
    """The fiber server's requests/s over a peer's in the same round."""
    by = {(r["round"], r["server"], r["conns"], r["procs"]): r["result"]["req_s"]
          for r in doc["runs"] if r["result"]}
    conns_list = sorted({r["conns"] for r in doc["runs"]})
    procs_list = sorted({r["procs"] for r in doc["runs"] if r["server"] == "fiber"})
    peers = [("go", "Go net", True), ("fiber-nopoll", "fiber without idle poll", True),
             ("thread", "thread per connection", False)]
    L = ["### Head to head (per round)", "",
         "fiber's requests/s over the peer's in the same round: median [min, max].", "",
         "| conns | KLTs | " + " | ".join("x " + name for _, name, _ in peers) + " |",
         "|---:|---:|" + "---:|" * len(peers)]
    for conns in conns_list:
        for k in procs_list:
            cells = []
            for server, _, same_procs in peers:
                kp = k if same_procs else 1
                xs = [by[(i, "fiber", conns, k)] / by[(i, server, conns, kp)] for i in range(doc["rounds"])
                      if (i, "fiber", conns, k) in by and by.get((i, server, conns, kp))]
                cells.append(fmt_range(xs, "%.2f"))
            L.append("| %d | %d | %s |" % (conns, k, " | ".join(cells)))
    return L + [""]


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        matplotlib.rcParams["svg.hashsalt"] = "fiber"  # stable ids, as report.py
        matplotlib.rcParams["svg.fonttype"] = "none"
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("io_table: matplotlib not importable (python3-matplotlib): no figures", file=sys.stderr)
        return None


def echo_figure(doc, outdir):
    plt = pyplot()
    if plt is None:
        return None
    rows = echo_rows(doc)
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.6), squeeze=False)
    for ax, (conns, rs) in zip(axes[0], sorted(rows.items())):
        rs = [r for r in rs if r[3]]
        names = [label(s, p) for s, p, *_ in rs]
        med = [statistics.median(r[3]) for r in rs]
        lo = [m - min(r[3]) for m, r in zip(med, rs)]
        hi = [max(r[3]) - m for m, r in zip(med, rs)]
        ax.barh(range(len(rs)), med, xerr=[lo, hi], color="#4c78a8", capsize=3)
        ax.set_yticks(range(len(rs)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(1 / 1.3, color="#e45756", lw=0.8, ls="--")
        ax.set_title("%d connections" % conns, fontsize=9)
        ax.set_xlabel("requests/s / epoll loop's (median, min-max)", fontsize=8)
    fig.tight_layout()
    name = "io_echo.svg"
    os.makedirs(os.path.join(outdir, "figures"), exist_ok=True)
    fig.savefig(os.path.join(outdir, "figures", name), format="svg", metadata={"Date": None})
    plt.close(fig)
    return "figures/" + name


def locks_rows(text):
    """The contended table's rows: [(label, ns)]."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("| contended"):
            inside = True
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            try:
                rows.append((cells[0], float(cells[1])))
            except (ValueError, IndexError):
                pass
            continue
        inside = False
    return rows


def latency_markdown(doc, meta):
    """fiber_io_latency's runs: per configuration, medians over the rounds."""
    L = ["## Readiness latency of a parked read (bench/io_latency.cpp)", "",
         "Commit %s; 1 KLT, quantum 1 ms; an OS thread writes its clock into a pipe every 700 us, a fiber "
         "parked in read() records the delay; %d samples per run, %d interleaved rounds; the spinner is a "
         "CPU-bound fiber on the same KLT.  Median over the rounds of each run's percentile, [min, max]." %
         (meta.get("git", "?"), doc["samples"], doc["rounds"]), "",
         "| idle poll | spinner | p50 us | p90 us | p99 us | max us | runs |", "|---|---|---:|---:|---:|---:|---:|"]
    for poll in (True, False):
        for spin in (False, True):
            mine = [r for r in doc["runs"] if r["idle_poll"] == poll and r["spinner"] == spin]
            ok = [r["result"] for r in mine if r["result"]]
            cells = [fmt_range([x[k] for x in ok], "%.1f") for k in ("p50_us", "p90_us", "p99_us", "max_us")]
            L.append("| %s | %s | %s | %d/%d |" % ("on" if poll else "off", "yes" if spin else "no",
                                                  " | ".join(cells), len(ok), len(mine)))
    return L + [""]


def locks_figure(rows, outdir):
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [ns for _, ns in rows], color="#72b7b2")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([n for n, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ns per acquisition, 4 workers (best of the program's repetitions)", fontsize=8)
    fig.tight_layout()
    name = "io_blocking_locks.svg"
    os.makedirs(os.path.join(outdir, "figures"), exist_ok=True)
    fig.savefig(os.path.join(outdir, "figures", name), format="svg", metadata={"Date": None})
    plt.close(fig)
    return "figures/" + name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="bench/run.py's results directory")
    ap.add_argument("-o", "--out", required=True, help="Markdown file to write")
    a = ap.parse_args()
    outdir = os.path.dirname(os.path.abspath(a.out))
    meta = {}
    try:
        with open(os.path.join(a.results, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        pass
    L = ["# Issue 12 benchmarks (generated by papers/scripts/io_table.py; do not edit)", "",
         "Run by `tools/fiberctl bench` (bench/run.py, bench/io_run.py); the discussion is in "
         "papers/results/echo.md.", ""]
    found = False
    try:
        with open(os.path.join(a.results, "echo.json")) as f:
            doc = json.load(f)
        L += echo_markdown(doc, meta, echo_figure(doc, outdir))
        found = True
    except (OSError, ValueError):
        L += ["No echo run in %s." % a.results, ""]
    try:
        with open(os.path.join(a.results, "io_latency.json")) as f:
            L += latency_markdown(json.load(f), meta)
    except (OSError, ValueError):
        L += ["No readiness-latency run in %s." % a.results, ""]
    try:
        with open(os.path.join(a.results, "blocking_locks.out")) as f:
            text = f.read()
        rows = locks_rows(text)
        fig = locks_figure(rows, outdir) if rows else None
        lm = {}
        try:
            with open(os.path.join(a.results, "blocking_locks.json")) as f:
                lm = json.load(f)
        except (OSError, ValueError):
            pass
        load = lambda k: "/".join("%.1f" % x for x in lm.get(k, [])) or "?"
        L += ["## Blocking locks in fibers (bench/bench_blocking_locks.cpp)", "",
              "Commit %s, `%s`; load average before %s, after %s." %
              (meta.get("git", "?"), " ".join(lm.get("cmd", ["bench_blocking_locks"])), load("loadavg_before"),
               load("loadavg_after")), "", text.strip(), ""]
        if fig:
            L += ["![contended locks](%s)" % fig, ""]
        found = True
    except OSError:
        L += ["No blocking-locks run in %s." % a.results, ""]
    with open(a.out, "w") as f:
        f.write("\n".join(L))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
