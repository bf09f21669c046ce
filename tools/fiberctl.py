#!/usr/bin/env python3
"""tools/fiberctl.py - the lab's one command line (run it as tools/fiberctl).

  fiberctl demo [spin_demo options]   install what is missing, build only the
                                      library and spin_demo, run the demo
  fiberctl test                       the CI command (.ci/run): build, ctest
                                      -L 'unit|model|prop|stress', install check
  fiberctl check [--tier T] [--model M] [--case ID] [--no-mutants]
                                      Relacy models (and mutants), with progress
  fiberctl prop [--seeds N] [--seed S] [--max-success N] [--replay R] [--filter F]
                                      RapidCheck properties (RC_PARAMS)
  fiberctl stress [--seconds S] [--klts K] [--timeslice US] [--mix LIST] ...
                                      fiber_stress with its live status line
  fiberctl bench [run.py options]     Release build, benchmark suite (bench/run.py),
                                      then issue 12's: echo (all servers), blocking locks
  fiberctl report                     figures, tables and the paper (papers/)
  fiberctl mutants [--families F] [--only IDS] [--match RX] ...
                                      every mutant (tools/mutants/*.patch) through every
                                      check family; kill matrix in papers/results/mutants.md
  fiberctl deps | asan | ubsan | tsan | models-long | models-exhaustive | campaign ARGS

Every long step shows progress with an ETA; what each run measured is kept
under build/lab/ (the report reads it).  See README.md, "The lab".
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "build", "lab")          # what the runs leave for the report
# The CI build (test, demo, check, prop, stress); FIBERCTL_BUILD names another.
MAIN = os.path.abspath(os.environ.get("FIBERCTL_BUILD", os.path.join(ROOT, "build", "main")))
JOBS = os.cpu_count() or 2
PKGS = ["build-essential", "cmake", "ninja-build", "pkg-config", "git", "libgtest-dev", "libgmock-dev",
        "libbenchmark-dev", "librapidcheck-dev", "relacy-dev", "libboost-fiber-dev",
        "libboost-context-dev", "python3",
        "gdb"]  # gdb: the gdb extension's test (core/tests/gdb), skipped without it
REPORT_PKGS = ["python3-matplotlib", "python3-markdown"]
MAIN_ARGS = ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DFIBER_BUILD_BENCH=OFF"]


def say(msg):
    print("fiberctl: " + msg, flush=True)


def sh(cmd, **kw):
    """Runs cmd (a list); exits with its status if it fails."""
    p = subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), **kw)
    if p.returncode != 0:
        say("failed (exit %d): %s" % (p.returncode, " ".join(cmd)))
        sys.exit(p.returncode)
    return p


def clock(s):
    s = int(max(s, 0) + 0.5)
    if s >= 3600:
        return "%dh%02dm" % (s // 3600, s // 60 % 60)
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


# ------------------------------------------------------------------ set-up
def deps(extra=()):
    missing = []
    for p in PKGS + list(extra):
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in q.stdout:
            missing.append(p)
    if not missing:
        return
    say("installing " + " ".join(missing))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    sh(sudo + ["apt-get", "update", "-qq"])
    sh(sudo + ["apt-get", "install", "-y", "-qq"] + missing, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def configure(build, args):
    sh(["cmake", "-S", ".", "-B", build, "-G", "Ninja"] + args, stdout=subprocess.DEVNULL)


def build_targets(build, targets=()):
    cmd = ["cmake", "--build", build, "-j", str(JOBS)]
    if targets:
        cmd += ["--target"] + list(targets)
    sh(cmd)


def main_build(targets=()):
    deps()
    configure(MAIN, MAIN_ARGS)
    build_targets(MAIN, targets)


# ------------------------------------------------------------------ ctest driving
def ctest_tests(build, label=None, regex=None):
    """The tests ctest would run: [(name, command list, labels)]."""
    cmd = ["ctest", "--test-dir", build, "--show-only=json-v1"]
    if label:
        cmd += ["-L", label]
    if regex:
        cmd += ["-R", regex]
    doc = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    out = []
    for t in doc.get("tests", []):
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        out.append((t["name"], t.get("command", []), props.get("LABELS", []),
                    props.get("WORKING_DIRECTORY", build)))
    return out


def load_times(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_pool(jobs, times_file, logdir, jobs_n=JOBS):
    """Runs [(name, cmd, cwd)] jobs_n at a time; one line per finished job with
    an ETA from the durations of the last run (times_file).  Returns
    {name: (rc, seconds, stdout)}."""
    prev = load_times(times_file)
    os.makedirs(logdir, exist_ok=True)
    total = len(jobs)
    known = [prev.get(n) for n, _, _ in jobs]
    have_eta = all(k is not None for k in known)
    left = [sum(k for k in known if k is not None)]
    results, t0, done = {}, time.monotonic(), [0]

    def one(job):
        name, cmd, cwd = job
        t = time.monotonic()
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, text=True)
        dt = time.monotonic() - t
        with open(os.path.join(logdir, re.sub(r"[^\w.-]", "_", name) + ".log"), "w") as f:
            f.write(p.stdout)
        results[name] = (p.returncode, dt, p.stdout)
        done[0] += 1
        left[0] -= prev.get(name, 0)
        if have_eta:
            eta = "ETA ~%s (last run's times)" % clock(left[0] / jobs_n)
        else:
            el = time.monotonic() - t0
            eta = "ETA ~%s (from this run's pace)" % clock(el / done[0] * (total - done[0]))
        print("[%d/%d] %-46s %-6s %7.1fs  elapsed %s, %s" % (
            done[0], total, name, "ok" if p.returncode == 0 else "FAIL", dt,
            clock(time.monotonic() - t0), eta), flush=True)

    with ThreadPoolExecutor(max_workers=jobs_n) as ex:
        list(ex.map(one, jobs))
    prev.update({n: r[1] for n, r in results.items()})
    with open(times_file, "w") as f:
        json.dump(prev, f, indent=1)
    return results


def rows(stdout, tag):
    """The runner's machine lines (RESULT\\tk=v...) as dicts."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(tag + "\t"):
            out.append(dict(f.split("=", 1) for f in line.split("\t")[1:] if "=" in f))
    return out


def stamp():
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "git": git.stdout.strip() + ("+dirty" if dirty else ""),
            "machine": "%s, %d CPUs, %s, load average %.1f" % (os.uname().nodename, JOBS, os.uname().release,
                                                               os.getloadavg()[0])}


# ------------------------------------------------------------------ commands
def cmd_demo(a):
    main_build(["spin_demo"])
    args = a.args or ["--fibers", "8", "--klts", "2", "--timeslice", "4000", "--seconds", "3"]
    # The demo is also the fairness run: its samples are the report's figure.
    os.makedirs(LAB, exist_ok=True)
    with open(os.path.join(LAB, "fairness.stamp.json"), "w") as f:
        json.dump(stamp(), f)
    sh([os.path.join(MAIN, "examples", "spin_demo")] + args + ["--csv", os.path.join(LAB, "fairness.csv")])


def install_check():
    stage = tempfile.mkdtemp(prefix="fiber-install-")
    try:
        sh(["cmake", "--install", MAIN, "--prefix", stage + "/prefix"], stdout=subprocess.DEVNULL)
        sh(["cmake", "-S", "examples/consumer", "-B", stage + "/build", "-G", "Ninja",
            "-DCMAKE_PREFIX_PATH=" + stage + "/prefix"], stdout=subprocess.DEVNULL)
        sh(["cmake", "--build", stage + "/build"], stdout=subprocess.DEVNULL)
        for t in ("consumer", "consumer_static", "consumer_shared"):  # fiber::fiber, _static, _shared
            sh([os.path.join(stage, "build", t)])
        pc = None
        for d, _, files in os.walk(stage + "/prefix"):
            if "fiber.pc" in files:
                pc = d
        env = dict(os.environ, PKG_CONFIG_PATH=pc or "")
        libdir = sh(["pkg-config", "--variable=libdir", "fiber"], env=env, capture_output=True,
                    text=True).stdout.strip()
        flags = sh(["pkg-config", "--cflags", "--libs", "fiber"], env=env, capture_output=True,
                   text=True).stdout.split()
        sh(["cc", "examples/consumer/main.c"] + flags + ["-Wl,-rpath," + libdir, "-o", stage + "/consumer_pc"])
        sh([stage + "/consumer_pc"])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    say("install check passed (fiber::fiber, fiber::fiber_static, fiber::fiber_shared, pkg-config)")


def ctest_costs(build):
    """ctest's own record of each test's average duration (CTestCostData.txt)."""
    costs = {}
    try:
        for line in open(os.path.join(build, "Testing", "Temporary", "CTestCostData.txt")):
            p = line.split()
            if len(p) == 3:
                costs[p[0]] = float(p[2])
    except (OSError, ValueError):
        pass
    return costs


def run_ctest(build, label):
    """ctest, its output passed through with an ETA after each finished test:
    the remaining tests' durations from ctest's record of earlier runs, spread
    over the jobs (or this run's pace when there is no record)."""
    names = [t[0] for t in ctest_tests(build, label=label)]
    costs = ctest_costs(build)
    left = {n: costs.get(n) for n in names}
    t0 = time.monotonic()
    p = subprocess.Popen(["ctest", "--test-dir", build, "-L", label, "--output-on-failure", "-j", str(JOBS)],
                         stdout=subprocess.PIPE, text=True)
    done = 0
    for line in p.stdout:
        m = re.match(r"\s*\d+/\d+ Test\s+#\d+: (\S+) ", line)
        # A parameterised gtest's name goes on after a space ("... # GetParam() = ...").
        key = m and next((n for n in left if n == m.group(1) or n.startswith(m.group(1) + " ")), None)
        if key:
            left.pop(key)
            done += 1
            el = time.monotonic() - t0
            if all(v is not None for v in left.values()):
                eta = "ETA ~%s" % clock(sum(left.values()) / JOBS)
            else:
                eta = "ETA ~%s (this run's pace)" % clock(el / done * len(left))
            line = "%s   [%d left, elapsed %s, %s]\n" % (line.rstrip("\n"), len(left), clock(el), eta)
        sys.stdout.write(line)
        sys.stdout.flush()
    rc = p.wait()
    if rc != 0:
        say("ctest failed (exit %d)" % rc)
        sys.exit(rc)


def cmd_test(a):
    main_build()
    run_ctest(MAIN, "unit|model|prop|stress")
    install_check()


def model_jobs(a):
    """The model (and mutant) tests of the chosen tier, as ctest defines them."""
    tests = ctest_tests(MAIN, label="model")
    jobs = []
    for name, cmd, labels, cwd in tests:
        if not cmd:
            continue
        is_mutant = "mutant" in labels
        if is_mutant and (a.no_mutants or a.tier != "normal"):
            continue
        # model.<model>.<case>; a mutant's id starts with its model's name
        # (parker_, spinlock_, runq_, waitq_, condvar_...).
        if a.model and not any(m in name for m in a.model):
            continue
        if a.case and not any(cmd[i:i + 2] == ["--case", c] for c in a.case for i in range(len(cmd))):
            continue
        if a.tier != "normal":
            # One job per model executable, as the models-long/-exhaustive
            # targets run them (a case may have no exhaustive variant).
            if is_mutant or "--case" not in cmd or any(j[1][0] == cmd[0] for j in jobs):
                continue
            name, cmd = "model.%s.%s" % (name.split(".")[1], a.tier), [cmd[0], "--" + a.tier]
        if os.path.basename(cmd[0]).startswith(("model_", "mutant_")):
            cmd = cmd + ["--progress=%d" % a.progress]  # the runner's status line with an ETA
        jobs.append((name, cmd, cwd))
    return jobs


def model_targets(a):
    """The executables `check` needs: all (target `models`), or with --model
    only model_<m> and the mutants whose id contains m."""
    if not a.model:
        return ["models"]
    listing = subprocess.run(["cmake", "--build", MAIN, "--target", "help"], capture_output=True,
                             text=True).stdout
    names = re.findall(r"^((?:model|mutant)_\w+):", listing, re.M)
    return sorted(n for n in set(names) if not n.endswith("_headers") and any(m in n for m in a.model))


def cmd_check(a):
    deps()
    configure(MAIN, MAIN_ARGS)
    build_targets(MAIN, model_targets(a))
    jobs = model_jobs(a)
    if not jobs:
        say("no model test matches")
        return 1
    os.makedirs(LAB, exist_ok=True)
    say("%d model/mutant tests, %d at a time (tier %s); logs in build/lab/check/" % (len(jobs), a.jobs, a.tier))
    res = run_pool(jobs, os.path.join(LAB, "check-times.json"), os.path.join(LAB, "check", a.tier), a.jobs)
    results, kills = [], []
    for name, (rc, dt, out) in sorted(results_items(res)):
        for r in rows(out, "RESULT") if not name.startswith("mutant.") else []:
            r["test"] = name
            results.append(r)
        if name.startswith("mutant."):
            m = re.search(r"^MUTANT CAUGHT\t(\S+)\tby=(\S+)", out, re.M)
            case = re.search(r"--case (\S+)", " ".join(dict((j[0], j[1]) for j in jobs)[name]))
            failing = [r for r in rows(out, "RESULT") if r.get("verdict") != "SUCCESS"]
            kills.append({"test": name, "mutant": name.split(".")[1], "case": case.group(1) if case else "?",
                          "caught": rc == 0, "by": m.group(2) if m else "",
                          "iters": int(failing[0]["iters"]) if failing else None})
    doc = {"stamp": stamp(), "tier": a.tier, "results": results, "mutants": kills,
           "partial": bool(a.model or a.case or a.no_mutants)}  # the report draws only whole runs
    with open(os.path.join(LAB, "models-%s.json" % a.tier), "w") as f:
        json.dump(doc, f, indent=1)
    bad = [n for n, (rc, _, _) in res.items() if rc != 0]
    say("%d/%d passed; results in build/lab/models-%s.json (fiberctl report draws them)%s" % (
        len(res) - len(bad), len(res), a.tier, "" if not bad else "; FAILED: " + " ".join(sorted(bad))))
    return 1 if bad else 0


def results_items(res):
    return res.items()


def cmd_prop(a):
    main_build(["prop_policy", "prop_structures"])
    bins = [os.path.join(MAIN, "proptests", b) for b in ("prop_policy", "prop_structures")]
    base = []
    if a.max_success:
        base.append("max_success=%d" % a.max_success)
    if a.replay:
        runs = [base + ["reproduce=" + a.replay]]
    elif a.seed is not None:
        runs = [base + ["seed=%d" % a.seed]]
    else:
        runs = [base + ["seed=%d" % (int.from_bytes(os.urandom(4), "little"))] for _ in range(a.seeds)]
    t0, bad = time.monotonic(), 0
    for i, params in enumerate(runs):
        env = dict(os.environ, RC_PARAMS=" ".join(params))
        for b in bins:
            cmd = [b] + (["--gtest_filter=" + a.filter] if a.filter else [])
            print("[%d/%d] RC_PARAMS=%r %s" % (i + 1, len(runs), env["RC_PARAMS"], os.path.basename(b)), flush=True)
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if p.returncode != 0:
                bad += 1
                print(p.stdout)
            else:
                print("  " + (p.stdout.strip().splitlines() or [""])[-1])
        el = time.monotonic() - t0
        print("  elapsed %s, ETA ~%s" % (clock(el), clock(el / (i + 1) * (len(runs) - i - 1))), flush=True)
    return 1 if bad else 0


def cmd_stress(a, extra):
    main_build(["fiber_stress"])
    os.makedirs(LAB, exist_ok=True)
    cmd = [os.path.join(MAIN, "stress", "fiber_stress"), "--seconds", str(a.seconds), "--status", str(a.status)] + extra
    log = os.path.join(LAB, "stress.log")
    say("%s  (log: build/lab/stress.log)" % " ".join(cmd[1:]))
    with open(log, "w") as f:
        f.write("# %s\n" % json.dumps(stamp()))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            sys.stdout.write(line)
            f.write(line)
        return p.wait()


BENCH_USAGE = """usage: fiberctl bench [run.py options]

Configures and builds build/bench (Release, no tests), then runs bench/run.py
on it: the Google Benchmark suite with the Go peers, then issue 12's
benchmarks (echo over loopback against the epoll loop, a thread per
connection, the fiber server and Go's net; contended std::mutex in fibers vs
fiber::mutex vs std::thread), one progress line per run.  Tables:
papers/results/bench.md and papers/results/io-bench.md (+ figures/io_*.svg).
Default length: the suite, then about 2 minutes of echo (3 rounds x 12 runs
x 2 s) and under a minute of locks.  E.g. fiberctl bench --io-only
--echo-rounds 5.  The options, passed to bench/run.py as given:
"""


def bench_help():
    sys.stdout.write(BENCH_USAGE + "\n")
    sys.stdout.flush()
    return subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--help"]).returncode


def cmd_bench(a):
    deps(["golang-go", "python3-matplotlib"])  # Go's peers; the figures (/usr/bin/python3)
    b = os.path.join(ROOT, "build", "bench")
    configure(b, ["-DCMAKE_BUILD_TYPE=Release", "-DFIBER_BUILD_MODELS=OFF", "-DFIBER_BUILD_TESTS=OFF",
                  "-DFIBER_BUILD_PROPTESTS=OFF"])
    build_targets(b)
    return subprocess.run([sys.executable, "bench/run.py", b] + a.args, cwd=ROOT).returncode


def cmd_report(a):
    deps(REPORT_PKGS)
    return subprocess.run([sys.executable, os.path.join(ROOT, "papers", "scripts", "report.py")] + a.args,
                          cwd=ROOT).returncode


def cmd_sanitizer(name):
    deps()
    sh(["cmake", "--preset", name], stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", "--preset", name, "-j", str(JOBS)])
    sh(["ctest", "--preset", name, "-j", str(JOBS)])


def parser():
    ap = argparse.ArgumentParser(prog="fiberctl", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.add_parser("deps", help="install the Debian packages the build needs")
    p = sub.add_parser("demo", help="build the library and spin_demo only, run the demo")
    p.add_argument("args", nargs=argparse.REMAINDER, help="spin_demo options (spin_demo --help)")
    sub.add_parser("test", help="the CI command: build, unit|model|prop|stress, install check")
    p = sub.add_parser("check", help="Relacy models and mutants, with progress and an ETA")
    p.add_argument("--tier", choices=["normal", "long", "exhaustive"], default="normal",
                   help="normal: the ctest searches (+ mutants); long: --long; exhaustive: hours")
    p.add_argument("--model", action="append", help="only this model (repeatable): parker, mutex...")
    p.add_argument("--case", action="append", help="only this invariant case (repeatable): I-M1...")
    p.add_argument("--no-mutants", action="store_true", help="skip the planted-bug mutants")
    p.add_argument("-j", "--jobs", type=int, default=JOBS, help="tests at a time (default: CPUs)")
    p.add_argument("--progress", type=int, default=10, help="seconds between a search's status lines")
    p = sub.add_parser("prop", help="RapidCheck properties: seeds, test counts, replay")
    p.add_argument("--seeds", type=int, default=1, help="run with N random seeds (default 1)")
    p.add_argument("--seed", type=int, help="one given seed")
    p.add_argument("--max-success", type=int, help="cases per property (RC_PARAMS max_success)")
    p.add_argument("--replay", help="a counterexample's reproduce=... string (RC_PARAMS)")
    p.add_argument("--filter", help="gtest filter, e.g. 'RunQueue*'")
    p = sub.add_parser("stress", help="fiber_stress: live status line, final report",
                       description="Other options go to fiber_stress: --klts K --fibers F --threads T "
                                   "--timeslice US --policy fifo|runnext --mix lock,buffer,sem,barrier,churn,sleep")
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--status", type=int, default=5, help="seconds between status lines")
    p = sub.add_parser("bench", help="Release build and the benchmark suite (bench/run.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="bench/run.py options (run.py --help)")
    p = sub.add_parser("report", help="figures, tables and the HTML paper from the last runs")
    p.add_argument("args", nargs=argparse.REMAINDER, help="papers/scripts/report.py options")
    for s in ("asan", "ubsan", "tsan"):
        sub.add_parser(s, help="build and test the %s preset" % s)
    for tier in ("long", "exhaustive"):  # the older spellings of check --tier long|exhaustive
        p = sub.add_parser("models-" + tier, help="same as: check --tier " + tier)
        p.set_defaults(tier=tier, model=None, case=None, no_mutants=True, jobs=JOBS, progress=10)
    p = sub.add_parser("mutants", help="the kill matrix: every mutant through every check family",
                       usage="fiberctl mutants [--families unit,trace,prop,stress,model] [--only IDS] "
                             "[--match RX] [--force] [--stop-after-kill]",
                       description="Runs tools/mutate.py run (resumable: cells already in "
                                   "papers/results/mutants.jsonl are skipped unless --force), then "
                                   "tools/mutate.py report (papers/results/mutants.md).  A campaign of "
                                   "hours on 2 cores: select with --match core/src or --only.")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("campaign", help="tools/model_campaign.py: long searches split into jobs")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def main():
    ap = parser()
    argv = sys.argv[1:]
    if argv[:1] == ["bench"] and {"-h", "--help"} & set(argv[1:2]):
        return bench_help()  # fiberctl's words, then run.py's options
    if argv[:1] == ["mutants"] and {"-h", "--help"} & set(argv[1:2]):
        ap.parse_args(["mutants", "--help"])  # fiberctl's words
    if argv[:1] and argv[0] in ("demo", "bench", "report", "campaign", "mutants") and not {"-h", "--help"} & set(argv[1:2]):
        # Everything after the command goes to the program it runs (spin_demo,
        # bench/run.py, report.py, model_campaign.py) as given.
        a, extra = argparse.Namespace(cmd=argv[0], args=[x for x in argv[1:] if x != "--"]), []
    else:
        a, extra = ap.parse_known_args()
    if extra and a.cmd != "stress":
        ap.error("unrecognized arguments: " + " ".join(extra))
    if a.cmd is None:
        ap.print_help()
        return 2
    os.chdir(ROOT)
    if a.cmd == "deps":
        deps(REPORT_PKGS)
    elif a.cmd == "demo":
        cmd_demo(a)
    elif a.cmd == "test":
        cmd_test(a)
    elif a.cmd in ("check", "models-long", "models-exhaustive"):
        return cmd_check(a)
    elif a.cmd == "prop":
        return cmd_prop(a)
    elif a.cmd == "stress":
        return cmd_stress(a, extra)
    elif a.cmd == "bench":
        return cmd_bench(a)
    elif a.cmd == "report":
        return cmd_report(a)
    elif a.cmd in ("asan", "ubsan", "tsan"):
        cmd_sanitizer(a.cmd)
    elif a.cmd == "mutants":
        rc = subprocess.run([sys.executable, "tools/mutate.py", "run"] + a.args).returncode
        subprocess.run([sys.executable, "tools/mutate.py", "report"], stdout=subprocess.DEVNULL)
        say("kill matrix: papers/results/mutants.md")
        return rc
    elif a.cmd == "campaign":
        return subprocess.run([sys.executable, "tools/model_campaign.py"] + a.args).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
