"""tools/trace_locks.py - the lock rules of tools/trace_check.py: mutual exclusion,
arrival order and the overtaking bound of the fiber mutex, from the lock events
of a native trace (core/src/trace_lock.cpp writes them; mutex.hpp's I-M1, I-M3).

Each mutex numbers its events twice, where they are serialised already, so no
clock orders them: the owner sequence (acquire, release: the owner's critical
section is serialised by the mutex) and the queue sequence (queue, pop: under
the mutex's internal lock).  A queue record's lock_ext companion carries the
wait node, the barge limit K of that mutex and the owner sequence read as the
node was queued; a pop's carries the node.

Rules:
  mutex-overlap        an acquisition while another party holds the mutex, or two
                       owner events with one number (two owners at once), I-M1
  unlock-without-lock  a release by a party that does not hold the mutex
  grant-order          a waiter acquires before one that queued earlier, I-M3 a
  overtaken            a waiter that queued behind p waiters saw more than
                       p + (p+1)*K acquisitions by others before its own, I-M3 b
  seq-gap, seq-dup     a number missing (a record lost), a queue number twice
  drops                lock events lost (no slot for the object) or a queue/pop
                       record without its companion

The overtaking count starts at the owner sequence read under the queue lock.
That read sees every owner event up to the last unlock (trace_lock.cpp), so it
can be early by one: the acquisition of the party that held the mutex when the
waiter queued, if that party's record was still on its way.  When the mutex
reads as free at that number, the first acquisition after it is not counted
(it may have happened before the waiter queued); the bound is otherwise exact.

usage: a module of trace_check.py (python3 tools/trace_check.py check TRACE runs
these rules too); run alone it prints this text.
"""
import bisect
import sys

ACQUIRE, RELEASE, QUEUE, POP, EXT, LOST = range(14, 20)  # trace.hpp's tev numbers
NAMES = ["lock_acquire", "lock_release", "lock_queue", "lock_pop", "lock_ext", "lock_lost"]
HOW = {1: "barge", 2: "woken", 3: "granted"}
QUEUED_HEAD, QUEUED_INFLIGHT = 1, 2
POPPED = {1: "woken", 2: "granted"}


def who(x):
    return f"os thread {x & ~(1 << 63)}" if x >> 63 else f"fiber {x}"


def events(main):
    """main: source -> records in program order.  Returns ({mutex: {"own": [...],
    "queue": [...]}}, findings); each event is (seq, src, record, companion)."""
    objs, out = {}, []
    for src, recs in main.items():
        for i, r in enumerate(recs):
            k = r["kind"]
            if k == LOST:
                out.append(("drops", f"mutex {r['arg']:#x}: a lock event lost (no slot left for the object)"))
            if k not in (ACQUIRE, RELEASE, QUEUE, POP):
                continue
            ext = None
            if k in (QUEUE, POP):
                if i + 1 < len(recs) and recs[i + 1]["kind"] == EXT:
                    ext = recs[i + 1]
                else:
                    out.append(("drops", f"mutex {r['arg']:#x}: {NAMES[k - ACQUIRE]} {r['seq']} without its lock_ext"))
                    continue
            o = objs.setdefault(r["arg"], {"own": [], "queue": []})
            o["own" if k in (ACQUIRE, RELEASE) else "queue"].append((r["seq"], src, r, ext))
    for o in objs.values():
        o["own"].sort(key=lambda e: e[0])
        o["queue"].sort(key=lambda e: e[0])
    return objs, out


def numbering(name, evs, dup_rule, what, out):
    seen, expect = set(), 0
    for seq, _src, r, _ext in evs:
        if seq in seen:
            out.append((dup_rule, f"{name}: {what} event {seq} recorded twice (by {who(r['fiber'])}): "
                                  "two parties numbered one step"))
            continue
        seen.add(seq)
        if seq != expect:
            out.append(("seq-gap", f"{name}: {what} events {expect}..{seq - 1} missing"))
        expect = seq + 1


def exclusion(name, own, out):
    """I-M1 and unlock-without-lock.  Returns free_before: seq -> whether the
    mutex was free just before that owner event."""
    holder, free_before = None, {}
    for seq, _src, r, _ext in own:
        free_before.setdefault(seq, holder is None)
        f = r["fiber"]
        if r["kind"] == ACQUIRE:
            if holder is not None:
                out.append(("mutex-overlap", f"{name}: step {seq}: {who(f)} acquired it ({HOW.get(r['aux'], r['aux'])}) "
                                             f"while {who(holder)} holds it"))
            holder = f
        else:
            if holder != f:
                out.append(("unlock-without-lock", f"{name}: step {seq}: {who(f)} released it while "
                                                   f"{who(holder) + ' holds it' if holder is not None else 'it is free'}"))
            holder = None
    return free_before


def waiters(name, queue, out):
    """Replays the queue: the first queueing of each wait (at the tail) in queue
    order, with p (waiters ahead: queued, plus one in flight) and K."""
    simq, inst, open_of = [], [], {}
    for seq, _src, r, ext in queue:
        node, f = ext["fiber"], r["fiber"]
        if r["kind"] == QUEUE and r["aux"] & QUEUED_HEAD:
            simq.insert(0, node)  # a woken waiter that lost: back at the head, same wait
            continue
        if r["kind"] == QUEUE:
            w = dict(fiber=f, node=node, qseq=seq, p=len(simq) + (1 if r["aux"] & QUEUED_INFLIGHT else 0),
                     k=ext["arg"] >> 32, c=ext["arg"] & 0xFFFFFFFF, acq=None)
            inst.append(w)
            open_of[f] = w
            simq.append(node)
        elif node in simq:
            simq.remove(node)
        else:
            out.append(("grant-order", f"{name}: queue step {seq}: {who(f)} popped a node that is not queued"))
    return inst


def order(name, own, inst, out):
    """I-M3 a: the waiters' acquisitions (woken, granted) in owner order follow
    their first queueing in queue order."""
    pending = list(inst)
    for seq, _src, r, _ext in own:
        if r["kind"] != ACQUIRE or r["aux"] not in (2, 3):
            continue
        f = r["fiber"]
        mine = next((w for w in pending if w["fiber"] == f), None)
        if mine is None:
            out.append(("grant-order", f"{name}: step {seq}: {who(f)} acquired it as a waiter but never queued"))
            continue
        if pending[0] is not mine:
            first = pending[0]
            out.append(("grant-order", f"{name}: step {seq}: {who(f)} acquired it ({HOW[r['aux']]}) before "
                                       f"{who(first['fiber'])}, which queued first (queue steps {first['qseq']} "
                                       f"and {mine['qseq']})"))
        pending.remove(mine)
        mine["acq"] = seq


def overtaking(name, own, inst, free_before, out):
    """I-M3 b: acquisitions by others between a wait's queueing and its acquisition."""
    acquires = sorted(seq for seq, _s, r, _e in own if r["kind"] == ACQUIRE)
    for w in inst:
        if w["acq"] is None or w["c"] not in free_before:
            continue
        n = bisect.bisect_left(acquires, w["acq"]) - bisect.bisect_left(acquires, w["c"])
        if free_before[w["c"]] and n > 0:
            n -= 1  # the holder when it queued may be recorded after it (see the top)
        bound = w["p"] + (w["p"] + 1) * w["k"]
        if n > bound:
            out.append(("overtaken", f"{name}: {who(w['fiber'])} queued (queue step {w['qseq']}) behind "
                                     f"{w['p']} waiters and was overtaken by {n} acquisitions before its own "
                                     f"(step {w['acq']}); I-M3 allows {bound} with K = {w['k']}"))


def first_of_each(evs):
    """The events without repeated numbers (reported by numbering), so that one
    duplicate is not reported again by every rule after it."""
    seen, out = set(), []
    for e in evs:
        if e[0] not in seen:
            seen.add(e[0])
            out.append(e)
    return out


def check(main):
    objs, out = events(main)
    for m, o in sorted(objs.items()):
        name = f"mutex {m:#x}"
        numbering(name, o["own"], "mutex-overlap", "owner", out)
        numbering(name, o["queue"], "seq-dup", "queue", out)
        own, queue = first_of_each(o["own"]), first_of_each(o["queue"])
        free_before = exclusion(name, own, out)
        inst = waiters(name, queue, out)
        order(name, own, inst, out)
        overtaking(name, own, inst, free_before, out)
    return out


def export(main, add, us, label, tid0):
    """One track per mutex (tid tid0, tid0 + 1...): who holds it, as slices in
    owner order (timestamps made monotone: they come from different KLTs)."""
    objs, _ = events(main)
    for n, (m, o) in enumerate(sorted(objs.items())):
        tid, t, held = tid0 + n, float("-inf"), None
        add({"ph": "M", "name": "thread_name", "ts": 0, "tid": tid, "args": {"name": f"mutex {m:#x}"}})
        for seq, _src, r, _ext in o["own"]:
            t = max(t, us(r["ts"]))
            if held is not None:
                add({"ph": "E", "name": held, "ts": t, "tid": tid})
                held = None
            if r["kind"] == ACQUIRE:
                held = f"held by {label(r['fiber'])}"
                add({"ph": "B", "name": held, "ts": t, "tid": tid, "cat": "lock",
                     "args": {"step": seq, "how": HOW.get(r["aux"], r["aux"])}})
        if held is not None:
            add({"ph": "E", "name": held, "ts": t, "tid": tid})


def instant_args(r, ext):
    """Arguments of a queue/pop instant on the KLT track that recorded it."""
    a = {"mutex": hex(r["arg"]), "step": r["seq"]}
    if r["kind"] == QUEUE:
        a.update(at="head" if r["aux"] & QUEUED_HEAD else "tail", in_flight=bool(r["aux"] & QUEUED_INFLIGHT))
        if ext:
            a.update(K=ext["arg"] >> 32, owner_step=ext["arg"] & 0xFFFFFFFF)
    else:
        a.update(popped=POPPED.get(r["aux"], r["aux"]))
    if ext:
        a.update(node=hex(ext["fiber"]))
    return a


# ---- hand-made traces (trace_check.py selftest) --------------------------------------
# Records: (kind, fiber, seq, arg, q, aux); the fibers 1..4 live cleanly (LIVES), so
# only the lock rules can fire.
M = 0x5000
NS = 0xFFFFFFFF


def acq(f, s, how=1):
    return ("lock_acquire", f, s, M, 0xFFFE, how)


def rel(f, s):
    return ("lock_release", f, s, M, 0xFFFE, 0)


def queue(f, s, node, c, k, aux=0):
    return [("lock_queue", f, s, M, 0xFFFE, aux), ("lock_ext", node, NS, (k << 32) | c, 0xFFFE, 0)]


def pop(f, s, node, granted=False):
    return [("lock_pop", f, s, M, 0xFFFE, 2 if granted else 1), ("lock_ext", node, NS, 0, 0xFFFE, 0)]


def lives(os_src, q_global, q_none):
    return [(os_src, [("create", f, 0, 1 << 63, q_global) for f in (1, 2, 3, 4)]),
            (0, [x for f in (1, 2, 3, 4) for x in (("run", f, 1, 0, q_none), ("exit", f, 2, 0, q_none))])]


# A clean history that needs the allowance: fiber 1 queues reading owner step 0
# while 3's acquisition (step 0) is still unrecorded; 3 and 4 then take it (K = 1).
GOOD = [(1, queue(1, 0, 0xA0, 0, 1)), (1, [acq(3, 0), rel(3, 1)]),
        (0, [acq(4, 2), rel(4, 3)] + pop(4, 1, 0xA0) + [acq(1, 4, 2), rel(1, 5)])]
BAD = {
    "mutex-overlap": [(0, [acq(1, 0)]), (1, [acq(2, 1), rel(2, 2)])],
    "mutex-overlap (one step twice)": [(0, [acq(1, 0), rel(1, 1)]), (1, [acq(2, 0), rel(2, 1)])],
    "unlock-without-lock": [(0, [acq(1, 0), rel(1, 1)]), (1, [rel(2, 2)])],
    "grant-order": [(0, [acq(3, 0)] + queue(1, 0, 0xA0, 1, 2) + queue(2, 1, 0xB0, 1, 2)),
                    (0, [rel(3, 1)] + pop(3, 2, 0xB0)), (1, [acq(2, 2, 2), rel(2, 3)] + pop(2, 3, 0xA0)),
                    (0, [acq(1, 4, 2), rel(1, 5)])],
    "overtaken": [(0, [acq(3, 0)] + queue(1, 0, 0xA0, 1, 2) + [rel(3, 1)]),
                  (1, [acq(4, 2), rel(4, 3), acq(3, 4), rel(3, 5), acq(4, 6)] + pop(4, 1, 0xA0) + [rel(4, 7)]),
                  (0, [acq(1, 8, 2), rel(1, 9)])],
}


if __name__ == "__main__":
    print(__doc__)
    sys.exit(0 if sys.argv[1:2] in ([], ["--help"], ["-h"]) else 2)
