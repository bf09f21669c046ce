#!/usr/bin/env python3
"""papers/scripts/report.py - figures, the results page and the HTML paper from the last runs.

    python3 papers/scripts/report.py [--out papers/results] [--bench-results DIR]

Reads only what runs wrote; draws nothing it has no data for (the results page
says what is missing and which command measures it):
  models      build/lab/models-normal.json (tools/fiberctl check), else the
              tables papers/results/models.md and models-long.md
  benchmarks  papers/results/bench.md (bench/run.py -> bench_table.py), and the
              raw samples of the last bench run: <bench-results>/lateness.csv,
              fairness_*.csv (default build/bench/bench-results)
  fairness    build/lab/fairness.csv (tools/fiberctl demo), else the bench run's
Writes <out>/figures/*.svg (matplotlib), <out>/report.md (the figures with
captions and where each number came from) and <out>/paper.html: papers/paper.md
with its includes expanded (design.md, verification.md, platform.md, report.md),
rendered by pandoc when installed, else by python3-markdown.  Every figure and
table carries the date, git hash and machine of its data and of the drawing.
"""
import argparse
import csv
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git_hash():
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


NOW = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "git": git_hash(),
       "machine": "%s, %d CPUs" % (os.uname().nodename, os.cpu_count() or 0)}


def stamp_text(s):
    return "%s, git %s, %s" % (s.get("date", "date not recorded"), s.get("git", "not recorded"),
                               s.get("machine", "machine not recorded"))


# ------------------------------------------------------------------ inputs
def md_tables(path):
    """{heading: [row dicts]} of every Markdown table in a file."""
    out, head, cols = {}, "", None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#") or line.startswith("**"):
            head, cols = line.strip("#* ").split("**")[0].strip(), None
        elif line.startswith("|") and cols is None:
            cols = [c.strip() for c in line.strip("|").split("|")]
        elif line.startswith("|---"):
            continue
        elif line.startswith("|") and cols:
            vals = [c.strip() for c in line.strip("|").split("|")]
            out.setdefault(head, []).append(dict(zip(cols, vals)))
        else:
            cols = None
    return out


def models_stamp(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"Machine: ([^;]+);", text)
    d = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text)
    g = re.search(r"; git (\w+)", text)
    return {"date": d.group(1) if d else "not recorded", "machine": m.group(1) if m else "not recorded",
            "git": g.group(1) if g else "not recorded"}


def load_models():
    lab = os.path.join(ROOT, "build", "lab", "models-normal.json")
    d = json.load(open(lab)) if os.path.exists(lab) else {"partial": True}
    if not d.get("partial", True):
        rows = [{"model": r["model"], "case": r["case"], "search": r["search"], "bound": int(r["bound"]),
                 "threads": int(r["threads"]), "iters": int(r["iters"]), "verdict": r["verdict"]}
                for r in d["results"]]
        muts = [{"mutant": m["mutant"], "case": m["case"], "caught": m["caught"], "iters": m.get("iters")}
                for m in d["mutants"]]
        return rows, muts, d["stamp"], "build/lab/models-normal.json (tools/fiberctl check)"
    path = os.path.join(ROOT, "papers", "results", "models.md")
    if not os.path.exists(path):
        return [], [], {}, None
    rows, muts = [], []
    paths = [path] + [p for p in [os.path.join(ROOT, "papers", "results", "models-long.md")] if os.path.exists(p)]
    for p in paths:
        for head, table in md_tables(p).items():
            for r in table:
                if "property" in r and "iterations" in r:
                    s = re.match(r"(full|bound|random)(\d*)", r["search"])
                    rows.append({"model": r["model"], "case": r["property"].split(":")[0],
                                 "search": s.group(1), "bound": int(s.group(2) or 0),
                                 "threads": int(r["threads"]), "iters": int(r["iterations"]),
                                 "verdict": r["verdict"], "long": p.endswith("-long" + ".md")})
                elif "mutant" in r and "caught" in r:
                    it = r.get("iterations", "-")
                    muts.append({"mutant": r["mutant"], "case": r["case"], "caught": r["caught"] == "yes",
                                 "iters": int(it) if it.isdigit() else None})
    return rows, muts, models_stamp(path), "papers/results/models.md, models-long.md"


def load_bench():
    path = os.path.join(ROOT, "papers", "results", "bench.md")
    if not os.path.exists(path):
        return None
    text = open(path, encoding="utf-8").read()
    m = re.search(r"Run: ([^,]+), git (\w+), (\d+) CPUs, kernel ([^,]+),", text)
    stamp = {"date": m.group(1) if m else "not recorded", "git": m.group(2) if m else "not recorded",
             "machine": ("%s CPUs, kernel %s" % (m.group(3), m.group(4))) if m else "not recorded"}
    return {"tables": md_tables(path), "stamp": stamp, "cpus": int(m.group(3)) if m else 0}


def per_op_ns(text):
    m = re.match(r"([\d.]+) (ns|us|ms|s)\b", text or "")
    return float(m.group(1)) * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[m.group(2)] if m else None


# ------------------------------------------------------------------ figures
def new_fig(plt, w=8, h=4.5):
    fig, ax = plt.subplots(figsize=(w, h))
    return fig, ax


def save(plt, fig, out, name, data_stamp, source):
    fig.text(0.01, 0.005, "data: %s (%s)\ndrawn: %s" % (source, stamp_text(data_stamp), stamp_text(NOW)),
             fontsize=6.5, color="#555", va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = os.path.join(out, "figures", name)
    fig.savefig(path, format="svg", metadata={"Date": None})
    if os.environ.get("REPORT_PNG_DIR"):  # a raster copy, to look at the figures without a browser
        fig.savefig(os.path.join(os.environ["REPORT_PNG_DIR"], name[:-4] + ".png"), dpi=80)
    plt.close(fig)
    return "figures/" + name


def fig_models(plt, rows, stamp, source, out):
    pts = [r for r in rows if r["search"] in ("bound", "full") and r["verdict"] == "SUCCESS"]
    if not pts:
        return None
    fig, ax = new_fig(plt)
    top = max([r["bound"] for r in pts if r["search"] == "bound"] or [1]) + 1.5
    colors = {2: "#1f77b4", 3: "#ff7f0e", 4: "#2ca02c"}
    for th in sorted({r["threads"] for r in pts}):
        sel = [r for r in pts if r["threads"] == th]
        xs = [r["bound"] if r["search"] == "bound" else top for r in sel]
        ax.scatter(xs, [r["iters"] for r in sel], s=18, alpha=0.75, color=colors.get(th, "#777"),
                   label="%d threads" % th)
    ax.set_yscale("log")
    ticks = sorted({r["bound"] for r in pts if r["search"] == "bound"})
    ax.set_xticks(ticks + [top])
    ax.set_xticklabels([str(t) for t in ticks] + ["full"])
    ax.set_xlabel("context bound (preemptions) - or full search")
    ax.set_ylabel("iterations (executions explored)")
    ax.set_title("Relacy searches of the shipped algorithms: size against bound (%d searches)" % len(pts))
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return save(plt, fig, out, "model_iterations.svg", stamp, source)


def fig_mutants(plt, muts, stamp, source, out):
    if not muts:
        return None
    ids = sorted({m["mutant"] for m in muts})
    cases = sorted({m["case"] for m in muts})
    import numpy as np
    grid = np.full((len(ids), len(cases)), np.nan)
    for m in muts:
        i, j = ids.index(m["mutant"]), cases.index(m["case"])
        grid[i, j] = math.log10(max(m["iters"], 1)) if m["caught"] and m["iters"] else (0 if m["caught"] else -1)
    fig, ax = plt.subplots(figsize=(8, max(4, 0.22 * len(ids) + 1.5)))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_under("#d62728")
    cmap.set_bad("#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=0)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels(ids, fontsize=6.5)
    survived = sum(1 for m in muts if not m["caught"])
    ax.set_title("Mutant kill matrix: %d planted bugs x the cases that check them (%d survived)"
                 % (len(ids), survived), fontsize=10)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("log10 iterations until caught (grey: not checked; red: survived)", fontsize=8)
    return save(plt, fig, out, "mutant_matrix.svg", stamp, source)


def fig_ratios(plt, bench, out):
    rows = bench["tables"].get("Targets", []) if bench else []
    pts = []
    for r in rows:
        m = re.match(r"([\d.]+) \(", r.get("measured", ""))
        g = re.match(r"(<=|>=|<|>) ([\d.]+)$", r.get("goal", ""))
        if m and g:
            pts.append((r["target"], float(m.group(1)), g.group(1), float(g.group(2)), r.get("verdict", "")))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(pts) + 1.5))
    ys = range(len(pts))
    ax.barh(list(ys), [p[1] for p in pts], color=["#2ca02c" if p[4] == "met" else "#d62728" for p in pts])
    for y, p in zip(ys, pts):
        ax.plot([p[3], p[3]], [y - 0.4, y + 0.4], color="k", lw=1.5)
        ax.text(p[1] * 1.08, y, "%.3g (goal %s %g)" % (p[1], p[2], p[3]), va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_yticks(list(ys))
    ax.set_yticklabels([p[0] for p in pts], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (log scale); black tick: the goal; green: met, red: missed")
    ax.set_title("fiber against Boost.Fiber, Go and pthreads: ratios from one run")
    return save(plt, fig, out, "ratios.svg", bench["stamp"], "papers/results/bench.md")


def fig_scaling(plt, bench, out):
    if not bench:
        return None
    series = {}
    for head, rows in bench["tables"].items():
        if not head.startswith("skynet"):
            continue
        size = head.split()[0]
        for r in rows:
            series.setdefault(size, {})[r.get("variant")] = per_op_ns(r.get("median per op"))
    if not series or bench["cpus"] < 1:
        return None
    fig, ax = new_fig(plt)
    n = bench["cpus"]
    for size, v in sorted(series.items()):
        for label, one, alln in (("fiber", "fiber_1klt", "fiber_allklts"), ("Go", "go_p1", "go_pall")):
            if v.get(one) and v.get(alln):
                ax.plot([1, n], [v[one] / 1e3, v[alln] / 1e3], marker="o",
                        label="%s %s" % (label, size), ls="-" if label == "fiber" else "--")
    ax.set_xticks([1, n])
    ax.set_xlabel("kernel threads (fiber KLTs / GOMAXPROCS)")
    ax.set_ylabel("us per ULT (lower is better)")
    ax.set_title("skynet scaling: 1 thread against all %d CPUs of the measuring machine" % n)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    return save(plt, fig, out, "scaling.svg", bench["stamp"], "papers/results/bench.md (skynet tables)")


def fig_scaling_klts(plt, path, out):
    """skynet against Go and CPU-bound speed-up across KLT counts (bench/scaling.sh records)."""
    if not path:
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import scaling_table  # papers/scripts/scaling_table.py: the same medians as its table
    recs = scaling_table.load(path)
    if not recs:
        return None
    fig = scaling_table.draw(plt, scaling_table.summarise(recs))
    r0 = recs[0]
    stamp = {"date": r0.get("date"), "git": r0.get("rev"), "machine": "%s, %s CPUs" % (r0.get("host"), r0.get("cpus"))}
    return save(plt, fig, out, "scaling-klts.svg", stamp, os.path.relpath(path, ROOT))


def fig_jain(plt, paths, out):
    """Jain index of CPU-bound fibers on 2 KLTs per setting (bench/fairness.sh records)."""
    groups = {}  # (fibers, setting) -> [(jain, quiet)]
    for path in paths:
        quiet = "quiet" in os.path.basename(path)
        for line in open(path):
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("workload") != "fair" or r.get("impl") != "fiber" or r.get("klts") != 2:
                continue
            if r.get("label") == "scan":  # tls-scan-fairness.jsonl: migrate 0 scan (the default since), 1 always, 2 never
                setting = {0: "scan", 1: "always", 2: "pinned"}[r.get("migrate", 0)]
            else:  # before the stack scan: migrate 0 was the pinned default
                setting = "before" if r.get("build") == "before" else ("always" if r.get("migrate") else "pinned")
            groups.setdefault((r["fibers"], setting), []).append((r["jain"], quiet))
    if not groups:
        return None
    order = ["before", "pinned", "scan", "always"]
    colour = {"before": "#999", "pinned": "#1f77b4", "scan": "#9467bd", "always": "#2ca02c"}
    fig, ax = new_fig(plt)
    keys = sorted(groups, key=lambda k: (-k[0], order.index(k[1])))
    for i, k in enumerate(keys):
        for j, (v, quiet) in enumerate(sorted(groups[k])):
            ax.plot(i + (j - len(groups[k]) / 2) * 0.04, v, "o" if quiet else "x", color=colour[k[1]], ms=5)
    ax.axhline(0.99, color="#d62728", lw=0.8, ls="--", label="target 0.99 (documented setting)")
    ax.axhline(0.98, color="#ff7f0e", lw=0.8, ls=":", label="target 0.98 (8 fibers, default)")
    ax.set_xlabel("pinned: FIBER_MIGRATE=0 (the default before 2026-12-03); scan: the default since; always: FIBER_MIGRATE=1", fontsize=7)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(["%d fibers\n%s" % k for k in keys], fontsize=7)
    ax.set_ylabel("Jain index of per-fiber progress (1 = equal shares)")
    ax.set_title("Fair shares of CPU-bound fibers on 2 KLTs (o quiet machine, x loaded)")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, alpha=0.3)
    return save(plt, fig, out, "fairness-jain.svg", {"date": "see fairness.md", "git": "see fairness.md",
                                                      "machine": "2-vCPU VM"},
                ", ".join(os.path.relpath(x, ROOT) for x in paths))


def fig_lateness(plt, path, stamp, out):
    if not path:
        return None
    data = {}
    for row in csv.reader(open(path)):
        if len(row) == 2 and not row[0].startswith("#"):
            data.setdefault(row[0], []).append(float(row[1]) / 1e3)
    if not data:
        return None
    fig, ax = new_fig(plt)
    for name, v in sorted(data.items()):
        v.sort()
        ax.step([max(x, 1e-3) for x in v], [(i + 1) / len(v) for i in range(len(v))], where="post",
                label="%s (n=%d, median %.0f us)" % (name, len(v), v[len(v) // 2]))
    ax.set_xscale("log")
    ax.set_xlabel("wake-up lateness of a 100 us sleep beside a spinner (us, log)")
    ax.set_ylabel("fraction of wake-ups")
    ax.set_title("Wake-up lateness CDF, one kernel thread")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return save(plt, fig, out, "lateness_cdf.svg", stamp, os.path.relpath(path, ROOT))


def fig_fairness(plt, path, stamp, out):
    if not path:
        return None
    samples, params = {}, ""
    for line in open(path):
        if line.startswith("#"):
            params = line[1:].strip()
            continue
        p = line.strip().split(",")
        if len(p) == 3 and p[0] != "t_s":
            samples.setdefault(float(p[0]), {})[int(p[1])] = int(p[2])
    ts = sorted(samples)
    if len(ts) < 2:
        return None
    fibers = sorted(samples[ts[0]])
    fig, ax = new_fig(plt)
    prev = {f: 0 for f in fibers}
    share = {f: [] for f in fibers}
    for t in ts:
        d = {f: samples[t].get(f, 0) - prev[f] for f in fibers}
        tot = sum(d.values()) or 1
        for f in fibers:
            share[f].append(d[f] / tot)
        prev = samples[t]
    for f in fibers:
        ax.plot(ts, share[f], lw=1, label="fiber %d" % f)
    ax.axhline(1 / len(fibers), color="k", ls=":", lw=1, label="fair share 1/%d" % len(fibers))
    last = samples[ts[-1]]
    tot = [last[f] for f in fibers]
    jain = sum(tot) ** 2 / (len(tot) * sum(x * x for x in tot)) if any(tot) else 0
    ax.set_xlabel("time (s)")
    ax.set_ylabel("share of the work done in each interval")
    ax.set_title("Fairness: spinning fibers sharing KLTs by preemption (%s); Jain index %.3f"
                 % (params.replace("spin_demo ", ""), jain), fontsize=9)
    ax.legend(fontsize=6, ncol=3)
    return save(plt, fig, out, "fairness.svg", stamp, os.path.relpath(path, ROOT))


def file_stamp(path):
    t = datetime.datetime.utcfromtimestamp(os.path.getmtime(path)).strftime("%Y-%m-%d %H:%M UTC")
    meta = os.path.join(os.path.dirname(path), "meta.json")
    if os.path.exists(meta):
        m = json.load(open(meta))
        load = m.get("loadavg")
        return {"date": m.get("date", t), "git": m.get("git", "not recorded"),
                "machine": "%s, %s CPUs%s" % (m.get("host", "?"), m.get("nproc", "?"),
                                             ", load average %.1f at the start" % load[0] if load else "")}
    lab = os.path.join(os.path.dirname(path), "fairness.stamp.json")
    if os.path.exists(lab):
        return json.load(open(lab))
    return {"date": t + " (file time)", "git": "not recorded", "machine": NOW["machine"]}


def first(*paths):
    for p in paths:
        if p and os.path.exists(p):
            return p
    return None


# ------------------------------------------------------------------ paper
def section(lines, heading):
    """The lines of the section titled `heading` (to the next heading of the
    same or a higher level), without its title line."""
    out, level = [], None
    for l in lines:
        m = re.match(r"(#+) (.*)", l)
        if level is None:
            if m and m.group(2).strip().lower().startswith(heading.lower()):
                level = len(m.group(1))
            continue
        if m and len(m.group(1)) <= level:
            break
        out.append(l)
    return out


def expand(path, depth=0):
    """papers/paper.md with its <!-- include FILE[#Heading] --> lines replaced
    by that file (or that section of it): an included file's title (its "# "
    line) is dropped, since the paper's own heading introduces it, and its
    other headings are demoted one level."""
    out = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*<!-- include ([^#\s]+)(?:#([^>]+?))? -->", line)
        if not m or depth >= 3:
            out.append(line)
            continue
        inc = os.path.join(os.path.dirname(path), m.group(1))
        if not os.path.exists(inc):
            out.append("*(missing: %s)*\n" % m.group(1))
            continue
        lines = expand(inc, depth + 1)
        if m.group(2):
            lines = section(lines, m.group(2).strip())
            shift = 0
        else:
            lines = [l for l in lines if not re.match(r"# ", l)]
            shift = 1
        out += ["#" * shift + l if l.startswith("#") else l for l in lines]
    return out


def render_html(md_text, out_html, title):
    pandoc = shutil.which("pandoc")
    if pandoc:
        p = subprocess.run([pandoc, "-f", "gfm", "-t", "html5", "-s", "--toc", "--metadata",
                            "title=" + title, "-o", out_html], input=md_text, text=True)
        if p.returncode == 0:
            return "pandoc"
    import markdown
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code", "toc"])
    css = ("body{max-width:60em;margin:2em auto;font-family:sans-serif;line-height:1.45;padding:0 1em}"
           "table{border-collapse:collapse;font-size:85%}td,th{border:1px solid #ccc;padding:2px 6px}"
           "img{max-width:100%}code{background:#f4f4f4}pre{background:#f4f4f4;padding:.5em;overflow:auto}")
    with open(out_html, "w", encoding="utf-8") as f:
        f.write("<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title><style>%s</style>"
                "</head><body>%s</body></html>\n" % (title, css, body))
    return "python3-markdown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "papers", "results"))
    ap.add_argument("--bench-results", default=os.path.join(ROOT, "build", "bench", "bench-results"))
    ap.add_argument("--no-paper", action="store_true", help="figures and report.md only")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "fiber"  # stable ids: regenerating unchanged data changes nothing
    matplotlib.rcParams["svg.fonttype"] = "none"   # text stays text (searchable, small)
    import matplotlib.pyplot as plt
    os.makedirs(os.path.join(a.out, "figures"), exist_ok=True)

    rows, muts, mstamp, msource = load_models()
    bench = load_bench()
    lat = first(os.path.join(a.bench_results, "lateness.csv"))
    fair = first(os.path.join(ROOT, "build", "lab", "fairness.csv"),
                 os.path.join(a.bench_results, "fairness_k1_ts4000.csv"))
    figs = [
        ("Fairness: per-fiber share of the work over time", fig_fairness(plt, fair, file_stamp(fair) if fair else {}, a.out),
         "tools/fiberctl demo (writes build/lab/fairness.csv) or tools/fiberctl bench"),
        ("Wake-up lateness CDF", fig_lateness(plt, lat, file_stamp(lat) if lat else {}, a.out),
         "tools/fiberctl bench (bench_lateness writes lateness.csv)"),
        ("Ratios against Boost.Fiber, Go and pthreads", fig_ratios(plt, bench, a.out), "tools/fiberctl bench"),
        ("Scaling (skynet)", fig_scaling(plt, bench, a.out), "tools/fiberctl bench"),
        ("Scaling across KLT counts (bench/scaling.sh)",
         fig_scaling_klts(plt, first(os.path.join(a.out, "scaling-16core.jsonl"),
                                     os.path.join(a.out, "scaling.jsonl")), a.out),
         "bench/scaling.sh (see README, The lab)"),
        ("Fair shares across 2 KLTs (Jain index)",
         fig_jain(plt, [x for x in (os.path.join(a.out, "fairness.jsonl"),
                                    os.path.join(a.out, "fairness-quiet.jsonl"),
                                    os.path.join(a.out, "tls-scan-fairness.jsonl")) if os.path.exists(x)], a.out),
         "bench/fairness.sh (see papers/results/fairness.md, tls-scan.md)"),
        ("Model search size against context bound", fig_models(plt, rows, mstamp, msource, a.out),
         "tools/fiberctl check"),
        ("Mutant kill matrix", fig_mutants(plt, muts, mstamp, msource, a.out), "tools/fiberctl check"),
    ]
    L = ["# Results: figures (generated by papers/scripts/report.py; do not edit)", "",
         "Drawn %s.  Each figure's footer names the run its data came from (date, git hash, machine)."
         % stamp_text(NOW), ""]
    for title, path, how in figs:
        L.append("## " + title)
        L.append("")
        if path:
            L.append("![%s](%s)" % (title, path))
        else:
            L.append("*No data yet: this figure is drawn from measured data only.  Run `%s`, then "
                     "`tools/fiberctl report`.*" % how)
        L.append("")
    L += ["## Tables", "",
          "- Relacy searches and mutants: [models.md](models.md), deeper searches "
          "[models-long.md](models-long.md), sizes of the searches too long for CI "
          "[models-estimates.md](models-estimates.md), split campaigns [models-campaigns.md](models-campaigns.md).",
          "- Benchmarks with their targets: [bench.md](bench.md) (full run), "
          "[bench-quick.md](bench-quick.md) (CI-sized run).",
          "- Per-topic measurements, each with its command and machine: fair shares and the multicore "
          "policy [fairness.md](fairness.md); stacks and memory per fiber [stacks.md](stacks.md); TCP echo "
          "[echo.md](echo.md); the cost of a tick [tick-cost.md](tick-cost.md); instruction counts of the "
          "diagnostics' bookkeeping [icount-diag.md](icount-diag.md) and of the hot paths [icount.md](icount.md).",
          ""]
    if bench is None:
        L.append("*No benchmark table yet: run `tools/fiberctl bench`.*")
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    drawn = sum(1 for _, p, _ in figs if p)
    print("report: %d of %d figures drawn; %s" % (drawn, len(figs), os.path.join(a.out, "report.md")))
    for title, p, how in figs:
        if not p:
            print("  no data for '%s': run %s" % (title, how))
    if a.no_paper:
        return 0
    paper = os.path.join(ROOT, "papers", "paper.md")
    text = "".join(expand(paper))
    # The paper sits in papers/results/: the figures are next to it, the
    # included texts' links to results/ must drop that prefix.
    text = text.replace("](results/", "](")
    with open(os.path.join(a.out, "paper.md"), "w", encoding="utf-8") as f:
        f.write(text)
    how = render_html(text, os.path.join(a.out, "paper.html"), "fiber: preemptive user-level threads")
    print("paper: %s (rendered with %s)" % (os.path.join(a.out, "paper.html"), how))
    return 0


if __name__ == "__main__":
    sys.exit(main())
