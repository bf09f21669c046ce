#!/usr/bin/env python3
"""tools/trace_check.py - read, export and check native scheduling traces.

usage: trace_check.py {export TRACE OUT.json | schema OUT.json | check TRACE |
                       run [--expect RULE] -- PROG ARGS... | selftest | --help}

A trace is what the runtime writes with FIBER_TRACE=file (or
fiber_config_t::trace_path): binary, format in core/src/trace.cpp.

  trace_check.py export TRACE OUT.json   Chrome trace JSON (opens in ui.perfetto.dev):
                                         one track per KLT, fiber runs as slices,
                                         park/wake/preempt/... as instants, a flow
                                         arrow from each wake to the woken fiber's run
  trace_check.py schema OUT.json         validates an exported file (every event has
                                         ph/ts/pid/tid/name, B/E balanced and ts
                                         monotone per tid, flows paired)
  trace_check.py check TRACE             the invariants below; exit 1 on a violation
  trace_check.py run [--expect RULE] -- PROG ARGS...
                                         runs PROG with FIBER_TRACE set, requires exit
                                         0, exports, validates the JSON and checks the
                                         trace; with --expect the check must fail with
                                         RULE (a planted-bug control)
  trace_check.py selftest                hand-made bad traces, one per rule: each must
                                         be flagged by its rule and only by it

Rules (papers/verification.md, "Native traces").  Each fiber's events are
ordered by its seq, a counter its owner of the moment increments (the owner
hand-offs are release/acquire pairs), so no clock is trusted for them:
  seq-dup           two records of one step: two parties owned the fiber at once
  seq-gap           a step missing (an event lost)
  no-create         a fiber's first step is not its create
  two-klts          a fiber runs while it is already running (on two KLTs at once)
  run-without-wake  a parked fiber runs with no wake in between
  lost-wake         a wake of a fiber that an earlier wake already made runnable and
                    that did not run since, or a woken fiber that never ran again
  run-after-exit    a step (run, wake, park...) of a fiber after its exit
  double-exit       a second exit
  join-before-exit  a join returned before the fiber's exit
  double-join       a second join
  never-exited      a created fiber that had not exited when the trace ended
  bad-transition    any other step out of order (e.g. a yield of a fiber not running)
  drops             the trace lost records (a full buffer): refused, nothing is sure
and, from the fiber mutex's lock events (tools/trace_locks.py, ordered by each
mutex's own owner and queue sequences):
  mutex-overlap     an acquisition while another party holds the mutex (I-M1)
  unlock-without-lock  a release by a party that does not hold it
  grant-order       a waiter acquires before one that queued earlier (I-M3 a)
  overtaken         a waiter behind p waiters overtaken by more than p + (p+1)*K
                    acquisitions (I-M3 b; K recorded with each queued waiter)
"""
import heapq
import json
import os
import struct
import subprocess
import sys
import tempfile

import trace_locks

KINDS = ["?", "create", "run", "yield", "preempt", "park", "park_abort", "wake", "exit", "join",
         "idle_sleep", "idle_wake", "tick_refused", "name"] + trace_locks.NAMES
K = {n: i for i, n in enumerate(KINDS)}
assert K["lock_acquire"] == trace_locks.ACQUIRE
LOCK_FIRST = trace_locks.ACQUIRE  # kinds from here on are lock events (trace_locks.py), not fiber steps
NO_SEQ = 0xFFFFFFFF
Q_GLOBAL, Q_NONE = 0xFFFF, 0xFFFE
SRC_OS, SRC_CALIB = 0xFFFFFFFF, 0xFFFFFFFE
CHUNK_MAGIC = 0x4B4E4843
FILE_HDR = struct.Struct("<8sIIIII12x")  # 40 bytes
CHUNK = struct.Struct("<IIIIQQ")         # 32 bytes
REC = struct.Struct("<QQQIBBH")          # 32 bytes
REFUSAL = {1: "preempt_count", 2: "pc not allowed", 3: "stack room"}
WAIT_KINDS = None  # names of wait_kind values are not in the file; numbers are shown
OS_TID = 1000


class Trace:
    def __init__(self):
        self.nklts = 0
        self.pid = 0
        self.main = {}      # source -> [records] (program order)
        self.tick = {}      # source -> [records]
        self.dropped = {}   # (source, flags) -> drops
        self.calib = None   # tsc0, mono0, tsc1, mono1

    def ns(self, tsc):
        if not self.calib:
            return tsc
        t0, m0, t1, m1 = self.calib
        if t1 == t0:
            return m0
        return m0 + (tsc - t0) * (m1 - m0) / (t1 - t0)


def rec_tuple(b):
    ts, fiber, arg, seq, kind, aux, q = REC.unpack(b)
    return dict(ts=ts, fiber=fiber, arg=arg, seq=seq, kind=kind, aux=aux, q=q)


def parse(path):
    data = open(path, "rb").read()
    if len(data) < FILE_HDR.size or data[:8] != b"FIBTRC01":
        raise SystemExit(f"{path}: not a fiber trace")
    tr = Trace()
    _, _version, tr.nklts, tr.pid, recsize, _slice = FILE_HDR.unpack_from(data, 0)
    assert recsize == REC.size
    off = FILE_HDR.size
    while off < len(data):
        magic, source, count, flags, dropped, _ = CHUNK.unpack_from(data, off)
        if magic != CHUNK_MAGIC:
            raise SystemExit(f"{path}: bad chunk at offset {off} (truncated or torn file)")
        off += CHUNK.size
        recs = [rec_tuple(data[off + i * REC.size: off + (i + 1) * REC.size]) for i in range(count)]
        off += count * REC.size
        if source == SRC_CALIB:
            tr.calib = struct.unpack_from("<QQQQ", data, off - REC.size)
            continue
        key = (source, flags)
        tr.dropped[key] = max(tr.dropped.get(key, 0), dropped)
        (tr.tick if flags & 1 else tr.main).setdefault(source, []).extend(recs)
    return tr


def names_of(tr):
    parts = {}
    for recs in tr.main.values():
        for r in recs:
            if r["kind"] == K["name"]:
                parts.setdefault(r["fiber"], {})[r["aux"]] = struct.pack("<Q", r["arg"])
    return {f: b"".join(p[i] for i in sorted(p)).rstrip(b"\0").decode("utf-8", "replace")
            for f, p in parts.items()}


def who(x):
    return f"os thread {x & ~(1 << 63)}" if x >> 63 else (f"fiber {x}" if x else "scheduler")


# ---- check ----------------------------------------------------------------------------

def check(tr):
    """Returns a list of (rule, message)."""
    out = []
    for (src, flags), d in tr.dropped.items():
        if d:
            out.append(("drops", f"source {src:#x} ({'tick' if flags & 1 else 'main'} buffer) dropped {d} records"))
    steps = {}
    for src, recs in tr.main.items():
        for r in recs:
            if r["seq"] != NO_SEQ and r["kind"] < LOCK_FIRST:
                steps.setdefault(r["fiber"], []).append((r["seq"], src, r))
    for f, evs in sorted(steps.items()):
        evs.sort(key=lambda e: e[0])
        state, where, seen = "none", None, set()
        expect = 0
        for seq, src, r in evs:
            kind = KINDS[r["kind"]]
            at = f"fiber {f} step {seq} ({kind} on {'os' if src == SRC_OS else 'klt %d' % src})"
            if seq in seen:
                out.append(("seq-dup", f"{at}: step recorded twice (two owners at once)"))
                continue
            seen.add(seq)
            if seq != expect:
                out.append(("seq-gap", f"{at}: steps {expect}..{seq - 1} missing"))
            expect = seq + 1
            if kind == "create":
                if state != "none":
                    out.append(("bad-transition", f"{at}: created again while {state}"))
                state = "runnable"
                continue
            if state == "none":
                out.append(("no-create", f"{at}: no create before it"))
                state = "runnable" if kind != "run" else "none"
            if state in ("exited", "joined") and kind not in ("exit", "join"):
                out.append(("run-after-exit", f"{at}: after the fiber's exit"))
                continue
            if kind == "run":
                if state == "running":
                    out.append(("two-klts", f"{at}: already running on {where}"))
                elif state == "parked":
                    out.append(("run-without-wake", f"{at}: runs while parked, no wake since its park"))
                state, where = "running", ("os" if src == SRC_OS else f"klt {src}")
            elif kind in ("yield", "preempt", "park", "exit"):
                if state == "exited" and kind == "exit":
                    out.append(("double-exit", f"{at}: exits a second time"))
                    continue
                if state != "running":
                    out.append(("bad-transition", f"{at}: leaves while {state}"))
                state = {"yield": "runnable", "preempt": "runnable", "park": "parked", "exit": "exited"}[kind]
            elif kind == "park_abort":
                if state != "parked":
                    out.append(("bad-transition", f"{at}: park abort while {state}"))
                state = "runnable"
            elif kind == "wake":
                if state == "woken":
                    out.append(("lost-wake", f"{at}: woken again by {who(r['arg'])} before it ran: "
                                             "the earlier wake was lost"))
                elif state != "parked":
                    out.append(("bad-transition", f"{at}: wake by {who(r['arg'])} while {state}"))
                state = "woken"
            elif kind == "join":
                if state == "joined":
                    out.append(("double-join", f"{at}: joined a second time"))
                elif state != "exited":
                    out.append(("join-before-exit", f"{at}: join by {who(r['arg'])} returned while {state}"))
                state = "joined"
        if state == "woken":
            out.append(("lost-wake", f"fiber {f}: woken but never ran again (the wake was lost)"))
        elif state not in ("exited", "joined"):
            out.append(("never-exited", f"fiber {f}: {state} when the trace ended"))
    return out + trace_locks.check(tr.main)


# ---- export ---------------------------------------------------------------------------

def stream(tr, src):
    """The source's records in program order, timestamps made monotone, with the
    handler's tick records merged in by time."""
    last, main = 0, []
    for r in tr.main.get(src, []):
        last = max(last, r["ts"])
        main.append((last, 0, len(main), r))
    tick = [(r["ts"], 1, i, r) for i, r in enumerate(sorted(tr.tick.get(src, []), key=lambda r: r["ts"]))]
    return [(x[0], x[3]) for x in heapq.merge(main, tick)]


def export(tr):
    base = tr.calib[1] if tr.calib else 0
    names = names_of(tr)
    us = lambda tsc: round((tr.ns(tsc) - base) / 1000.0, 3)
    ev = []
    pid = tr.pid or 1

    def add(e):
        e.setdefault("pid", pid)
        ev.append((e["tid"], e["ts"], len(ev), e))

    add({"ph": "M", "name": "process_name", "ts": 0, "tid": 0, "args": {"name": "fiber runtime"}})
    sources = sorted(set(tr.main) | set(tr.tick))
    for s in sources:
        tid = OS_TID if s == SRC_OS else s + 1
        add({"ph": "M", "name": "thread_name", "ts": 0, "tid": tid,
             "args": {"name": "os threads" if s == SRC_OS else f"klt {s}"}})
    # Per fiber, in seq order: where each run follows a wake (flows), steals, migrations.
    flow_of_run, last_q, last_klt = {}, {}, {}
    steps = sorted((r["fiber"], r["seq"], s, r) for s in tr.main for r in tr.main[s]
                   if r["seq"] != NO_SEQ and r["kind"] < LOCK_FIRST)
    pending, flows = {}, {}
    for f, _seq, s, r in steps:
        kind = KINDS[r["kind"]]
        if kind == "wake":
            pending[f] = id(r)
        elif kind == "run":
            if f in pending:
                flows[pending.pop(f)] = id(r)
            flow_of_run[id(r)] = (last_q.get(f), last_klt.get(f))
            last_klt[f] = s
        if r["q"] not in (Q_NONE,) and kind in ("create", "yield", "preempt", "park_abort", "wake"):
            last_q[f] = r["q"]
    flow_ids = {}
    for n, (w, rn) in enumerate(flows.items(), 1):
        flow_ids[w] = ("s", n)
        flow_ids[rn] = ("f", n)
    label = lambda f: f"fiber {f}" + (f" {names[f]}" if f in names else "")
    for s in sources:
        tid = OS_TID if s == SRC_OS else s + 1
        open_f, t, prev = None, 0, None
        for mts, r in stream(tr, s):
            t = us(mts)
            kind, f = KINDS[r["kind"]], r["fiber"]
            inst = lambda name, args: add({"ph": "i", "s": "t", "name": name, "ts": t, "tid": tid,
                                           "cat": "sched", "args": args})
            if kind == "lock_ext" and prev is not None:  # a queue or pop: its instant, with the companion
                add({"ph": "i", "s": "t", "name": f"{KINDS[prev['kind']]} {who(prev['fiber'])}", "ts": t,
                     "tid": tid, "cat": "lock", "args": trace_locks.instant_args(prev, r)})
            prev = r if kind in ("lock_queue", "lock_pop") else None
            if kind == "name" or r["kind"] >= LOCK_FIRST:  # held slices: the mutex tracks below
                continue
            if kind == "run":
                if open_f is not None:
                    add({"ph": "E", "name": label(open_f), "ts": t, "tid": tid})
                add({"ph": "B", "name": label(f), "ts": t, "tid": tid, "cat": "fiber",
                     "args": {"fiber": f, "seq": r["seq"]}})
                open_f = f
                q, prev = flow_of_run.get(id(r), (None, None))
                if prev is not None and prev != s:
                    inst("migrate", {"fiber": f, "from_klt": prev, "to_klt": s})
                if q is not None and q not in (Q_GLOBAL, Q_NONE) and q != s:
                    inst("steal", {"fiber": f, "from_klt": q, "by_klt": s})
                if id(r) in flow_ids:
                    add({"ph": "f", "bp": "e", "id": flow_ids[id(r)][1], "name": "wake", "cat": "wake",
                         "ts": t, "tid": tid})
                continue
            if kind in ("yield", "preempt", "park", "exit") and open_f == f:
                add({"ph": "E", "name": label(f), "ts": t, "tid": tid})
                open_f = None
            args = {"fiber": f} if f else {}
            if kind == "park":
                args.update(obj=hex(r["arg"]), wait_kind=r["aux"])
            elif kind in ("wake", "create", "join"):
                args.update(by=who(r["arg"]))
            elif kind == "tick_refused":
                args.update(reason=REFUSAL.get(r["aux"], r["aux"]))
            inst(kind + (f" {f}" if f else ""), args)
            if id(r) in flow_ids:
                add({"ph": "s", "id": flow_ids[id(r)][1], "name": "wake", "cat": "wake", "ts": t, "tid": tid})
        if open_f is not None:
            add({"ph": "E", "name": label(open_f), "ts": t, "tid": tid})
    trace_locks.export(tr.main, add, us, lambda x: label(x) if not x >> 63 else who(x), OS_TID + 1)
    ev.sort(key=lambda x: (x[0], x[1], x[2]))
    return {"traceEvents": [x[3] for x in ev], "displayTimeUnit": "ns",
            "otherData": {"source": "fiber FIBER_TRACE", "klts": tr.nklts}}


def schema(doc):
    """Returns a list of problems with an exported document."""
    bad = []
    evs = doc.get("traceEvents") if isinstance(doc, dict) else None
    if not isinstance(evs, list):
        return ["no traceEvents list"]
    last, stack, flows = {}, {}, {}
    for i, e in enumerate(evs):
        miss = [k for k in ("ph", "ts", "pid", "tid", "name") if k not in e]
        if miss:
            bad.append(f"event {i}: missing {','.join(miss)}")
            continue
        if e["ph"] not in ("B", "E", "i", "s", "f", "M", "X"):
            bad.append(f"event {i}: unknown ph {e['ph']!r}")
        if not isinstance(e["ts"], (int, float)):
            bad.append(f"event {i}: ts not a number")
            continue
        key = (e["pid"], e["tid"])
        if e["ts"] < last.get(key, float("-inf")):
            bad.append(f"event {i}: ts {e['ts']} goes back on tid {e['tid']}")
        last[key] = e["ts"]
        if e["ph"] == "B":
            stack.setdefault(key, []).append(e["name"])
        elif e["ph"] == "E":
            st = stack.get(key, [])
            if not st:
                bad.append(f"event {i}: E without B on tid {e['tid']}")
            elif st.pop() != e["name"]:
                bad.append(f"event {i}: E does not close the innermost B on tid {e['tid']}")
        elif e["ph"] in ("s", "f"):
            if "id" not in e:
                bad.append(f"event {i}: flow without id")
                continue
            flows.setdefault(e["id"], []).append((e["ph"], e["ts"]))
        elif e["ph"] == "i" and e.get("s") not in ("t", "p", "g"):
            bad.append(f"event {i}: instant without scope")
    for key, st in stack.items():
        if st:
            bad.append(f"tid {key[1]}: {len(st)} B without E")
    for fid, ends in flows.items():
        phs = sorted(p for p, _ in ends)
        if phs != ["f", "s"]:
            bad.append(f"flow {fid}: {phs} (want one s and one f)")
        elif dict(ends)["f"] < dict(ends)["s"]:
            bad.append(f"flow {fid}: ends before it starts")
    return bad


# ---- hand-made traces -----------------------------------------------------------------

def write_trace(path, chunks, nklts=2, dropped=None):
    """chunks: [(source, [(kind, fiber, seq, arg, q[, aux])])]; timestamps are the order."""
    dropped = dropped or {}
    with open(path, "wb") as w:
        w.write(FILE_HDR.pack(b"FIBTRC01", 1, nklts, 1, REC.size, 1000))
        ts = 1000
        for src, recs in chunks:
            w.write(CHUNK.pack(CHUNK_MAGIC, src, len(recs), 0, dropped.get(src, 0), 0))
            for kind, fiber, seq, arg, q, *aux in recs:
                ts += 10
                w.write(REC.pack(ts, fiber, arg, seq, K[kind], aux[0] if aux else 0, q))
        w.write(CHUNK.pack(CHUNK_MAGIC, SRC_CALIB, 1, 0, 0, 0))
        w.write(struct.pack("<QQQQ", 0, 0, 1000, 1000))


OS = SRC_OS
GOOD = [(OS, [("create", 1, 0, 1 << 63, Q_GLOBAL)]),
        (0, [("run", 1, 1, 0, Q_NONE), ("park", 1, 2, 0x1234, Q_NONE)]),
        (OS, [("wake", 1, 3, 1 << 63 | 7, Q_GLOBAL)]),
        (1, [("run", 1, 4, 0, Q_NONE), ("exit", 1, 5, 0, Q_NONE)]),
        (OS, [("join", 1, 6, 1 << 63, Q_NONE)])]
BAD = {
    "two-klts": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]), (0, [("run", 1, 1, 0, Q_NONE)]),
                 (1, [("run", 1, 2, 0, Q_NONE), ("exit", 1, 3, 0, Q_NONE)])],
    "run-without-wake": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                         (0, [("run", 1, 1, 0, Q_NONE), ("park", 1, 2, 0, Q_NONE),
                              ("run", 1, 3, 0, Q_NONE), ("exit", 1, 4, 0, Q_NONE)])],
    "lost-wake": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                  (0, [("run", 1, 1, 0, Q_NONE), ("park", 1, 2, 0, Q_NONE), ("wake", 1, 3, 5, 0)])],
    "lost-wake (woken twice)": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                                (0, [("run", 1, 1, 0, Q_NONE), ("park", 1, 2, 0, Q_NONE), ("wake", 1, 3, 5, 0),
                                     ("wake", 1, 4, 0, 0), ("run", 1, 5, 0, Q_NONE), ("exit", 1, 6, 0, Q_NONE)])],
    "run-after-exit": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                       (0, [("run", 1, 1, 0, Q_NONE), ("exit", 1, 2, 0, Q_NONE), ("run", 1, 3, 0, Q_NONE)])],
    "double-exit": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                    (0, [("run", 1, 1, 0, Q_NONE), ("exit", 1, 2, 0, Q_NONE), ("exit", 1, 3, 0, Q_NONE)])],
    "join-before-exit": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                         (0, [("run", 1, 1, 0, Q_NONE), ("park", 1, 2, 0, Q_NONE)]),
                         (OS, [("join", 1, 3, 1 << 63, Q_NONE)])],
    "double-join": GOOD + [(OS, [("join", 1, 7, 1 << 63, Q_NONE)])],
    "never-exited": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]), (0, [("run", 1, 1, 0, Q_NONE)])],
    "seq-dup": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                (0, [("run", 1, 1, 0, Q_NONE), ("yield", 1, 2, 0, 0)]),
                (1, [("yield", 1, 2, 0, 1)]), (0, [("run", 1, 3, 0, Q_NONE), ("exit", 1, 4, 0, Q_NONE)])],
    "seq-gap": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                (0, [("run", 1, 1, 0, Q_NONE), ("exit", 1, 3, 0, Q_NONE)])],
    "no-create": [(0, [("run", 1, 0, 0, Q_NONE), ("exit", 1, 1, 0, Q_NONE)])],
    "bad-transition": [(OS, [("create", 1, 0, 0, Q_GLOBAL)]),
                       (0, [("yield", 1, 1, 0, 0), ("run", 1, 2, 0, Q_NONE), ("exit", 1, 3, 0, Q_NONE)])],
}
LIVES = trace_locks.lives(OS, Q_GLOBAL, Q_NONE)  # fibers 1-4, clean: only lock rules can fire
GOOD_LOCKS = LIVES + trace_locks.GOOD
BAD.update({rule: LIVES + chunks for rule, chunks in trace_locks.BAD.items()})
BAD["drops (lock event lost)"] = LIVES + [(0, [("lock_lost", 1, NO_SEQ, trace_locks.M, Q_NONE)])]


def selftest():
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.bin")
        for name, good in (("good trace", GOOD), ("good lock trace", GOOD_LOCKS)):
            write_trace(p, good)
            got = check(parse(p))
            bad = schema(json.loads(json.dumps(export(parse(p)))))
            print(f"{name}: {got or 'clean'}; schema: {bad or 'ok'}")
            failures += bool(got) + bool(bad)
        write_trace(p, GOOD, dropped={0: 3})
        rules = sorted({r for r, _ in check(parse(p))})
        print(f"drops: {rules}")
        failures += rules != ["drops"]
        for rule, chunks in BAD.items():
            write_trace(p, chunks)
            found = check(parse(p))
            rules = sorted({r for r, _ in found})
            ok = rules == [rule.split(" ")[0]]
            print(f"{rule}: {'caught' if ok else 'WRONG'} {rules}: {found[0][1] if found else '-'}")
            failures += not ok
            schema_bad = schema(export(parse(p)))  # bad schedules still export validly
            if schema_bad:
                print(f"  export of {rule} fails the schema: {schema_bad[:3]}")
                failures += 1
    print("selftest:", "FAILED" if failures else "ok")
    return 1 if failures else 0


def run(argv):
    expect = None
    if argv[:1] == ["--expect"]:
        expect, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    with tempfile.TemporaryDirectory() as d:
        path, out = os.path.join(d, "trace.bin"), os.path.join(d, "trace.json")
        env = dict(os.environ, FIBER_TRACE=path, FIBER_DEADLOCK="0")
        p = subprocess.run(argv, env=env)
        if p.returncode != 0:
            print(f"trace_check: {argv[0]} exited {p.returncode}")
            return 1
        tr = parse(path)
        n = sum(len(v) for v in tr.main.values()) + sum(len(v) for v in tr.tick.values())
        doc, bad = {"traceEvents": []}, []
        if not expect:  # a control's trace is only checked (its export is as large as it is slow)
            doc = export(tr)
            with open(out, "w") as w:
                json.dump(doc, w)
            bad = schema(json.load(open(out)))
        found = check(tr)
        rules = sorted({r for r, _ in found})
        kinds = {}
        for recs in list(tr.main.values()) + list(tr.tick.values()):
            for r in recs:
                kinds[KINDS[r["kind"]]] = kinds.get(KINDS[r["kind"]], 0) + 1
        print(f"trace: {n} records, {len(doc['traceEvents'])} JSON events; kinds {kinds}")
        if not expect:  # the export shows what it promises: slices, wake arrows
            phs = {e["ph"] for e in doc["traceEvents"]}
            bad += [f"export has no {p!r} event" for p in ("B", "s", "f", "i") if p not in phs]
        print(f"schema: {bad[:5] or 'ok'}")
        for r, m in found[:10]:
            print(f"  {r}: {m}")
        print(f"check: {rules or 'clean'} ({len(found)} findings)")
        if bad:
            return 1
        if expect:
            return 0 if expect in rules else 1
        return 1 if found else 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "selftest":
        return selftest()
    if len(argv) >= 1 and argv[0] == "run":
        return run(argv[1:])
    if len(argv) == 3 and argv[0] == "export":
        with open(argv[2], "w") as w:
            json.dump(export(parse(argv[1])), w)
        return 0
    if len(argv) == 2 and argv[0] == "schema":
        bad = schema(json.load(open(argv[1])))
        for b in bad[:20]:
            print(b)
        return 1 if bad else 0
    if len(argv) == 2 and argv[0] == "check":
        found = check(parse(argv[1]))
        for r, m in found[:50]:
            print(f"{r}: {m}")
        print(f"{len(found)} findings")
        return 1 if found else 0
    print(__doc__)
    return 0 if argv[:1] in (["--help"], ["-h"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
