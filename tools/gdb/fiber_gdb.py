# fiber_gdb.py - gdb commands for programs using fiber (live process or core file).
#
#   info fibers      one line per fiber: id, name, state, what it waits on, KLT,
#                    time in state (the coarse clock: about 0.1 s resolution)
#   info klts        one line per KLT: what it runs, ticks, deferred ticks
#   fiber bt ID      backtrace of a fiber that is not running (parked,
#                    runnable, exited), walked from its saved context
#
# Load it with `source <prefix>/share/fiber/gdb/fiber_gdb.py` (or add that line
# to ~/.gdbinit).  It reads the runtime's own tables (core/src/slots.cpp's
# control-block chunks, core/src/diag.hpp's state mirror), so it needs the
# library's debug info (the RelWithDebInfo or Debug build, or -g).  Like
# fiber_dump (core/src/backtrace.cpp), `fiber bt` takes frame 0 from the saved
# context and finds the frames above it by a stack scan (words that point
# just after a call instruction in a function gdb knows; a stale one may show
# up), or, with `fiber bt ID fp`, by following frame pointers (exact when the
# program and libfiber are built with FIBER_FRAME_POINTERS=ON).  It reads only
# the fiber's stack and the code, so it works the same on a core file.  For a
# running fiber, select its KLT's thread (`info klts`, `thread N`) and use `bt`.
import struct

import gdb

STATES = ["free", "runnable", "running", "parked", "exited"]
KINDS = ["nothing", "mutex", "condvar", "semaphore", "barrier", "join", "sleep", "shutdown", "io", "pthread lock"]
CHUNK = 4096  # slots.cpp kChunk
# The state word (core/src/diag.hpp): bits 0..2 state, 3..31 transitions,
# 32..63 time of the last transition in units of 2^UNIT_SHIFT ns (mod 2^32).
STATE_MASK = 7
UNIT_SHIFT = 20
CLOCK_NOW = 4  # g_diag_clock.step[4] holds the current time in its high half


def _offset(typ, path):
    """Byte offset of a dotted member path inside typ, and the member's type."""
    off = 0
    for name in path.split("."):
        typ = typ.strip_typedefs()
        for f in typ.fields():
            if f.name == name and hasattr(f, "bitpos"):
                off += f.bitpos // 8
                typ = f.type
                break
        else:
            raise gdb.GdbError("fiber: no member %s in %s (library built without debug info?)" % (name, typ))
    return off, typ


class _Layout:
    def __init__(self):
        fcb = gdb.lookup_type("fiber::detail::fcb")
        self.fcb_size = fcb.sizeof
        self.f = {}
        for key in ["sp", "map_base", "map_size", "guarded", "last_klt", "pinned",
                    "diag.word_", "diag.kind_", "diag.obj_", "diag.id_", "diag.name_",
                    "join"]:
            self.f[key] = _offset(fcb, key)[0]
        klt = gdb.lookup_type("fiber::detail::klt")
        self.klt_size = klt.sizeof
        self.k = {key: _offset(klt, key)[0] for key in ["current", "idle", "ticks", "deferred"]}
        rt = gdb.lookup_type("fiber::detail::runtime")
        self.r = {key: _offset(rt, key)[0] for key in ["nklts", "klts"]}


def _mem(addr, n):
    return bytes(gdb.selected_inferior().read_memory(addr, n))


def _u64(addr):
    return struct.unpack("<Q", _mem(addr, 8))[0]


def _addr_of(expr):
    return int(gdb.parse_and_eval("&(%s)" % expr).cast(gdb.lookup_type("long").pointer()))


def _now_units():
    """The coarse clock in state-word units (0: unknown)."""
    try:
        return _u64(_addr_of("fiber::detail::g_diag_clock") + 8 * CLOCK_NOW) >> 32
    except (gdb.error, gdb.MemoryError):
        return 0


def _age(now, since):
    """Seconds in state, or None (no clock yet, or a stamp ahead of the clock)."""
    age = (now - since) % (1 << 32)
    if now == 0 or since == 0 or age > (1 << 31):
        return None
    return age * (1 << UNIT_SHIFT) / 1e9


def _fibers(lay):
    """Yields (address, dict) for every control block not on the free list."""
    now = _now_units()
    chunks = _addr_of("'fiber::detail::(anonymous namespace)::g_chunks'")
    c = 0
    while True:
        base = _u64(chunks + 8 * c)
        if base == 0:
            return
        raw = _mem(base, lay.fcb_size * CHUNK)
        for i in range(CHUNK):
            o = i * lay.fcb_size
            g = lambda key, fmt="<Q", n=8: struct.unpack(fmt, raw[o + lay.f[key]:o + lay.f[key] + n])[0]
            word = g("diag.word_")
            state = word & STATE_MASK
            if state == 0:
                continue
            name = raw[o + lay.f["diag.name_"]:o + lay.f["diag.name_"] + 32].split(b"\0")[0]
            yield base + o, {
                "id": g("diag.id_"), "state": STATES[state] if state < len(STATES) else "?",
                "kind": KINDS[raw[o + lay.f["diag.kind_"]]] if raw[o + lay.f["diag.kind_"]] < len(KINDS) else "?",
                "obj": g("diag.obj_"), "klt": g("last_klt", "<I", 4), "sp": g("sp"),
                "map_base": g("map_base"), "map_size": g("map_size"),
                "guarded": raw[o + lay.f["guarded"]], "name": name.decode("utf-8", "replace"),
                "age": _age(now, word >> 32),
            }
        c += 1


def _find(lay, fid):
    for addr, f in _fibers(lay):
        if f["id"] == fid:
            return addr, f
    raise gdb.GdbError("fiber: no fiber %d" % fid)


class InfoFibers(gdb.Command):
    """info fibers: id, name, state, what each fiber waits on, its KLT, time in state."""

    def __init__(self):
        super().__init__("info fibers", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        lay = _Layout()
        gdb.write("%-12s %-20s %-9s %-32s %-4s %s\n" % ("Id", "Name", "State", "Waits on", "KLT", "For"))
        for _, f in _fibers(lay):
            waits = "%s 0x%x" % (f["kind"], f["obj"]) if f["state"] == "parked" else "-"
            klt = str(f["klt"]) if f["state"] == "running" else "-"
            age = "%.1fs" % f["age"] if f["age"] is not None else "-"
            gdb.write("%-12d %-20s %-9s %-32s %-4s %s\n" % (f["id"], '"%s"' % f["name"], f["state"], waits, klt,
                                                           age))


class InfoKlts(gdb.Command):
    """info klts: what each KLT runs, ticks and deferred ticks."""

    def __init__(self):
        super().__init__("info klts", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        lay = _Layout()
        rt = _u64(_addr_of("fiber::detail::g_rt"))
        if rt == 0:
            gdb.write("fiber: no runtime\n")
            return
        n = struct.unpack("<I", _mem(rt + lay.r["nklts"], 4))[0]
        klts = _u64(rt + lay.r["klts"])
        for i in range(n):
            k = klts + i * lay.klt_size
            cur = _u64(k + lay.k["current"])
            what = "idle" if _mem(k + lay.k["idle"], 1)[0] else "scheduling"
            if cur:
                what = "running fiber %d" % _u64(cur + lay.f["diag.id_"])
            gdb.write("klt %d %s, ticks %d deferred %d\n" % (i, what, _u64(k + lay.k["ticks"]),
                                                            _u64(k + lay.k["deferred"])))


def _describe(pc):
    lookup = pc - 1  # inside the call instruction
    name = None
    try:
        block = gdb.block_for_pc(lookup)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None:
            name = block.function.print_name
    except RuntimeError:
        pass
    if name is None:
        sym = gdb.execute("info symbol 0x%x" % lookup, to_string=True).strip()
        name = sym.split(" in section")[0] if not sym.startswith("No symbol") else "??"
    sal = gdb.find_pc_line(lookup)
    where = " at %s:%d" % (sal.symtab.filename, sal.line) if sal.symtab else ""
    return "0x%016x in %s%s" % (pc, name, where)


class FiberBt(gdb.Command):
    """fiber bt ID: backtrace of a fiber that is not running (frame-pointer walk)."""

    def __init__(self):
        super().__init__("fiber bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        lay = _Layout()
        try:
            fid = int(arg.split()[0], 0)
        except (IndexError, ValueError):
            raise gdb.GdbError("usage: fiber bt ID")
        _, f = _find(lay, fid)
        if f["state"] == "running":
            raise gdb.GdbError("fiber %d is running on KLT %d: select that thread and use bt" % (fid, f["klt"]))
        lo = f["map_base"] + (4096 if f["guarded"] else 64)
        hi = f["map_base"] + f["map_size"]
        ok = lambda a, n: lo <= a and a + n <= hi and a % 8 == 0
        asm_lo = _addr_of("fiber_asm_begin")
        asm_hi = _addr_of("fiber_asm_end")
        sp = f["sp"]
        if not ok(sp, 64):
            raise gdb.GdbError("fiber %d has no saved context" % fid)
        if "fp" not in arg.split()[1:]:
            self.scan(sp, hi)
            return
        pc, fp = _u64(sp + 56), _u64(sp + 48)
        for i in range(64):
            if pc == 0:
                break
            gdb.write("#%-2d %s\n" % (i, _describe(pc)))
            if asm_lo <= pc < asm_hi:  # the preemption trampoline: interrupted rip at [rbp+88]
                if not ok(fp, 96):
                    break
                pc, fp = _u64(fp + 88), _u64(fp)
                continue
            if not ok(fp, 16):
                break
            nxt = _u64(fp)
            pc = _u64(fp + 8)
            if nxt <= fp:
                break
            fp = nxt

    @staticmethod
    def _after_call(w):
        try:
            if gdb.block_for_pc(w - 1) is None:
                return False
            b = _mem(w - 7, 7)
        except (RuntimeError, gdb.MemoryError):
            return False
        m1, m2, m5, m6 = b[6], b[5], b[2], b[1]
        return (b[2] == 0xE8 or (b[5] == 0xFF and (m1 & 0x38) == 0x10 and (m1 >> 6) == 3) or
                (b[4] == 0xFF and (m2 & 0x38) == 0x10 and (m2 >> 6) == 1) or
                (b[1] == 0xFF and (m5 & 0x38) == 0x10 and ((m5 >> 6) == 2 or (m5 & 0xC7) == 0x05)) or
                (b[0] == 0xFF and (m6 & 0x38) == 0x10 and (m6 & 7) == 4) or
                (b[4] == 0xFF and (m2 & 0x38) == 0x10 and (m2 & 0xC7) == 0x04))

    def scan(self, sp, hi):
        gdb.write("#0  %s\n" % _describe(_u64(sp + 56)))
        raw = _mem(sp + 64, hi - sp - 64)
        n = 1
        for off in range(0, len(raw) - 7, 8):
            w = struct.unpack_from("<Q", raw, off)[0]
            if w > 0x10000 and self._after_call(w):
                gdb.write("#%-2d %s\n" % (n, _describe(w)))
                n += 1
                if n == 64:
                    break


class FiberPrefix(gdb.Command):
    """fiber: commands for fiber programs (fiber bt ID)."""

    def __init__(self):
        super().__init__("fiber", gdb.COMMAND_STACK, prefix=True)


InfoFibers()
InfoKlts()
FiberPrefix()
FiberBt()
