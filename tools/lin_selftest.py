"""tools/lin_selftest.py - hand-made histories for `lin_check.py selftest`.

Each case is a small history of one object, written as ops
(worker, op, arg, ret, inv, res) in program order per worker, with the
verdict the checker must give.  Every specification has linearizable cases
(accepted) and non-linearizable ones (rejected); some also pin down how many
windows the history is cut into, and one case per object goes through the
JSON-lines reader and the verdict line.
"""
import errno
import io
import json
import os
import tempfile

OK, BAD = True, False
EBUSY, EPERM, EAGAIN, ETIMEDOUT = errno.EBUSY, errno.EPERM, errno.EAGAIN, errno.ETIMEDOUT
A, B, C = 0, 1, 2

# (name, object description, expected verdict, expected windows or None, ops)
CASES = [
    # --- mutex -------------------------------------------------------------------------
    ("mutex sequential", {"kind": "mutex"}, OK, 4,
     [(A, "lock", 0, 0, 0, 1), (A, "unlock", 0, 0, 2, 3), (B, "lock", 0, 0, 4, 5), (B, "unlock", 0, 0, 6, 7)]),
    ("mutex waiter acquires after the unlock", {"kind": "mutex"}, OK, None,
     [(A, "lock", 0, 0, 0, 1), (B, "lock", 0, 0, 2, 10), (A, "unlock", 0, 0, 5, 6), (B, "unlock", 0, 0, 11, 12)]),
    ("mutex trylock EBUSY overlapping the unlock", {"kind": "mutex"}, OK, None,
     [(A, "lock", 0, 0, 0, 1), (A, "unlock", 0, 0, 4, 6), (B, "trylock", 0, EBUSY, 5, 7)]),
    ("mutex unlock EPERM by a non-owner", {"kind": "mutex"}, OK, None,
     [(A, "lock", 0, 0, 0, 1), (B, "unlock", 0, EPERM, 2, 3), (A, "unlock", 0, 0, 4, 5)]),
    ("mutex trylock EBUSY while reserved for a woken waiter (hand-off)", {"kind": "mutex"}, OK, None,
     [(A, "lock", 0, 0, 0, 1), (B, "lock", 0, 0, 2, 20), (A, "unlock", 0, 0, 5, 6),
      (C, "trylock", 0, EBUSY, 7, 8), (B, "unlock", 0, 0, 21, 22)]),
    ("mutex two owners at once", {"kind": "mutex"}, BAD, None,
     [(A, "lock", 0, 0, 0, 1), (B, "lock", 0, 0, 2, 3), (A, "unlock", 0, 0, 4, 5), (B, "unlock", 0, 0, 6, 7)]),
    ("mutex trylock succeeds on a held mutex (knob 21)", {"kind": "mutex"}, BAD, None,
     [(A, "lock", 0, 0, 0, 1), (B, "trylock", 0, 0, 2, 3), (B, "unlock", 0, EPERM, 4, 5),
      (A, "unlock", 0, 0, 6, 7)]),
    ("mutex trylock EBUSY on a free mutex", {"kind": "mutex"}, BAD, None,
     [(A, "lock", 0, 0, 0, 1), (A, "unlock", 0, 0, 2, 3), (B, "trylock", 0, EBUSY, 4, 5)]),
    ("mutex unlock 0 by a non-owner", {"kind": "mutex"}, BAD, None,
     [(A, "lock", 0, 0, 0, 1), (B, "unlock", 0, 0, 2, 3)]),
    ("mutex program order: an unlock before its lock, equal timestamps", {"kind": "mutex"}, BAD, None,
     [(A, "unlock", 0, 0, 0, 2), (A, "lock", 0, 0, 2, 4)]),
    # --- semaphore -------------------------------------------------------------------------
    ("sem one permit passed on by a post", {"kind": "sem", "init": 1}, OK, None,
     [(A, "wait", 0, 0, 0, 1), (B, "wait", 0, 0, 2, 10), (A, "post", 0, 0, 5, 6), (B, "post", 0, 0, 11, 12)]),
    ("sem a wait served by a concurrent post", {"kind": "sem", "init": 0}, OK, 1,
     [(A, "wait", 0, 0, 0, 10), (B, "post", 0, 0, 5, 6)]),
    ("sem timeouts and EAGAIN at zero, then a permit", {"kind": "sem", "init": 0}, OK, None,
     [(A, "timedwait", 1000, ETIMEDOUT, 0, 5), (B, "trywait", 0, EAGAIN, 1, 2), (B, "post", 0, 0, 6, 7),
      (C, "trywait", 0, 0, 8, 9)]),
    ("sem trywait EAGAIN overlapping a post", {"kind": "sem", "init": 0}, OK, None,
     [(A, "trywait", 0, EAGAIN, 0, 10), (B, "post", 0, 0, 2, 3), (B, "wait", 0, 0, 4, 5)]),
    ("sem a second permit out of one", {"kind": "sem", "init": 1}, BAD, None,
     [(A, "wait", 0, 0, 0, 1), (B, "trywait", 0, 0, 2, 3)]),
    ("sem trywait EAGAIN with a permit free", {"kind": "sem", "init": 1}, BAD, None,
     [(A, "trywait", 0, EAGAIN, 0, 1)]),
    ("sem two waits served by one post (knob 22)", {"kind": "sem", "init": 0}, BAD, None,
     [(A, "post", 0, 0, 0, 1), (B, "wait", 0, 0, 2, 3), (C, "wait", 0, 0, 4, 5)]),
    ("sem timeout with a permit free", {"kind": "sem", "init": 0}, BAD, None,
     [(A, "post", 0, 0, 0, 1), (B, "timedwait", 1000, ETIMEDOUT, 2, 3)]),
    # --- bounded FIFO queue ---------------------------------------------------------------------
    ("queue FIFO", {"kind": "queue", "capacity": 2}, OK, 4,
     [(A, "enq", 1, 0, 0, 1), (A, "enq", 2, 0, 2, 3), (B, "deq", 0, 1, 4, 5), (B, "deq", 0, 2, 6, 7)]),
    ("queue concurrent enqueues, either order", {"kind": "queue", "capacity": 2}, OK, 2,
     [(A, "enq", 1, 0, 0, 10), (B, "enq", 2, 0, 0, 10), (C, "deq", 0, 2, 9, 12), (C, "deq", 0, 1, 13, 14)]),
    ("queue two end states carried across a quiescent cut", {"kind": "queue", "capacity": 2}, OK, 3,
     [(A, "enq", 1, 0, 0, 2), (B, "enq", 2, 0, 1, 3), (C, "deq", 0, 2, 10, 11), (C, "deq", 0, 1, 12, 13)]),
    ("queue an enqueue blocked while full", {"kind": "queue", "capacity": 2}, OK, None,
     [(A, "enq", 1, 0, 0, 1), (A, "enq", 2, 0, 2, 3), (B, "enq", 3, 0, 4, 20), (C, "deq", 0, 1, 10, 11),
      (C, "deq", 0, 2, 21, 22), (C, "deq", 0, 3, 23, 24)]),
    ("queue out of order (--plant-bug queue)", {"kind": "queue", "capacity": 2}, BAD, None,
     [(A, "enq", 1, 0, 0, 1), (A, "enq", 2, 0, 2, 3), (B, "deq", 0, 2, 4, 5), (B, "deq", 0, 1, 6, 7)]),
    ("queue an item dequeued twice", {"kind": "queue", "capacity": 2}, BAD, None,
     [(A, "enq", 1, 0, 0, 1), (B, "deq", 0, 1, 2, 3), (C, "deq", 0, 1, 4, 5)]),
    ("queue an item never enqueued", {"kind": "queue", "capacity": 2}, BAD, None,
     [(A, "enq", 1, 0, 0, 1), (B, "deq", 0, 7, 2, 3)]),
    ("queue over capacity", {"kind": "queue", "capacity": 2}, BAD, None,
     [(A, "enq", 1, 0, 0, 1), (A, "enq", 2, 0, 2, 3), (A, "enq", 3, 0, 4, 5)]),
    ("queue the wrong one of the carried end states", {"kind": "queue", "capacity": 2}, BAD, None,
     [(A, "enq", 1, 0, 0, 1), (B, "enq", 2, 0, 2, 3), (C, "deq", 0, 2, 10, 11)]),
]


def run_case(lc, desc, ops):
    spec = lc.SPECS[desc["kind"]](desc)
    last, built = {}, []
    for i, (w, k, arg, ret, inv, res) in enumerate(ops):
        o = lc.Op(w, k, arg, ret, inv, res, i)
        o.prev, last[w] = last.get(w), o
        built.append(o)
    out = io.StringIO()
    ok, st = lc.check_object("x", built, spec, 100000, out)
    return ok, st, out.getvalue()


def file_case(lc, desc, ops, want):
    """The same history through the JSON-lines reader and check_history."""
    with tempfile.TemporaryDirectory(prefix="lin_selftest.") as d:
        path = os.path.join(d, "h.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"fiber_lin_history": 1, "objects": [dict(desc, name="x")]}) + "\n")
            for w, k, arg, ret, inv, res in ops:
                f.write(json.dumps({"obj": "x", "w": w, "op": k, "arg": arg, "ret": ret, "inv": inv,
                                    "res": res}) + "\n")
        header, objs, per_obj = lc.load(path)
        out = io.StringIO()
        rc = lc.check_history(header, objs, per_obj, 100000, out)
    line = out.getvalue().strip().splitlines()[-1]
    expect = "lin_check: LINEARIZABLE" if want else "lin_check: NOT LINEARIZABLE"
    return rc == (0 if want else 1) and line.startswith(expect), line


def selftest(lc):
    fails, files_done = 0, set()
    for name, desc, want, nwin, ops in CASES:
        ok, st, out = run_case(lc, desc, ops)
        problems = []
        if ok != want:
            problems.append("verdict %s, expected %s" % ("linearizable" if ok else "not linearizable",
                                                         "linearizable" if want else "not linearizable"))
        if nwin is not None and st["windows"] != nwin:
            problems.append("%d windows, expected %d" % (st["windows"], nwin))
        if not want and "witness:" not in out:
            problems.append("no witness printed")
        if (desc["kind"], want) not in files_done:
            files_done.add((desc["kind"], want))
            good, line = file_case(lc, desc, ops, want)
            if not good:
                problems.append("through the file reader: %s" % line)
        print("%s  %-66s %s" % ("FAIL" if problems else "ok  ", name, "; ".join(problems)))
        fails += bool(problems)
    print("lin_check selftest: %d cases, %d failed" % (len(CASES), fails))
    return 1 if fails else 0
