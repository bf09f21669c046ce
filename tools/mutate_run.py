"""tools/mutate_run.py - `mutate.py run` and `mutate.py report`: the kill matrix.

run: every selected mutant (tools/mutants/*.patch) is applied to a private
copy of the tree (<work>/src), rebuilt incrementally, and run through each
check family; one JSON line per (mutant, family) goes to the results file as
soon as it is known, so an interrupted campaign resumes where it stopped.
Before any mutant, the unmutated tree must pass every selected family (the
baseline): a matrix over a red tree would credit its failures to mutants.

Verdicts: killed (a test failed: a wrong answer, a crash, a check that fired),
timeout (only a timeout: a weak kill, the test hung), survived, n/a (no test
of the family compiles a mutated file: a model family for core/src), and
build-failed (the mutant does not compile; counted as neither).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

import mutate

ROOT = mutate.ROOT
# ctest selections of the native families (model is handled apart).
SELECT = {
    "unit": ["-L", "unit", "-E", r"^(trace|help\.|docs\.|mutants\.|lin_check_selftest)"],
    "trace": ["-R", r"^trace"],
    "prop": ["-L", "prop"],
    "stress": ["-L", "stress"],
}
FAILED = re.compile(r"^\s*\d+ - (.+) \(([^()]*)\)\s*$", re.M)  # "  12 - name (Failed)"


def say(msg):
    print(msg, flush=True)


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def sync_tree(dst):
    """dst gets every tracked file of ROOT (working-tree text), rewriting only changed files."""
    for rel in tracked_files():
        src = os.path.join(ROOT, rel)
        if os.path.islink(src) or not os.path.isfile(src):
            continue
        out = os.path.join(dst, rel)
        with open(src, "rb") as f:
            data = f.read()
        if os.path.exists(out):
            with open(out, "rb") as f:
                if f.read() == data:
                    continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(data)
        shutil.copymode(src, out)


def restore(meta, src_dir, orig):
    for rel, _ in meta["files"]:
        mutate.write_if_changed(os.path.join(src_dir, rel), orig[rel])


def sh(cmd, log, timeout=None, cwd=None):
    """Runs cmd, appending its output to log; returns (rc, output, seconds); rc None on timeout."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, cwd=cwd)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = None, (e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or "")
    with open(log, "a") as f:
        f.write("$ %s\n%s\n" % (" ".join(cmd), out))
    return rc, out, time.time() - t0


def configure(build, src, models):
    if os.path.exists(os.path.join(build, "build.ninja")):
        return
    cmd = ["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
           "-DFIBER_BUILD_BENCH=OFF", "-DFIBER_BUILD_MODELS=" + ("ON" if models else "OFF")]
    if shutil.which("ccache"):
        cmd += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def model_targets(build):
    out = subprocess.run(["ninja", "-C", build, "-t", "targets", "all"], capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"^(model_[a-z_]+):", out, re.M)) - {"model_ticket_lock"})


def models_using(build, files):
    """Model names whose objects include one of files (ninja's recorded header deps)."""
    out = subprocess.run(["ninja", "-C", build, "-t", "deps"], capture_output=True, text=True).stdout
    used, cur = set(), None
    want = [os.path.realpath(f) for f in files]
    for line in out.splitlines():
        if line and not line.startswith(" "):
            m = re.match(r"(?:models)/CMakeFiles/model_([a-z_]+)\.dir/", line)  # an object of build-models
            cur = m.group(1) if m else None
        elif cur and os.path.realpath(os.path.join(build, line.strip())) in want:
            used.add(cur)
    return sorted(used)


def ctest(build, args, log, limit, jobs):
    cmd = ["ctest", "--test-dir", build, "--stop-on-failure", "-j", str(jobs), "--timeout", "120"] + args
    rc, out, secs = sh(cmd, log, timeout=limit)
    if rc is None:
        return "timeout", "(the family ran past %d s)" % limit, secs
    verdict, test = verdict_of(rc, out)
    return verdict, test, secs


def verdict_of(rc, out):
    """(verdict, first failing test) from ctest's exit status and output."""
    if "No tests were found" in out:
        return "n/a", ""
    failed = FAILED.findall(out.split("The following tests FAILED:")[-1]) if "FAILED:" in out else []
    if rc == 0 and not failed:
        return "survived", ""
    strong = [n for n, why in failed if "Timeout" not in why]
    if strong:
        return "killed", strong[0]
    if failed:
        return "timeout", failed[0][0]
    return "killed", "(ctest exit %d)" % rc


def run_family(fam, meta, w, a, limits):
    log = os.path.join(w, "logs", "%s.%s.log" % (meta["id"] if meta else "baseline", fam))
    os.makedirs(os.path.dirname(log), exist_ok=True)
    open(log, "w").close()
    if fam == "model":
        b = os.path.join(w, "build-models")
        if meta and not any(r.startswith("core/include/") for r, _ in meta["files"]):
            return "n/a", "", 0.0  # models compile core/include only
        if meta and meta["models"]:
            rc, _, _ = sh(["ninja", "-C", b, "mutant_" + meta["id"]], log)
            if rc != 0:
                return "build-failed", "", 0.0
            v, test, secs = ctest(b, ["-R", r"^mutant\.%s(\.[a-z]+)?$" % re.escape(meta["id"])], log,
                                  limits.get(fam), a.jobs)
            # The mutant.* tests run --expect-fail: each passes only when its
            # model rejected the mutant, so ctest's "all passed" is the kill
            # (as import-models reads them); a failure or a search that ran
            # past the limit means the model did not catch it.
            if v == "survived":
                return "killed", "mutant." + meta["id"], secs
            return (v, test, secs) if v == "n/a" else ("survived", test, secs)
        names = models_using(b, [os.path.join(w, "src", r) for r, _ in meta["files"]]) if meta else None
        if names == []:
            return "n/a", "", 0.0
        targets = ["model_" + n for n in names] if names else model_targets(b)
        rc, _, _ = sh(["ninja", "-C", b] + targets, log)
        if rc != 0:
            return "build-failed", "", 0.0
        sel = "|".join(re.escape(t[len("model_"):]) for t in targets)
        return ctest(b, ["-R", r"^model\.(%s)\." % sel], log, limits.get(fam), a.jobs)
    b = os.path.join(w, "build-native")
    rc, _, _ = sh(["ninja", "-C", b], log)
    if rc != 0:
        return "build-failed", "", 0.0
    return ctest(b, SELECT[fam], log, limits.get(fam), a.jobs)


def _diff_part(text):
    """A patch's diff, without its header (Description, Note, Model lines)."""
    i = text.find("\ndiff --git")
    return text[i:] if i >= 0 else text


def _patch_changed_since(mid, rev, cache):
    """True when mutant mid's diff differs from the one committed at rev (a cell
    recorded then is of another mutant); False when equal or unknowable."""
    key = (mid, rev)
    if key not in cache:
        rel = "tools/mutants/%s.patch" % mid
        old = subprocess.run(["git", "-C", ROOT, "show", "%s:%s" % (rev, rel)], capture_output=True, text=True)
        cur = os.path.join(ROOT, rel)
        cache[key] = (old.returncode == 0 and os.path.exists(cur) and
                      _diff_part(old.stdout) != _diff_part(open(cur).read()))
    return cache[key]


def load(path):
    """The latest cell per (mutant, family), leaving out cells recorded for an
    earlier version of the mutant's diff (its patch changed since that cell's
    commit: the source it mutates moved)."""
    done, cache = {}, {}
    if os.path.exists(path):
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                if _patch_changed_since(r["id"], r.get("git", "?"), cache):
                    continue
                done[(r["id"], r["family"])] = r
    return done


def cmd_run(argv):
    ap = argparse.ArgumentParser(prog="mutate.py run", description="Run mutants through the check families "
                                 "and append the kill matrix's cells to the results file.")
    ap.add_argument("--families", default=",".join(mutate.FAMILIES), help="comma list of %s" % ",".join(mutate.FAMILIES))
    ap.add_argument("--only", default="", help="comma list of mutant ids")
    ap.add_argument("--match", default="", help="regex over mutant ids and files (e.g. core/src)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "mutants"), help="work dir (tree copy, builds, logs)")
    ap.add_argument("--results", default=os.path.join(ROOT, "papers", "results", "mutants.jsonl"))
    ap.add_argument("--force", action="store_true", help="rerun cells already in the results file")
    ap.add_argument("--jobs", type=int, default=2, help="ctest -j")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not run the unmutated families first (a rerun right after a campaign; "
                         "each family then gets 15 minutes)")
    ap.add_argument("--stop-after-kill", action="store_true",
                    help="skip a mutant's remaining families once one killed it by a failing test "
                         "(not by a timeout): faster, a sparser matrix")
    a = ap.parse_args(argv)
    fams = [f for f in a.families.split(",") if f]
    for f in fams:
        if f not in mutate.FAMILIES:
            ap.error("unknown family %s" % f)
    ms = mutate.all_mutants()
    if a.only:
        want = set(a.only.split(","))
        ms = [m for m in ms if m["id"] in want]
        missing = want - set(m["id"] for m in ms)
        if missing:
            ap.error("no such mutant: %s" % ", ".join(sorted(missing)))
    if a.match:
        rx = re.compile(a.match)
        ms = [m for m in ms if rx.search(m["id"]) or any(rx.search(r) for r, _ in m["files"])]
    w = os.path.abspath(a.work)
    src = os.path.join(w, "src")
    say("mutate: %d mutants x %s; work %s; results %s" % (len(ms), ",".join(fams), w, a.results))
    sync_tree(src)
    orig = {}
    for m in ms:
        for rel, _ in m["files"]:
            with open(os.path.join(src, rel)) as f:
                orig[rel] = f.read()
    native = [f for f in fams if f != "model"]
    if native:
        configure(os.path.join(w, "build-native"), src, False)
    if "model" in fams and any(r.startswith("core/include/") for m in ms for r, _ in m["files"]):
        configure(os.path.join(w, "build-models"), src, True)
    # Baseline: every family green on the unmutated copy, timed; a family's
    # limit for a mutant is 3x its baseline plus two minutes (a hang is a weak kill).
    limits = {}
    for f in fams if not a.skip_baseline else []:
        if f == "model":
            b = os.path.join(w, "build-models")
            if not any(r.startswith("core/include/") for m in ms for r, _ in m["files"]):
                continue  # every selected mutant is n/a for the models
            say("baseline model: building the models (once)")
            sh(["ninja", "-C", b] + model_targets(b), os.path.join(w, "logs", "baseline.model-build.log"))
            limits[f] = 1800
            continue
        verdict, test, secs = run_family(f, None, w, a, {f: 7200})
        say("baseline %-6s %s %s (%.0f s)" % (f, verdict, test, secs))
        if verdict != "survived":
            say("FAIL: the unmutated tree does not pass family %s (%s): fix that first" % (f, test))
            return 1
        limits[f] = int(3 * secs + 120)
    for f in fams:
        limits.setdefault(f, 900)
    done = {} if a.force else load(a.results)
    os.makedirs(os.path.dirname(a.results), exist_ok=True)
    rev = git_rev()
    total = len(ms) * len(fams)
    i = 0
    t_all = time.time()
    for m in ms:
        # A mutant with model cases is checked before its patch reaches the
        # copy: its mutant_<id> target applies the patch to core/include itself.
        model_first = "model" in fams and bool(m["models"])
        order = (["model"] if model_first else []) + [f for f in fams if not (model_first and f == "model")]
        killed = applied = False
        for f in order:
            if not applied and not (f == "model" and model_first):
                # From the texts read at the start: edits to the working tree
                # meanwhile never reach a half-synced copy.
                mutate.apply_texts(m, orig, src)
                applied = True
            i += 1
            if (m["id"], f) in done or (killed and a.stop_after_kill):
                continue
            verdict, test, secs = run_family(f, m, w, a, limits)
            killed = killed or verdict == "killed"  # a weak (timeout) kill does not stop the row
            rec = {"id": m["id"], "family": f, "verdict": verdict, "test": test, "seconds": round(secs, 1),
                   "git": rev, "date": datetime.datetime.utcnow().strftime("%Y-%m-%d")}
            with open(a.results, "a") as out:
                out.write(json.dumps(rec) + "\n")
            say("[%d/%d %4.0f min] %-40s %-6s %-12s %s (%.0f s)" % (
                i, total, (time.time() - t_all) / 60, m["id"], f, verdict, test, secs))
        restore(m, src, orig)
    return 0


def cmd_report(argv):
    ap = argparse.ArgumentParser(prog="mutate.py report", description="Write the kill matrix as markdown.")
    ap.add_argument("--results", default=os.path.join(ROOT, "papers", "results", "mutants.jsonl"))
    ap.add_argument("--out", default=os.path.join(ROOT, "papers", "results", "mutants.md"))
    a = ap.parse_args(argv)
    cells = load(a.results)
    ms = {m["id"]: m for m in mutate.all_mutants()}
    fams = [f for f in mutate.FAMILIES if any(k[1] == f for k in cells)]
    ids = [i for i in ms if any(k[0] == i for k in cells)]
    short = {"killed": "**K**", "timeout": "T", "survived": "-", "n/a": "n/a", "build-failed": "BF"}
    L = ["# Mutant kill matrix", "",
         "Generated by `tools/mutate.py report` from `%s` (cells written by `tools/fiberctl mutants`, "
         "i.e. `tools/mutate.py run`).  **K** killed (a test failed), T killed only by a timeout "
         "(weak), - survived, n/a no test of the family compiles a mutated file, BF does not build; "
         "a blank cell was not run.  Seconds are the family's time to the verdict." %
         os.path.relpath(a.results, ROOT), ""]
    area = lambda m: "core/src" if any(r.startswith("core/src/") for r, _ in m["files"]) else "headers"
    strong = [i for i in ids if any(cells.get((i, f), {}).get("verdict") == "killed" for f in fams)]
    weak = [i for i in ids if i not in strong and any(cells.get((i, f), {}).get("verdict") == "timeout" for f in fams)]
    # A survivor went through every family; a row with families still to run is incomplete.
    surv = [i for i in ids if i not in strong and i not in weak and all((i, f) in cells for f in mutate.FAMILIES)]
    todo = [i for i in ids if i not in strong and i not in weak and i not in surv]
    for where in ("core/src", "headers"):
        sub = [i for i in ids if area(ms[i]) == where]
        L.append("- %s: %d of %d mutants run, %d killed by a failing test, %d only by a timeout, %d survive "
                 "every family, %d not yet through every family" % (
                     where, len(sub), sum(1 for m in ms.values() if area(m) == where), sum(i in strong for i in sub),
                     sum(i in weak for i in sub), sum(i in surv for i in sub), sum(i in todo for i in sub)))
    L += ["", "| mutant | file | " + " | ".join(fams) + " | first kill |", "|---|---|" + "---|" * len(fams) + "---|"]
    for i in sorted(ids, key=lambda i: (area(ms[i]), i)):
        row, first = [], ""
        for f in fams:
            c = cells.get((i, f))
            if not c:
                row.append("")
                continue
            row.append("%s %s" % (short[c["verdict"]], ("%.0fs" % c["seconds"]) if c["verdict"] in ("killed", "timeout") else ""))
            if c["verdict"] in ("killed", "timeout") and not first:
                first = "%s: `%s`" % (f, c["test"])
        files = ",".join(os.path.basename(r) for r, _ in ms[i]["files"])
        L.append("| %s | %s | %s | %s |" % (i, files, " | ".join(r.strip() for r in row), first))
    if surv:
        L += ["", "## Survivors", ""]
        for i in surv:
            m = ms[i]
            L.append("- `%s` (%s): %s.%s" % (i, m["invariant"] or "-", m["description"],
                                              (" " + m["note"]) if m["note"] else " Reason not yet analysed."))
    open(a.out, "w").write("\n".join(L) + "\n")
    print("\n".join(L))
    return 0


def cmd_import_models(argv):
    """The model family of the mutants with Model: lines, from a configured and
    built tree's own mutant.* ctests (what .ci/run runs): one cell per mutant,
    killed when every one of its expect-fail tests passed."""
    ap = argparse.ArgumentParser(prog="mutate.py import-models", description=cmd_import_models.__doc__)
    ap.add_argument("build", help="a build directory with FIBER_BUILD_MODELS=ON, its models built")
    ap.add_argument("--results", default=os.path.join(ROOT, "papers", "results", "mutants.jsonl"))
    a = ap.parse_args(argv)
    out = subprocess.run(["ctest", "--test-dir", a.build, "-R", r"^mutant\.", "-j", "2"], capture_output=True,
                         text=True).stdout
    rows = re.findall(r"Test +#\d+: (mutant\.\S+) \.+\s*(\*\*\*)?(Passed|Failed|Timeout|\w+)\s+([\d.]+) sec", out)
    if not rows:
        print("FAIL: no mutant.* test ran in %s" % a.build)
        return 1
    rev = subprocess.run(["git", "-C", a.build, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "?"
    done = load(a.results)
    n = 0
    with open(a.results, "a") as res:
        for m in mutate.all_mutants():
            if not m["models"] or (m["id"], "model") in done:
                continue
            mine = [(t, v, float(sec)) for t, _, v, sec in rows if t == "mutant." + m["id"] or
                    t.startswith("mutant.%s." % m["id"])]
            if not mine:
                continue
            ok = all(v == "Passed" for _, v, _ in mine)
            rec = {"id": m["id"], "family": "model", "verdict": "killed" if ok else "survived",
                   "test": mine[0][0] if ok else next(t for t, v, _ in mine if v != "Passed"),
                   "seconds": round(sum(x for _, _, x in mine), 1), "git": rev,
                   "date": datetime.datetime.utcnow().strftime("%Y-%m-%d")}
            res.write(json.dumps(rec) + "\n")
            n += 1
    print("imported %d model cells from %d mutant tests" % (n, len(rows)))
    return 0


def main(cmd, argv):
    if cmd == "import-models":
        return cmd_import_models(argv)
    return cmd_run(argv) if cmd == "run" else cmd_report(argv)
