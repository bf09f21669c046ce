#!/usr/bin/env python3
"""tools/mutate.py - the one mutant mechanism: patch files, applied one way, run by every check family.

A mutant is tools/mutants/<id>.patch: a few header lines, a blank line, then a
unified diff (as `git diff` writes it) against any source file of the
repository, core/src included:

  Mutant: <id>                 the file's name without .patch
  Description: <one line>      what the planted bug does
  Invariant: <text>            optional: the invariant it violates (I-P1, work conservation...)
  Note: <text>                 optional: why it survives a family that might be expected to kill it
  Model: <model> <case> [sfx]  optional, repeatable: a Relacy model case that must reject it;
                               models/CMakeLists.txt builds mutant_<id> and the ctest
                               mutant.<id>[.<sfx>] (label model) from these lines

Applying: every hunk's old text (context and removed lines) must occur exactly
once in the file, and is replaced by its new text; line numbers are ignored.
So a mutant whose code changed fails loudly instead of rotting (the same rule
the models' build applies), and a shifted line does not matter.

  mutate.py list [--json]                 the mutants, their files and model cases
  mutate.py check                         every patch parses, names itself, applies to the
                                          current tree exactly and changes it (ctest mutants.check)
  mutate.py apply ID DIR                  DIR (a copy of the tree) gets mutant ID applied
  mutate.py apply-include PATCH SRC DST   copies SRC (core/include) to DST, rewriting only
                                          changed files, and applies PATCH's core/include hunks
                                          (the models' build step)
  mutate.py selftest                      hand-made bad patches, each refused with its reason
  mutate.py run [options]                 the kill matrix (see `mutate.py run --help`)
  mutate.py report [--results F] [--out F] the matrix as markdown from the results file
  mutate.py import-models BUILD           the model cells of the Model: mutants from BUILD's own
                                          mutant.* ctests (those .ci/run runs)

The families `run` knows, each a set of ctest tests of a build of the mutated tree:
  unit    ctest -L unit minus trace_* and the help/docs checks
  trace   the native trace runs and their checks (ctest -R '^trace')
  prop    ctest -L prop (RapidCheck properties over the simulator)
  stress  ctest -L stress
  model   the mutant's own Model: cases when it has them; otherwise every Relacy
          model whose objects include a mutated file (none: not applicable)
A family kills a mutant when one of its tests fails; a kill by a test that
only timed out is recorded as a weak kill ("timeout").
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = os.path.join(ROOT, "tools", "mutants")
FAMILIES = ["unit", "trace", "prop", "stress", "model"]
HEADER_KEYS = {"Mutant", "Description", "Invariant", "Model", "Note"}


class PatchError(Exception):
    pass


def parse(path):
    """Returns {id, description, invariants, models, files: [(relpath, [(old, new)])]}."""
    text = open(path).read()
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise PatchError("%s: no blank line between the header and the diff" % path)
    meta = {"id": None, "description": None, "invariant": "", "note": "", "models": [], "files": [], "path": path}
    for line in head.splitlines():
        key, _, val = line.partition(": ")
        if key not in HEADER_KEYS or not val:
            raise PatchError("%s: bad header line %r (keys: %s)" % (path, line, ", ".join(sorted(HEADER_KEYS))))
        if key == "Mutant":
            meta["id"] = val
        elif key == "Description":
            meta["description"] = val
        elif key in ("Invariant", "Note"):
            meta[key.lower()] = val
        else:
            parts = val.split()
            if len(parts) not in (2, 3):
                raise PatchError("%s: Model: wants <model> <case> [suffix]" % path)
            meta["models"].append(tuple(parts) + (("",) if len(parts) == 2 else ()))
    if not meta["id"] or not meta["description"]:
        raise PatchError("%s: Mutant: and Description: are required" % path)
    meta["files"] = parse_diff(path, body)
    if not meta["files"]:
        raise PatchError("%s: the diff changes no file" % path)
    return meta


HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def parse_diff(path, body):
    """[(relpath, [(old text, new text)])]; hunk line counts decide where a hunk ends."""
    files, cur, hunk, left = [], None, None, (0, 0)
    for line in body.splitlines(True):
        if line.startswith("\\"):  # "\ No newline at end of file": the line above has none
            for side in hunk or []:
                if side and side[-1].endswith("\n"):
                    side[-1] = side[-1][:-1]
            continue
        if left != (0, 0):
            tag, rest = line[:1], line[1:]
            if line == "\n":  # an empty context line whose space was stripped
                tag, rest = " ", "\n"
            if tag not in " -+":
                raise PatchError("%s: bad diff line %r" % (path, line))
            if tag != "+":
                hunk[0].append(rest)
            if tag != "-":
                hunk[1].append(rest)
            left = (left[0] - (tag != "+"), left[1] - (tag != "-"))
            if min(left) < 0:
                raise PatchError("%s: a hunk longer than its @@ line says" % path)
            continue
        m = HUNK.match(line)
        if m:
            if cur is None:
                raise PatchError("%s: hunk before a file header" % path)
            hunk = [[], []]
            cur[1].append(hunk)
            left = (int(m.group(1) or 1), int(m.group(2) or 1))
        elif line.startswith("+++ "):
            name = line[4:].strip()
            if not name.startswith("b/"):
                raise PatchError("%s: +++ line without b/ prefix: %s" % (path, name))
            cur = (name[2:], [])
            files.append(cur)
        elif not (line.startswith("diff --git ") or line.startswith("index ") or line.startswith("--- ")):
            raise PatchError("%s: text outside a hunk: %r" % (path, line))
    if left != (0, 0):
        raise PatchError("%s: the last hunk is shorter than its @@ line says" % path)
    return [(f, [("".join(o), "".join(n)) for o, n in hunks]) for f, hunks in files]


def mutate_text(meta, rel, text):
    for old, new in dict(meta["files"])[rel]:
        n = text.count(old)
        if n != 1:
            raise PatchError("mutant %s: a hunk's original text occurs %d times in %s (must be once); "
                             "the source changed, so update %s" % (meta["id"], n, rel, os.path.relpath(meta["path"], ROOT)))
        text = text.replace(old, new)
    return text


def write_if_changed(path, text):
    if os.path.exists(path) and open(path).read() == text:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def all_mutants():
    out = []
    for name in sorted(os.listdir(MUTANTS)):
        if name.endswith(".patch"):
            out.append(parse(os.path.join(MUTANTS, name)))
    return out


def find(mid):
    path = os.path.join(MUTANTS, mid + ".patch")
    if not os.path.exists(path):
        raise PatchError("no mutant %s (tools/mutants/%s.patch)" % (mid, mid))
    return parse(path)


def apply_texts(meta, texts, dst_root):
    """Writes the mutated files of meta into dst_root, from texts (relpath -> original)."""
    for rel, _ in meta["files"]:
        write_if_changed(os.path.join(dst_root, rel), mutate_text(meta, rel, texts[rel]))


def apply_tree(meta, src_root, dst_root):
    """Writes the mutated files of meta into dst_root, reading originals from src_root."""
    apply_texts(meta, {rel: open(os.path.join(src_root, rel)).read() for rel, _ in meta["files"]}, dst_root)


def cmd_apply_include(patch, src, dst):
    meta = parse(patch)
    prefix = "core/include/"
    mutated = {}
    for rel, _ in meta["files"]:
        if not rel.startswith(prefix):
            raise PatchError("mutant %s changes %s, outside core/include: a model cannot compile it" % (meta["id"], rel))
        inner = rel[len(prefix):]
        if not os.path.exists(os.path.join(src, inner)):
            raise PatchError("mutant %s: %s does not exist" % (meta["id"], rel))
        mutated[inner] = mutate_text(meta, rel, open(os.path.join(src, inner)).read())
    for dirpath, _, names in os.walk(src):
        for n in names:
            inner = os.path.relpath(os.path.join(dirpath, n), src)
            text = mutated.get(inner)
            if text is None:
                text = open(os.path.join(dirpath, n)).read()
            write_if_changed(os.path.join(dst, inner), text)


def cmd_check():
    bad, seen = [], {}
    try:
        ms = all_mutants()
    except PatchError as e:
        print("FAIL: %s" % e)
        return 1
    for m in ms:
        name = os.path.basename(m["path"])[:-len(".patch")]
        if m["id"] != name:
            bad.append("%s: Mutant: says %s" % (name, m["id"]))
        for rel, hunks in m["files"]:
            path = os.path.join(ROOT, rel)
            if not os.path.exists(path):
                bad.append("%s: %s does not exist" % (m["id"], rel))
                continue
            text = open(path).read()
            try:
                new = mutate_text(m, rel, text)
            except PatchError as e:
                bad.append(str(e))
                continue
            if new == text:
                bad.append("%s: applying it changes nothing in %s" % (m["id"], rel))
        key = repr(m["files"])
        if key in seen:
            bad.append("%s: the same change as %s" % (m["id"], seen[key]))
        seen[key] = m["id"]
    for b in bad:
        print("FAIL: " + b)
    where = {}
    for m in ms:
        area = "core/src" if any(r.startswith("core/src/") for r, _ in m["files"]) else "headers"
        where[area] = where.get(area, 0) + 1
    print("%d mutants (%s), %d with model cases: %s" % (
        len(ms), ", ".join("%s %d" % kv for kv in sorted(where.items())),
        sum(1 for m in ms if m["models"]), "FAIL" if bad else "ok"))
    return 1 if bad else 0


def cmd_selftest():
    """Each bad patch must be refused for its reason; the good one must apply exactly."""
    import tempfile
    orig = "int f() {\n  return 1;\n}\n\nint g() {\n  return 1;\n}\n"
    def patch(body, mid="t"):
        return "Mutant: %s\nDescription: test\n\n--- a/x_cpp\n+++ b/x_cpp\n%s" % (mid, body)
    good = patch("@@ -1,3 +1,3 @@\n int f() {\n-  return 1;\n+  return 2;\n }\n")
    cases = [("twice", patch("@@ -1,1 +1,1 @@\n-  return 1;\n+  return 2;\n"), "occurs 2 times"),
             ("gone", patch("@@ -1,1 +1,1 @@\n-  return 3;\n+  return 2;\n"), "occurs 0 times"),
             ("short hunk", patch("@@ -1,3 +1,3 @@\n int f() {\n-  return 1;\n+  return 2;\n"), "shorter"),
             ("no header", "--- a/x_cpp\n", "no blank line"),
             ("no id", "Description: d\n\n--- a/x_cpp\n+++ b/x_cpp\n", "required")]
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "x_cpp"), "w").write(orig)
        for name, text, why in cases:
            p = os.path.join(d, "t.patch")
            open(p, "w").write(text)
            try:
                m = parse(p)
                mutate_text(m, "x_cpp", orig)
                print("FAIL: %s: accepted" % name)
                bad += 1
            except PatchError as e:
                ok = why in str(e)
                bad += not ok
                print("%s: %s: refused: %s" % ("ok" if ok else "FAIL (wrong reason)", name, e))
        p = os.path.join(d, "t.patch")
        open(p, "w").write(good)
        new = mutate_text(parse(p), "x_cpp", orig)
        ok = new == orig.replace("return 1", "return 2", 1)
        bad += not ok
        print("%s: a good patch applies to its hunk only" % ("ok" if ok else "FAIL"))
    print("selftest: %s" % ("FAIL" if bad else "ok"))
    return 1 if bad else 0


def cmd_list(as_json):
    ms = all_mutants()
    if as_json:
        print(json.dumps([{k: m[k] for k in ("id", "description", "invariant", "note", "models")} |
                          {"files": [r for r, _ in m["files"]]} for m in ms], indent=1))
        return 0
    for m in ms:
        print("%-44s %-40s %s" % (m["id"], ",".join(r for r, _ in m["files"]), m["description"]))
    return 0


def main(argv):
    if len(argv) > 1 and argv[1] in ("run", "report", "import-models"):
        import mutate_run  # tools/mutate_run.py: the pipeline, a separate concern
        return mutate_run.main(argv[1], argv[2:])
    ap = argparse.ArgumentParser(prog="mutate.py", description=__doc__.split("\n")[0],
                                 usage="mutate.py {list,check,selftest,apply,apply-include,run,report,import-models} ...",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list")
    p.add_argument("--json", action="store_true")
    sub.add_parser("check")
    sub.add_parser("selftest")
    p = sub.add_parser("apply")
    p.add_argument("id")
    p.add_argument("dir")
    p = sub.add_parser("apply-include")
    p.add_argument("patch")
    p.add_argument("src")
    p.add_argument("dst")
    sub.add_parser("run", help="the kill matrix (mutate.py run --help)")
    sub.add_parser("report", help="the matrix as markdown (mutate.py report --help)")
    sub.add_parser("import-models", help="model cells from a build's mutant.* ctests")
    a = ap.parse_args(argv[1:])
    try:
        if a.cmd == "list":
            return cmd_list(a.json)
        if a.cmd == "check":
            return cmd_check()
        if a.cmd == "selftest":
            return cmd_selftest()
        if a.cmd == "apply":
            apply_tree(find(a.id), a.dir, a.dir)
            return 0
        if a.cmd == "apply-include":
            cmd_apply_include(a.patch, a.src, a.dst)
            return 0
    except (PatchError, OSError) as e:
        print("mutate.py: %s" % e, file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv))
