#!/usr/bin/env python3
"""tools/lin_check.py - linearizability checker for native histories.

A history is what stress/stress_lin.cpp writes (stress/history.hpp): JSON lines,
a header {"fiber_lin_history":1, "objects":[{"name","kind",...}], ...} and then
one line per completed operation
  {"obj":"mutex","w":3,"op":"lock","arg":0,"ret":0,"inv":1234,"res":1301}
with `inv` read just before the call and `res` just after it returned
(CLOCK_MONOTONIC ns).  Op A precedes op B iff A.res < B.inv; ops of one worker
are also ordered by their order in the file (program order).

  lin_check.py check HISTORY [--budget N]   exit 0 linearizable, 1 not, 3 undecided
  lin_check.py run [--dir DIR] [--budget N] -- PROG ARGS...
                                            runs PROG ARGS --out DIR (a temporary
                                            directory by default), requires exit 0,
                                            then checks DIR/lin_history.jsonl
  lin_check.py selftest                     hand-made histories per specification:
                                            each linearizable one must be accepted,
                                            each non-linearizable one rejected

Method (papers/verification.md, "Linearizability of native histories"):
  * P-compositionality: a history is linearizable iff each object's sub-history
    is (Herlihy & Wing 1990), so each object is checked alone.
  * Windows: an object's ops sorted by invocation are cut wherever every op
    before the cut returned before every op after it was invoked (a quiescent
    point).  Any linearization of the whole is then a concatenation of
    linearizations of the windows, so the windows are searched one after the
    other, each from every state the previous one can end in.
  * Search: Wing & Gong's (1993) depth-first search for a legal sequential order
    that respects real-time order, with Lowe's (2017) memoisation: a
    configuration (set of linearized ops as a bitmask, spec state) is explored
    once.  An op may be linearized next iff it is not linearized, its worker's
    previous op is, and it was invoked before every unlinearized op returned.
  * Specs (sequential, deterministic given an op and its recorded result):
      mutex  state: owner (-1 none).  lock 0: owner none -> caller; EDEADLK:
             owner is caller.  trylock 0: as lock; EBUSY: owned.  unlock 0:
             owner is caller -> none; EPERM: owner is not the caller.
      sem    state: count >= 0.  wait/trywait/timedwait 0: count > 0 -> count-1;
             trywait EAGAIN, timedwait ETIMEDOUT: count == 0.  post 0: count+1.
      queue  state: tuple of values, at most `capacity`.  enq v: not full ->
             append v.  deq -> v: not empty and v is the head -> pop it.
    A mutex or semaphore window ends in one state whatever the linearization
    (the count is start + posts - acquisitions; the owner is fixed by each
    worker's own acquire/release alternation), so its search stops at the first
    linearization; a queue window is searched fully to collect every end state.
  * A window whose search explores more than --budget configurations leaves the
    verdict undecided (exit 3) rather than running unbounded.
Output: one verdict line, `lin_check: LINEARIZABLE: ...`, `lin_check: NOT
LINEARIZABLE: ...` (after a witness: the window, the longest linearizable prefix
found and why each next candidate is illegal) or `lin_check: UNDECIDED: ...`.
"""
import errno
import json
import os
import subprocess
import sys
import tempfile
import time

ESTR = {0: "0", errno.EBUSY: "EBUSY", errno.EPERM: "EPERM", errno.EDEADLK: "EDEADLK",
        errno.EAGAIN: "EAGAIN", errno.ETIMEDOUT: "ETIMEDOUT"}


def value(v):
    """A queue value as stress_lin.cpp makes them: (worker + 1) << 32 | seq -> "worker:seq"."""
    return "%d:%d" % ((v >> 32) - 1, v & 0xFFFFFFFF) if v >= 1 << 32 else str(v)


def fmt_state(st):
    return "[%s]" % ", ".join(value(v) for v in st) if isinstance(st, tuple) else repr(st)


class Op:
    __slots__ = ("w", "op", "arg", "ret", "inv", "res", "prev", "line")

    def __init__(self, w, op, arg, ret, inv, res, line=0):
        self.w, self.op, self.arg, self.ret, self.inv, self.res = w, op, arg, ret, inv, res
        self.prev = None  # the same worker's previous op (program order)
        self.line = line

    def __str__(self):
        ret = value(self.ret) if self.op == "deq" else ESTR.get(self.ret, self.ret)
        arg = "(%s)" % value(self.arg) if self.op == "enq" or self.arg else ""
        return "w%-3d %s%s -> %s  [%d, %d]" % (self.w, self.op, arg, ret, self.inv, self.res)


# --- sequential specifications -------------------------------------------------------
class MutexSpec:
    unique_end = True

    def __init__(self, desc):
        self.start = -1

    @staticmethod
    def step(owner, o):
        k, r = o.op, o.ret
        if k in ("lock", "trylock"):
            if r == 0:
                return o.w if owner == -1 else None
            if k == "lock" and r == errno.EDEADLK:
                return owner if owner == o.w else None
            if k == "trylock" and r == errno.EBUSY:
                return owner if owner != -1 else None
            return None
        if k == "unlock":
            if r == 0:
                return -1 if owner == o.w else None
            if r == errno.EPERM:
                return owner if owner != o.w else None
        return None


class SemSpec:
    unique_end = True

    def __init__(self, desc):
        self.start = int(desc.get("init", 0))

    @staticmethod
    def step(count, o):
        k, r = o.op, o.ret
        if k == "post":
            return count + 1 if r == 0 else None
        if k in ("wait", "trywait", "timedwait"):
            if r == 0:
                return count - 1 if count > 0 else None
            if (k == "trywait" and r == errno.EAGAIN) or (k == "timedwait" and r == errno.ETIMEDOUT):
                return count if count == 0 else None
        return None


class QueueSpec:
    unique_end = False

    def __init__(self, desc):
        self.start = ()
        self.cap = int(desc.get("capacity", 1 << 30))

    def step(self, q, o):
        if o.op == "enq":
            return q + (o.arg,) if len(q) < self.cap else None
        if o.op == "deq":
            return q[1:] if q and q[0] == o.ret else None
        return None


SPECS = {"mutex": MutexSpec, "sem": SemSpec, "queue": QueueSpec}


# --- windows and search -----------------------------------------------------------------
def windows(ops):
    """Cuts ops (sorted by inv) at quiescent points; yields lists of ops."""
    cur, horizon = [], None
    for o in ops:
        if cur and horizon < o.inv:
            yield cur
            cur = []
        if not cur or o.res > horizon:
            horizon = o.res
        cur.append(o)
    if cur:
        yield cur


class Undecided(Exception):
    pass


def lowest_zero(mask):
    return (~mask & (mask + 1)).bit_length() - 1


def search(win, spec, starts, budget):
    """Returns (end states, stats, deepest (depth, mask, state) for a witness).

    win: ops sorted by inv.  Configurations are (mask, rmask, state): mask has
    bit i for win[i] linearized, rmask the same set indexed in res order (so
    the smallest pending response is found at its lowest zero bit)."""
    n = len(win)
    full = (1 << n) - 1
    pos = {id(o): i for i, o in enumerate(win)}
    by_res = sorted(range(n), key=lambda i: win[i].res)
    rpos = [0] * n
    for r, i in enumerate(by_res):
        rpos[i] = r
    prevbit = [1 << pos[id(o.prev)] if o.prev is not None and id(o.prev) in pos else 0 for o in win]
    ends, explored, deepest = set(), 0, (-1, 0, None)
    for s0 in starts:
        stack, seen = [(0, 0, 0, s0)], {(0, s0)}
        while stack:
            depth, mask, rmask, st = stack.pop()
            explored += 1
            if explored > budget:
                raise Undecided("window of %d ops: more than %d configurations" % (n, budget))
            if mask == full:
                ends.add(st)
                if spec.unique_end:
                    return ends, explored, deepest
                continue
            if depth > deepest[0]:
                deepest = (depth, mask, st)
            minres = win[by_res[lowest_zero(rmask)]].res
            nxt = []
            i = lowest_zero(mask)
            while i < n and win[i].inv <= minres:
                if not (mask >> i) & 1 and (prevbit[i] & mask) == prevbit[i]:
                    ns = spec.step(st, win[i])
                    if ns is not None and (mask | 1 << i, ns) not in seen:
                        seen.add((mask | 1 << i, ns))
                        nxt.append((depth + 1, mask | 1 << i, rmask | 1 << rpos[i], ns))
                i += 1
            stack.extend(reversed(nxt))  # earliest invoked first
    return ends, explored, deepest


def witness(name, wi, win, spec, starts, deepest, out):
    depth, mask, st = deepest
    print("witness: object %s, window %d: %d ops from t=%d to t=%d, start state(s) %s"
          % (name, wi, len(win), win[0].inv, max(o.res for o in win),
             " or ".join(fmt_state(x) for x in sorted(starts, key=repr)[:4])), file=out)
    pending = [o for i, o in enumerate(win) if not (mask >> i) & 1]
    minres = min(o.res for o in pending)
    cands = [o for o in pending if o.inv <= minres]
    print("  longest linearizable prefix: %d of %d ops, ending in state %s; then no candidate is legal:"
          % (depth, len(win), fmt_state(st)), file=out)
    for o in cands:
        print("    illegal next: %s" % o, file=out)
    # The stuck point: every candidate was invoked before the first pending op
    # returned (at minres), and nothing else may come first.  Shown: the ops
    # alive in that interval, linearized or not.
    lo = min(o.inv for o in cands)
    shown = [o for o in win if o.inv <= minres and o.res >= lo]
    print("  ops alive between t=%d (first candidate invoked) and t=%d (first pending op returned):"
          % (lo, minres), file=out)
    for o in shown[:40]:
        print("    %s%s" % (o, "" if o in pending else "   (linearized)"), file=out)
    if len(shown) > 40:
        print("    ... %d more" % (len(shown) - 40), file=out)


def check_object(name, ops, spec, budget, out):
    """Returns (ok, stats dict)."""
    ops.sort(key=lambda o: o.inv)
    states = {spec.start}
    st = {"ops": len(ops), "windows": 0, "largest": 0, "explored": 0}
    for wi, win in enumerate(windows(ops)):
        st["windows"] += 1
        st["largest"] = max(st["largest"], len(win))
        ends, explored, deepest = search(win, spec, states, budget)
        st["explored"] += explored
        if not ends:
            witness(name, wi, win, spec, states, deepest, out)
            st["bad_window"] = wi
            return False, st
        states = ends
    return True, st


# --- input ---------------------------------------------------------------------------------
def load(path):
    with open(path) as f:
        header = json.loads(f.readline())
        if header.get("fiber_lin_history") != 1:
            raise ValueError("%s: not a fiber_lin_history 1 file" % path)
        objs = {d["name"]: d for d in header["objects"]}
        per_obj, last = {}, {}
        for n, line in enumerate(f, 2):
            d = json.loads(line)
            o = Op(d["w"], d["op"], d["arg"], d["ret"], d["inv"], d["res"], n)
            o.prev = last.get((d["obj"], o.w))
            last[(d["obj"], o.w)] = o
            per_obj.setdefault(d["obj"], []).append(o)
    return header, objs, per_obj


def check_history(header, objs, per_obj, budget, out=sys.stdout):
    t0 = time.process_time()
    total, parts, bad = 0, [], None
    try:
        for name in sorted(per_obj):
            spec = SPECS[objs[name]["kind"]](objs[name])
            ok, st = check_object(name, per_obj[name], spec, budget, out)
            total += st["ops"]
            parts.append("%s %d ops/%d windows (largest %d, %d configurations)"
                         % (name, st["ops"], st["windows"], st["largest"], st["explored"]))
            if not ok:
                bad = "object %s, window %d" % (name, st["bad_window"])
                break
    except Undecided as e:
        print("lin_check: UNDECIDED: %s" % e, file=out)
        return 3
    cpu = time.process_time() - t0
    if bad:
        print("lin_check: NOT LINEARIZABLE: %s (%s; plant=%s)" % (bad, "; ".join(parts), header.get("plant")),
              file=out)
        return 1
    print("lin_check: LINEARIZABLE: %d ops checked in %.2f s CPU: %s" % (total, cpu, "; ".join(parts)), file=out)
    return 0


def cmd_check(path, budget):
    try:
        header, objs, per_obj = load(path)
    except (OSError, ValueError, KeyError) as e:
        print("lin_check: FAIL: cannot read %s: %s" % (path, e))
        return 2
    return check_history(header, objs, per_obj, budget)


def cmd_run(args, budget):
    d = None
    if args[:1] == ["--dir"]:
        d, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        return usage(2)
    tmp = None
    if d is None:
        tmp = tempfile.TemporaryDirectory(prefix="lin_check.")
        d = tmp.name
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "lin_history.jsonl")
    if os.path.exists(path):
        os.unlink(path)
    sys.stdout.flush()
    rc = subprocess.call(args + ["--out", d])
    if rc != 0:
        print("lin_check: FAIL: %s exited with %d" % (args[0], rc))
        return 1
    return cmd_check(path, budget)


def usage(status):
    print(__doc__.split("\n\n")[0].replace('"""', ""), file=sys.stdout if status == 0 else sys.stderr)
    print("usage: lin_check.py check HISTORY [--budget N] | run [--dir DIR] [--budget N] -- PROG ARGS... "
          "| selftest", file=sys.stdout if status == 0 else sys.stderr)
    return status


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        return usage(0 if argv else 2)
    budget = 2_000_000
    sep = argv.index("--") if "--" in argv else len(argv)
    if "--budget" in argv[:sep]:
        i = argv.index("--budget")
        if i + 1 >= sep:
            return usage(2)
        budget = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if argv[0] == "check" and len(argv) == 2:
        return cmd_check(argv[1], budget)
    if argv[0] == "run":
        return cmd_run(argv[1:], budget)
    if argv[0] == "selftest":
        from lin_selftest import selftest
        return selftest(sys.modules[__name__])
    return usage(2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
