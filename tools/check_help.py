#!/usr/bin/env python3
"""tools/check_help.py - every command answers --help: exit 0 and a usage line.

    check_help.py [--expect REGEX] -- COMMAND [ARGS...]

Runs COMMAND ARGS --help (30 s at most) and fails unless it exits 0 and its
standard output matches REGEX (default: a line starting "usage:", any case).
ctest runs it once per binary and script (tools/CMakeLists.txt, label unit).
"""
import argparse
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect", default=r"(?im)^usage:", help="regex the output must match")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- command [args...]")
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command after --")
    try:
        p = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        print("FAIL: %s --help did not finish in 30 s (it ran something instead?)" % cmd[0])
        return 1
    ok_rc = p.returncode == 0
    ok_text = re.search(a.expect, p.stdout) is not None
    if ok_rc and ok_text:
        print("ok: %s --help (exit 0, usage line)" % " ".join(cmd))
        return 0
    print("FAIL: %s --help: exit %d, usage line %s" % (" ".join(cmd), p.returncode,
                                                    "found" if ok_text else "missing"))
    print("--- stdout\n%s--- stderr\n%s" % (p.stdout[-2000:], p.stderr[-2000:]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
