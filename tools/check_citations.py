#!/usr/bin/env python3
"""tools/check_citations.py - every file and invariant the repository cites exists.

    check_citations.py [--root DIR] [--list]

Scans the tracked text files (sources, CMake, scripts, Markdown) and fails on:
  * a path under a top-level folder of the repository (core/..., models/...,
    papers/..., tools/...; fiber/... means core/include/fiber/...) that names
    no file or folder; a glob (models/mutex*) must match at least one;
  * a bare file name with a source or document extension (park.cpp, STYLE.md)
    that no file in the repository has, unless it is a known outside file
    (EXTERNAL below: other projects' files the text cites as prior art);
  * a citation of notes outside the repository (shared/notes, /work/);
  * an invariant cited (I3, I-P1, I-C3-C4, I-G1..I-G3, I-SEM6-spec) that no
    core/ file defines, or an invariant defined twice.  A definition is a
    comment line in core/ of the form "//   NAME text" (as in runtime.hpp and
    the detail/ headers).
ctest runs it (test docs.citations, label unit).
"""
import argparse
import fnmatch
import os
import re
import subprocess
import sys

TOP = ("core", "models", "proptests", "stress", "bench", "papers", "tools", "examples", "cmake", ".ci")
EXTS = ("cpp", "hpp", "md", "py", "cmake", "c", "S")
# Files of other projects cited as prior art or as the tools' own headers.
EXTERNAL = {"relacy.hpp", "relacy_std.hpp", "full_search_scheduler.hpp", "context_spmc_queue.hpp",
            "CTestTestfile.cmake",
            "live.py", "core.py"}  # scripts core/tests/gdb/gdb_test.py writes at run time
SKIP = ("tools/check_citations.py",)
PATH_RE = re.compile(r"(?<![\w./-])((?:%s)/[\w./*-]*[\w*]|fiber/[\w./-]+\.hp?p?)" %
                     "|".join(re.escape(t) for t in TOP))
# Not followed by "(": `o.c(' ')` is a call, not a C file.
BARE_RE = re.compile(r"(?<![\w./*}$-])([A-Za-z][\w-]*\.(?:%s))(?![\w/(])" % "|".join(EXTS))
BANNED_RE = re.compile(r"shared/notes|/work/")
DEF_RE = re.compile(r"^//\s{2,}(I-[A-Z]+\d+|I\d+)\s")
CITE_RE = re.compile(r"\bI-([A-Z]+)(\d+|\*)((?:-[A-Z]*\d+)*)(?:\.\.(?:I-)?([A-Z]+)?(\d+))?|\bI(\d+)(?:\.\.I(\d+))?\b")


def tracked(root):
    out = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True, check=True).stdout
    files = [f for f in out.splitlines() if os.path.exists(os.path.join(root, f))]
    # Files not yet committed count as present too.
    extra = subprocess.run(["git", "-C", root, "ls-files", "--others", "--exclude-standard"],
                           capture_output=True, text=True).stdout.splitlines()
    return sorted(set(files + extra))


def is_text(f):
    name = os.path.basename(f)
    return name.endswith(tuple("." + e for e in EXTS + ("h", "txt", "in", "json", "go"))) or \
        name in ("CMakeLists.txt", "fiberctl", "run")


def cited_names(text):
    """Invariant names a text cites, expanded (I-C3-C4 -> I-C3, I-C4)."""
    names = []
    for m in CITE_RE.finditer(text):
        if m.group(6):
            lo, hi = int(m.group(6)), int(m.group(7) or m.group(6))
            names += ["I%d" % i for i in range(lo, hi + 1)]
            continue
        fam, num, rest, rfam, rnum = m.groups()[:5]
        if num == "*":
            names.append("I-%s*" % fam)
            continue
        names.append("I-%s%s" % (fam, num))
        for part in re.findall(r"-([A-Z]*)(\d+)", rest or ""):
            if part[0] in ("", fam):
                names.append("I-%s%s" % (fam, part[1]))
        if rnum:
            names += ["I-%s%d" % (fam, i) for i in range(int(num) + 1, int(rnum) + 1)]
    return names


def check(root):
    files = tracked(root)
    present = set(files)
    dirs = {os.path.dirname(f) for f in files}
    while "" in dirs:
        dirs.discard("")
    alldirs = set()
    for d in dirs:
        while d:
            alldirs.add(d)
            d = os.path.dirname(d)
    basenames = {os.path.basename(f) for f in files}
    errors, defs = [], {}
    texts = {}
    for f in files:
        if f in SKIP or not is_text(f) or f.startswith("build/"):
            continue
        try:
            texts[f] = open(os.path.join(root, f), encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
    for f, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            where = "%s:%d" % (f, n)
            if BANNED_RE.search(line):
                errors.append("%s: cites notes outside the repository: %s" % (where, line.strip()[:100]))
            for m in PATH_RE.finditer(line):
                p = m.group(1).rstrip(".")
                if p.startswith("fiber/"):
                    p = "core/include/" + p
                # Relative to the root or to the citing file's folder; a
                # build output (models/parker) by its source's stem; a name
                # ending in "_" (context_) or a glob must match some file.
                ok = False
                for c in (p, os.path.normpath(os.path.join(os.path.dirname(f), p))):
                    if "*" in c:
                        ok = ok or any(fnmatch.fnmatch(x, c) or fnmatch.fnmatch(x, c + "/*") for x in present)
                    else:
                        ok = ok or c in present or c.rstrip("/") in alldirs or \
                            any(x.startswith(c + ".") for x in present) or \
                            (c.endswith("_") and any(x.startswith(c) for x in present))
                if not ok:
                    errors.append("%s: cites %s, which does not exist" % (where, m.group(1)))
            for m in BARE_RE.finditer(line):
                b = m.group(1)
                if b not in basenames and b not in EXTERNAL:
                    errors.append("%s: cites %s, which no file in the repository is" % (where, b))
            if f.startswith("core/"):
                d = DEF_RE.match(line)
                if d:
                    defs.setdefault(d.group(1), []).append(where)
    for name, where in sorted(defs.items()):
        if len(where) > 1:
            errors.append("invariant %s is defined %d times: %s" % (name, len(where), ", ".join(where)))
    families = {re.match(r"I-([A-Z]+)", n).group(1) for n in defs if n.startswith("I-")}
    for f, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            for name in cited_names(line):
                if name.endswith("*"):
                    ok = name[2:-1] in families
                else:
                    ok = name in defs
                if not ok:
                    errors.append("%s:%d: cites invariant %s, which no core/ file defines" % (f, n, name))
    return errors, defs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--list", action="store_true", help="print the invariants defined, and where")
    a = ap.parse_args()
    errors, defs = check(a.root)
    if a.list:
        for name, where in sorted(defs.items()):
            print("%-8s %s" % (name, ", ".join(where)))
    for e in errors:
        print(e)
    print("%d invariants defined; %d problems" % (len(defs), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
