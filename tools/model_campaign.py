#!/usr/bin/env python3
"""Size and run Relacy searches that are too long for one process.

A model's full or context-bound search is a tree walk (models/split_search.hpp).
This tool splits it into jobs, one per prefix of choices, runs the jobs in
parallel with one checkpoint line per finished job, and adds up the result.
A stopped campaign resumes where it stopped: run the same command again.

usage:
  tools/model_campaign.py run MODEL --case ID --variant K [--search S]
        [--jobs-target N=2000] [-j J=cpus] [--dir DIR] [--time-limit SECONDS]
      Enumerates the prefixes (deepening until there are at least N jobs),
      writes DIR/jobs.txt, runs every job not yet in DIR/done.tsv, and writes
      DIR/summary.json when all are done.  Stops at the first failing job and
      prints its replay command.  --time-limit: start no new job after that
      many seconds (the campaign stays resumable).  --job-timeout T=120: a job
      still running after T seconds is stopped and replaced by the jobs of its
      subtree (6 choices deeper), so one big subtree does not serialise the
      campaign.
  tools/model_campaign.py estimate [--models-dir D=build/models/models or build/main/models]
        [--probes N=300000] [-j J=cpus] [--out papers/results/models-estimates.md]
      Knuth's estimate (--estimate) of every exhaustive-tier search, and of
      the long-tier full searches, as a table.
  tools/model_campaign.py table DIR... [--out papers/results/models-campaigns.md] [--keep]
      The summaries of finished campaigns as a table (--keep: also the rows
      already in --out of campaigns whose directories are gone).
  tools/model_campaign.py selfcheck MODEL_MUTEX MUTANT
      The ctest model.split_search: the split search from the root takes
      exactly Relacy's own iterations (full and bounded), a campaign's jobs
      add up to them, and a campaign on a mutant fails with a replay command
      that reproduces the failure under Relacy's own scheduler.

MODEL is a model executable (build/models/models/model_semaphore).
"""
import argparse, concurrent.futures as cf, json, os, re, subprocess, sys, time

def fields(line):
    return dict(f.split("=", 1) for f in line.rstrip("\n").split("\t")[1:])

def model_cmd(args):
    cmd = [args.model, "--case", args.case, "--variant", str(args.variant)]
    if args.search:
        cmd += ["--search", args.search]
    return cmd

def enumerate_jobs(args):
    depth = 2
    while True:
        p = subprocess.run(model_cmd(args) + ["--split-depth", str(depth)], capture_output=True, text=True)
        if p.returncode != 0:
            # Enumerating runs real iterations: a failure here is a finding.
            print(p.stdout + p.stderr)
            print("failure found while enumerating the jobs (prefix depth %d): see the replay command above" % depth)
            sys.exit(1)
        jobs = [l.split()[1] if len(l.split()) > 1 else "root"
                for l in p.stdout.splitlines() if l.startswith("PREFIX")]
        if len(jobs) >= args.jobs_target or depth >= 60:
            return depth, jobs
        depth += 2

def source_hash():
    """Hash of what a model checks: core/include and models/ sources.  A
    checkpoint is only valid for the code it was run on."""
    import hashlib
    root = os.path.dirname(os.path.abspath(__file__))
    while root != "/" and not os.path.isdir(os.path.join(root, "core", "include")):
        root = os.path.dirname(root)
    h = hashlib.sha256()
    for top in ("core/include", "models"):
        for dirpath, dirnames, files in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in sorted(files):
                if f.endswith((".hpp", ".h", ".cpp", ".cmake")):
                    path = os.path.join(dirpath, f)
                    h.update(os.path.relpath(path, root).encode() + b"\0" + open(path, "rb").read())
    return h.hexdigest()[:16]

def run_job(cmd, prefix, timeout):
    t0 = time.time()
    try:
        p = subprocess.run(cmd + ["--prefix", prefix], capture_output=True, text=True, timeout=timeout or None)
    except subprocess.TimeoutExpired:
        return prefix, None, "timeout"
    job = [fields(l) for l in p.stdout.splitlines() if l.startswith("JOB\t")]
    if p.returncode == 0 and job:
        return prefix, job[0], None
    return prefix, job[0] if job else {"prefix": prefix, "iters": "0", "time_ms": "%.1f" % ((time.time() - t0) * 1e3),
                                       "verdict": "ERROR rc=%d" % p.returncode}, p.stdout + p.stderr

def cmd_run(args):
    name = "%s-%s-v%d%s" % (os.path.basename(args.model).replace("model_", ""), args.case, args.variant,
                            ("-" + args.search) if args.search else "")
    d = args.dir or os.path.join("build", "campaigns", name)
    os.makedirs(d, exist_ok=True)
    meta_path = os.path.join(d, "jobs.txt")
    if not os.path.exists(meta_path):
        t0 = time.time()
        depth, jobs = enumerate_jobs(args)
        with open(meta_path, "w") as f:
            f.write("# %s depth=%d sources=%s\n" % (" ".join(model_cmd(args)), depth, source_hash()))
            f.write("\n".join(jobs) + "\n")
        print("%s: %d jobs (prefix depth %d), enumerated in %.1f s" % (name, len(jobs), depth, time.time() - t0))
    lines = open(meta_path).read().splitlines()
    depth = int(re.search(r"depth=(\d+)", lines[0]).group(1))
    m = re.search(r"sources=(\w+)", lines[0])
    if m and m.group(1) != source_hash():
        print("%s: core/ or models/ changed since this campaign started (sources %s, now %s): "
              "its checkpoint is stale; delete %s to start over" % (name, m.group(1), source_hash(), d))
        return 2
    jobs = [l for l in lines[1:] if l]
    done_path = os.path.join(d, "done.tsv")
    done = {}
    if os.path.exists(done_path):
        for l in open(done_path):
            r = fields("x\t" + l)
            done[r["prefix"]] = r
    # Jobs that ran past --job-timeout were replaced by their sub-jobs.
    split_path = os.path.join(d, "split.tsv")
    split = set(l.strip() for l in open(split_path)) if os.path.exists(split_path) else set()
    todo = [j for j in jobs if j not in done and j not in split]
    print("%s: %d/%d jobs done, %d to run on %d workers" % (name, len(done), len(jobs), len(todo), args.j), flush=True)
    # The variant's search label, for the replay command and the summary.
    p = subprocess.run([args.model, "--list"], capture_output=True, text=True)
    label, threads = "", 0
    for l in p.stdout.splitlines():
        m = re.match(r"\S+ (\S+) variant (\d+): ([^,]+), (\d+) threads", l)
        if m and m.group(1) == args.case and int(m.group(2)) == args.variant:
            label, threads = m.group(3), int(m.group(4))
    if args.search:
        label = args.search
    meta = {"model": os.path.basename(args.model).replace("model_", ""), "case": args.case,
            "variant": args.variant, "search": label, "threads": threads, "jobs": len(jobs), "prefix_depth": depth}
    json.dump(meta, open(os.path.join(d, "meta.json"), "w"), indent=1)
    started = time.time()
    done_at_start = len(done)
    failure = None
    cmd = model_cmd(args)
    unsplittable = set()
    with cf.ThreadPoolExecutor(max_workers=args.j) as pool, open(done_path, "a") as out, \
            open(meta_path, "a") as jobs_out, open(split_path, "a") as split_out:
        pending = set()
        todo.reverse()  # a stack: sub-jobs of a split job run next
        def submit():
            if failure or (args.time_limit and time.time() - started > args.time_limit):
                return False
            if not todo:
                return False
            j = todo.pop()
            pending.add(pool.submit(run_job, cmd, j, 0 if j in unsplittable else args.job_timeout))
            return True
        for _ in range(args.j):
            submit()
        last = time.time()
        while pending:
            fin, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for f in fin:
                pending.discard(f)
                prefix, r, text = f.result()
                if text == "timeout":
                    # Too big for one job: replace it by the jobs of its subtree.
                    base = [] if prefix == "root" else [prefix]
                    depth_here = 0 if prefix == "root" else prefix.count(".") + 1
                    p = subprocess.run(cmd + ["--prefix", prefix, "--split-depth", str(depth_here + 6)],
                                       capture_output=True, text=True)
                    kids = [l.split()[1] for l in p.stdout.splitlines() if l.startswith("PREFIX") and len(l.split()) > 1]
                    if p.returncode != 0:
                        failure = (prefix, {"verdict": "failure while splitting"}, p.stdout + p.stderr)
                    elif len(kids) <= 1 or prefix in kids:
                        unsplittable.add(prefix)
                        todo.append(prefix)
                    else:
                        jobs_out.write("\n".join(kids) + "\n")
                        jobs_out.flush()
                        split_out.write(prefix + "\n")
                        split_out.flush()
                        jobs.extend(kids)
                        split.add(prefix)
                        todo.extend(reversed(kids))
                        print("  job %s ran past %g s: split into %d jobs" % (prefix, args.job_timeout, len(kids)),
                              flush=True)
                    submit()
                    continue
                if text is None and r["verdict"] == "SUCCESS":
                    out.write("prefix=%s\titers=%s\ttime_ms=%s\tverdict=%s\n" % (prefix, r["iters"], r["time_ms"], r["verdict"]))
                    out.flush()
                    done[prefix] = r
                else:
                    failure = (prefix, r, text)
                submit()
            if time.time() - last > 10:
                last = time.time()
                it_done = sum(int(x["iters"]) for x in done.values())
                total = len(jobs) - len(split)
                ran = len(done) - done_at_start
                el = time.time() - started
                # Jobs differ in size (Knuth's estimate says by how much), so the
                # ETA is this session's pace per job: a rough guide, marked "~".
                eta = "ETA ~%.0f s" % (el / ran * (total - len(done))) if ran > 0 else "ETA unknown"
                print("  %d/%d jobs, %d iterations, %.0f s, %s" % (len(done), total, it_done, el, eta),
                      flush=True)
    iters = sum(int(x["iters"]) for x in done.values())
    cpu_s = sum(float(x["time_ms"]) for x in done.values()) / 1e3
    if failure:
        prefix, r, text = failure
        print(text or "")
        print("%s: job %s: %s (campaign stopped; fix, delete %s, rerun)" % (name, prefix, r["verdict"], d))
        return 1
    jobs = [j for j in jobs if j not in split]
    if len(done) < len(jobs):
        print("%s: stopped by --time-limit: %d/%d jobs, %d iterations so far; rerun to resume"
              % (name, len(done), len(jobs), iters))
        return 3
    summary = dict(meta, jobs=len(jobs), iterations=iters, cpu_s=round(cpu_s, 1), workers=args.j, verdict="SUCCESS",
                   host=os.uname().nodename, cpus=os.cpu_count(),
                   finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
    print("%s: SUCCESS, %d jobs, %d iterations, %.0f CPU-s" % (name, len(jobs), iters, cpu_s))
    return 0

def cmd_estimate(args):
    mdir = args.models_dir or next((d for d in ("build/models/models", "build/main/models") if os.path.isdir(d)),
                                   "build/models/models")
    models = sorted(f for f in os.listdir(mdir) if f.startswith("model_") and not f.endswith(".cmake")
                    and os.access(os.path.join(mdir, f), os.X_OK))
    todo = []
    for m in models:
        exe = os.path.join(mdir, m)
        listing = subprocess.run([exe, "--list"], capture_output=True, text=True).stdout
        for l in listing.splitlines():
            mm = re.match(r"\S+ (\S+) variant (\d+): ([^,]+), (\d+) threads(, (long|exhaustive))?", l)
            if not mm:
                continue
            case, k, search, threads, tier = mm.group(1), mm.group(2), mm.group(3), mm.group(4), mm.group(6) or ""
            if search.startswith("random") or not (tier == "exhaustive" or (tier == "long" and search == "full")):
                continue
            todo.append((m, exe, case, k, search, threads, tier))

    def probe(t):
        m, exe, case, k, search, threads, tier = t
        p = subprocess.run([exe, "--case", case, "--variant", k, "--estimate", str(args.probes)],
                           capture_output=True, text=True)
        est = [fields(x) for x in p.stdout.splitlines() if x.startswith("ESTIMATE\t")]
        kinds = [x.strip() for x in p.stdout.splitlines() if x.strip().startswith("branching")]
        if not est:
            return (m[6:], case, search, threads, tier, None, p.stdout[-300:])
        print(m, case, search, threads, est[0]["leaves"], est[0]["hours"], flush=True)
        return (m[6:], case, search, threads, tier, est[0], kinds[0] if kinds else "")

    # One process per search, -j at a time (each measures its own time per probe).
    with cf.ThreadPoolExecutor(max_workers=args.j) as pool:
        rows = list(pool.map(probe, todo))
    L = ["# Relacy searches too long for CI: estimated size (generated by tools/model_campaign.py estimate)", "",
         "Knuth's estimator (models/split_search.hpp, `MODEL --case ID --variant K --estimate N`): N random paths "
         "through the search tree, each weighted by the product of the branching factors on it; the mean weight "
         "is an unbiased estimate of the number of leaves, i.e. of the iterations the search takes.  `+-` is one "
         "standard error of that mean.  For full search it has matched the real count within about 10%% "
         "where the real count is known (mutex I-M1-try 2t: 8.25e5 estimated, 815,505 run; I-M1 2t: 5.27e6 vs "
         "5,349,682; run_queue I-Q3 2t: 1.37e8 vs 122.7M; semaphore I-SEM4 2t: 3.83e8 vs 422.3M, by campaign).  For context-bound search it is unreliable: the few paths that use the whole bound carry "
         "most of the tree and a random path rarely finds them (mutex I-M1 2t bound 4: 1.4e5 estimated, "
         "734,804 run), so bounded rows are lower bounds at best.  Hours: leaves x the measured time per probe, "
         "on one core.  Probes per search: %d.  Machine: %s, %d CPUs; %s." % (
             args.probes, os.uname().nodename, os.cpu_count(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
         "",
         "| model | case | search | threads | tier | est. iterations | +- | est. core-hours | where the size comes from (mean branching choices per path) |",
         "|---|---|---|---|---|---|---|---|---|"]
    for model, case, search, threads, tier, e, kinds in rows:
        if e is None:
            L.append("| %s | %s | %s | %s | %s | failed | | | %s |" % (model, case, search, threads, tier, kinds.replace("\n", " ")))
            continue
        L.append("| %s | %s | %s | %s | %s | %.2g | %.0f%% | %.3g | %s |" % (
            model, case, search, threads, tier, float(e["leaves"]), 100 * float(e["rel_err"]), float(e["hours"]),
            kinds.replace("branching choices per path: ", "")))
    open(args.out, "w").write("\n".join(L) + "\n")
    print("wrote", args.out)
    return 0

def cmd_table(args):
    L = ["# Relacy search campaigns (generated by tools/model_campaign.py table)", "",
         "Each row: one search too long for CI, split into jobs (one per prefix of choices, "
         "models/split_search.hpp) and run to completion by `tools/model_campaign.py run`.  The jobs partition "
         "the search tree, so the iterations add up to those of the unsplit search (checked by the ctest "
         "`model.split_search`).", "",
         "| model | case | search | threads | jobs | iterations | CPU time | workers | verdict | machine | finished |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in args.dirs:
        s = os.path.join(d, "summary.json")
        if os.path.exists(s):
            j = json.load(open(s))
            L.append("| %s | %s | %s | %d | %d | %s | %.2f h | %d | %s | %d CPUs | %s |" % (
                j["model"], j["case"], j["search"], j["threads"], j["jobs"], format(j["iterations"], ","),
                j["cpu_s"] / 3600, j["workers"], j["verdict"], j["cpus"], j["finished"]))
            continue
        if not os.path.exists(os.path.join(d, "meta.json")):
            continue
        # Not finished (stopped by --time-limit): what the checkpoint holds.
        j = json.load(open(os.path.join(d, "meta.json")))
        split = set(l.strip() for l in open(os.path.join(d, "split.tsv"))) if os.path.exists(
            os.path.join(d, "split.tsv")) else set()
        j["jobs"] = len([l for l in open(os.path.join(d, "jobs.txt")).read().splitlines()[1:] if l and l not in split])
        done = [fields("x\t" + l) for l in open(os.path.join(d, "done.tsv"))] if os.path.exists(
            os.path.join(d, "done.tsv")) else []
        L.append("| %s | %s | %s | %d | %d | %s so far | %.2f h | | **not finished**: %d of %d jobs done, no failure | %d CPUs | |" % (
            j["model"], j["case"], j["search"], j["threads"], j["jobs"],
            format(sum(int(x["iters"]) for x in done), ","), sum(float(x["time_ms"]) for x in done) / 3.6e6,
            len(done), j["jobs"], os.cpu_count()))
    if args.keep and os.path.exists(args.out):
        # Rows of campaigns whose directories are gone (build/ is not kept
        # between machines) stay, unless a directory given here replaces them.
        key = lambda row: tuple(c.strip() for c in row.split("|")[1:5])
        start = next(i for i, r in enumerate(L) if r.startswith("|---")) + 1
        fresh = set(key(r) for r in L[start:])
        old = [r for r in open(args.out).read().splitlines()
               if r.startswith("| ") and not r.startswith("| model |") and key(r) not in fresh]
        L[start:start] = old
    open(args.out, "w").write("\n".join(L) + "\n")
    print("wrote", args.out)
    return 0

def iters_of(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    r = [fields(l) for l in p.stdout.splitlines() if l.startswith("RESULT\t")]
    if p.returncode != 0 or len(r) != 1 or r[0]["verdict"] != "SUCCESS":
        sys.exit("selfcheck: %s failed:\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    return int(r[0]["iters"])

def cmd_selfcheck(args):
    import shutil, shlex, tempfile
    ok = True
    def check(what, cond):
        nonlocal ok
        print(("ok    " if cond else "FAIL  ") + what, flush=True)
        ok = ok and cond
    m = args.model
    # The bounded one also stops every job running past 0.2 s and splits it.
    for case, k, name, extra in (("I-M1-try", 0, "full, 2 threads", []),
                                 ("I-M1", 1, "bound 5, 2 threads", ["--job-timeout", "0.2"])):
        own = iters_of([m, "--case", case, "--variant", str(k)])
        split = iters_of([m, "--case", case, "--variant", str(k), "--prefix", "root"])
        check("%s %s: Relacy %d iterations, split search from the root %d" % (case, name, own, split), own == split)
        tmp = tempfile.mkdtemp(prefix="split_selfcheck.")
        p = subprocess.run([sys.executable, __file__, "run", m, "--case", case, "--variant", str(k),
                            "--jobs-target", "300", "-j", "2", "--dir", tmp] + extra, capture_output=True, text=True)
        summ = json.load(open(os.path.join(tmp, "summary.json"))) if p.returncode == 0 else {}
        splits = p.stdout.count(" ran past ")
        check("%s %s: campaign of %s jobs (%d split on the way) adds up to %s iterations" % (
              case, name, summ.get("jobs"), splits, summ.get("iterations")),
              p.returncode == 0 and summ.get("iterations") == own and summ.get("jobs", 0) > 1
              and (splits > 0 or not extra))
        shutil.rmtree(tmp)
    tmp = tempfile.mkdtemp(prefix="split_selfcheck.")
    p = subprocess.run([sys.executable, __file__, "run", args.mutant, "--case", "I-M1", "--variant", "1",
                        "--jobs-target", "300", "-j", "2", "--dir", tmp], capture_output=True, text=True)
    shutil.rmtree(tmp)
    replay = [l.strip() for l in p.stdout.splitlines() if "--replay" in l]
    check("campaign on %s fails (rc %d) and prints a replay command" % (os.path.basename(args.mutant), p.returncode),
          p.returncode == 1 and len(replay) == 1)
    if replay:
        r = subprocess.run(shlex.split(replay[0]), capture_output=True, text=True)
        verdict = [fields(l)["verdict"] for l in r.stdout.splitlines() if l.startswith("RESULT\t")]
        check("the replay reproduces it under Relacy's scheduler: %s" % verdict,
              r.returncode == 1 and len(verdict) == 1 and verdict[0] != "SUCCESS")
    return 0 if ok else 1

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("--case", required=True)
    r.add_argument("--variant", type=int, required=True)
    r.add_argument("--search", default="")
    r.add_argument("--jobs-target", type=int, default=2000)
    r.add_argument("-j", type=int, default=os.cpu_count())
    r.add_argument("--dir", default="")
    r.add_argument("--time-limit", type=float, default=0)
    r.add_argument("--job-timeout", type=float, default=120)
    e = sub.add_parser("estimate")
    e.add_argument("--models-dir", default="")
    e.add_argument("--probes", type=int, default=300000)
    e.add_argument("--out", default="papers/results/models-estimates.md")
    e.add_argument("-j", type=int, default=os.cpu_count())
    t = sub.add_parser("table")
    t.add_argument("dirs", nargs="+")
    t.add_argument("--out", default="papers/results/models-campaigns.md")
    t.add_argument("--keep", action="store_true",
                   help="keep the rows already in --out of campaigns not given here")
    c = sub.add_parser("selfcheck")
    c.add_argument("model")
    c.add_argument("mutant")
    a = ap.parse_args()
    return {"run": cmd_run, "estimate": cmd_estimate, "table": cmd_table, "selfcheck": cmd_selfcheck}[a.cmd](a)

if __name__ == "__main__":
    sys.exit(main())
