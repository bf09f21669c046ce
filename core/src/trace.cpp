// core/src/trace.cpp - the native scheduling trace's writer (hooks: trace.hpp).
//
// Buffers.  Each KLT has two, both written only by the KLT's own thread:
//   main  every event but refused ticks, written by the KLT's ordinary code
//         (fibers in runtime calls, with their preempt_count raised, I5; the
//         scheduler context).  A linear array; flushed at safe points.
//   tick  refused ticks, written by the tick handler (preempt.cpp), which can
//         interrupt a write to `main` half-way: so it never touches `main`.  A
//         single-producer (handler) single-consumer (the flush, same thread)
//         ring whose head the handler publishes after the record, and whose
//         tail only the flush moves; the two run on one thread, so signal
//         fences (compiler ordering) are all the ordering needed.
// A taken preemption is recorded by the switch path (act_on's leave record),
// not by the handler.  OS threads that wake, create or join fibers write to
// one shared buffer under a spinlock: they are rare (an OS thread's wake
// already pays a futex), the lock is never taken by a KLT's trace writes, and
// a lock-free multi-writer ring would cost the KLTs' hot path for nothing.
//
// Full buffers: flush, not overwrite.  The checker (tools/trace_check.py)
// needs every event of a fiber (a lost prefix reads as a fiber that never was
// created); an overwrite ring would make long runs uncheckable.  A KLT flushes
// its main buffer once it is half full, at the next safe point: when it
// installs a fiber (trace_run) or goes to sleep (trace_idle), never in the
// middle of a wake (which may run under a wait queue's lock).  More than half
// a buffer of events between two safe points (e.g. one fiber waking 16k
// others without switching) drops the excess and counts it; the count is in
// the file and the checker refuses a trace with drops.  A flush is one
// pwrite of up to 512 KiB at an offset reserved with one fetch_add, so KLTs
// write their chunks concurrently without a lock and without interleaving.
//
// Timestamps: rdtsc (constant and non-stop TSC), calibrated against
// CLOCK_MONOTONIC at open and close.  On this VM an rdtsc costs about 65 ns
// (measured: 10M in a loop), CLOCK_MONOTONIC_COARSE 25-40 ns but with a 4 ms
// resolution, CLOCK_MONOTONIC 170 ns; one reading per record made ping-pong
// 40-70% slower.  So a KLT reads the clock only where a slice of the exported
// trace begins or ends: a run (the previous fiber's slice ends there: the
// switch is direct), a leave acted on by the scheduler context (nothing else
// ran next: the slice ends there), idle sleep and wake; its other records (leave, park,
// wake, create, exit, join) carry the KLT's last reading, i.e. they show at
// the start of the slice they happened in.  OS threads and the tick handler
// read the clock for each record.  The checker does not rely on clocks for
// ordering a fiber's events: it uses the fiber's seq (trace_types.hpp).
//
// File: a 32-byte header ("FIBTRC01", version, KLTs, pid, record size), then
// chunks: a 32-byte chunk header (magic "CHNK", source = KLT index or
// kSrcOs/kSrcCalib, record count, flags (1: tick ring), drops so far) and
// that many 32-byte records (trace_rec).  The last chunk is the calibration.
#include "trace.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "fiber/detail/testing.h"
#include "timers.hpp"

namespace fiber::detail {

std::atomic<bool> g_trace_on{false};

namespace {

struct trace_rec {  // 32 bytes, the file's record
  std::uint64_t ts;
  std::uint64_t fiber;
  std::uint64_t arg;
  std::uint32_t seq;  // kNoSeq: not a step of the fiber (names, ticks, idle)
  unsigned char kind;
  unsigned char aux;
  std::uint16_t q;  // the queue the event put the fiber in (KLT index; kQGlobal)
};
static_assert(sizeof(trace_rec) == 32, "the file format");

struct chunk_hdr {
  std::uint32_t magic, source, count, flags;
  std::uint64_t dropped, reserved;
};
static_assert(sizeof(chunk_hdr) == 32, "the file format");

constexpr std::uint32_t kNoSeq = ~0u;
constexpr std::uint16_t kQGlobal = 0xFFFF;
constexpr std::uint16_t kQNone = 0xFFFE;  // the event queues nothing
constexpr std::uint32_t kChunkMagic = 0x4b4e4843;  // "CHNK"
constexpr std::uint32_t kSrcOs = 0xFFFFFFFF, kSrcCalib = 0xFFFFFFFE;
constexpr std::uint32_t kCap = 1u << 15;     // main buffer: 1 MiB per KLT
constexpr std::uint32_t kTickCap = 256;      // tick ring (a refusal per quantum at most)
constexpr std::uint32_t kOsCap = 1024;
std::atomic<bool> g_lose_wake{false}, g_no_commit{false};  // test knobs 17, 18 (testing.h)
bool lose_wake(fcb* f) noexcept;  // the planted defect of knob 17 (the end of this file)

std::uint16_t qof(unsigned k) noexcept { return k == kNoKlt ? kQGlobal : static_cast<std::uint16_t>(k); }

int g_fd = -1;
std::atomic<std::uint64_t> g_off{0};  // next free file offset (fetch_add reserves a chunk)
std::uint64_t g_tsc0 = 0, g_mono0 = 0;  // written at open, before the KLTs start
unsigned g_nklts = 0;

spinlock g_os_lock;  // guards the OS threads' buffer below
trace_rec g_os_buf[kOsCap];
std::uint32_t g_os_n = 0;
std::uint64_t g_os_dropped = 0;

}  // namespace

struct trace_klt {
  trace_rec* buf = nullptr;  // kCap records
  std::uint32_t n = 0;
  std::uint64_t dropped = 0;
  unsigned index = 0;
  std::uint64_t last_ts = 0;  // the last clock reading of this KLT's main buffer
  // The handler's ring (see the top).  head: handler only; tail: flush only.
  trace_rec tick[kTickCap];
  std::atomic<std::uint64_t> tick_head{0};
  std::uint64_t tick_tail = 0;
  std::atomic<std::uint64_t> tick_dropped{0};
};

namespace {

void write_chunk(std::uint32_t source, std::uint32_t flags, std::uint64_t dropped,
                 const trace_rec* r, std::uint32_t n) noexcept {
  if (n == 0 || g_fd < 0) return;
  chunk_hdr h{kChunkMagic, source, n, flags, dropped, 0};
  std::uint64_t bytes = sizeof h + std::uint64_t{n} * sizeof(trace_rec);
  std::uint64_t off = g_off.fetch_add(bytes, std::memory_order_relaxed);  // relaxed: only reserves bytes
  // Raw system calls: write/pwrite may be interposed (sys_write.hpp).
  syscall(SYS_pwrite64, g_fd, &h, sizeof h, off);
  syscall(SYS_pwrite64, g_fd, r, std::size_t{n} * sizeof(trace_rec), off + sizeof h);
}

void mono_pair(std::uint64_t* tsc, std::uint64_t* mono) noexcept {
  *tsc = __rdtsc();
  *mono = native_seam::now_ns();
}

inline void fill(trace_rec& r, tev kind, std::uint64_t fiber, std::uint32_t seq, std::uint64_t arg,
                 unsigned aux, std::uint16_t q, std::uint64_t ts) noexcept {
  r.ts = ts;
  r.fiber = fiber;
  r.arg = arg;
  r.seq = seq;
  r.kind = static_cast<unsigned char>(kind);
  r.aux = static_cast<unsigned char>(aux);
  r.q = q;
}

// stamp: read the clock (runs, idle); else the KLT's last reading (see the top).
void put_klt(trace_klt* t, tev kind, std::uint64_t fiber, std::uint32_t seq, std::uint64_t arg,
             unsigned aux, std::uint16_t q, bool stamp = false) noexcept {
  if (t->n == kCap) {
    ++t->dropped;
    return;
  }
  if (stamp) t->last_ts = __rdtsc();
  fill(t->buf[t->n++], kind, fiber, seq, arg, aux, q, t->last_ts);
}

void put_os(tev kind, std::uint64_t fiber, std::uint32_t seq, std::uint64_t arg, std::uint16_t q) noexcept {
  lock_guard<spinlock> g(g_os_lock);
  if (g_os_n == kOsCap) {  // OS threads are not a hot path: flush under the lock
    write_chunk(kSrcOs, 0, g_os_dropped, g_os_buf, g_os_n);
    g_os_n = 0;
  }
  fill(g_os_buf[g_os_n++], kind, fiber, seq, arg, 0, q, __rdtsc());
}

// A step of fiber f, recorded by its current owner on whatever thread that is
// (k: this_klt(), nullptr on an OS thread).
void put_step(klt* k, tev kind, fcb* f, std::uint64_t arg, std::uint16_t q) noexcept {
  std::uint32_t seq = f->tr.seq++;  // the owner only (trace_types.hpp)
  if (k && k->trace) put_klt(k->trace, kind, f->id, seq, arg, 0, q, !k->current);  // scheduler: a slice ends
  else put_os(kind, f->id, seq, arg, q);
}

// Who is recording: the running fiber's id, 0 for a KLT's scheduler context,
// or an OS thread's id (native_seam::self_id: tid with bit 63).
std::uint64_t recorder(klt* k) noexcept {
  if (k) return k->current ? k->current->id : 0;
  return native_seam::self_id();
}

void flush_tick(trace_klt* t) noexcept {
  // acquire: pairs with the handler's release of head (same thread: a signal fence).
  std::uint64_t h = t->tick_head.load(std::memory_order_acquire);
  while (t->tick_tail != h) {
    std::uint32_t at = static_cast<std::uint32_t>(t->tick_tail % kTickCap);
    std::uint32_t n = static_cast<std::uint32_t>(h - t->tick_tail);
    if (n > kTickCap - at) n = kTickCap - at;  // up to the ring's end, then from 0
    write_chunk(t->index, 1, t->tick_dropped.load(std::memory_order_relaxed), t->tick + at, n);  // relaxed: a count
    t->tick_tail += n;
  }
}

void flush_klt(trace_klt* t) noexcept {
  write_chunk(t->index, 0, t->dropped, t->buf, t->n);
  t->n = 0;
  flush_tick(t);
}

void maybe_flush(trace_klt* t) noexcept {
  if (t->n >= kCap / 2 ||
      t->tick_head.load(std::memory_order_relaxed) - t->tick_tail >= kTickCap / 2)  // relaxed: a hint
    flush_klt(t);
}

const char* trace_path_of(const runtime& rt, bool* from_env) noexcept {
  const char* e = std::getenv("FIBER_TRACE");
  *from_env = e && *e;
  return *from_env ? e : rt.cfg.trace_path;
}

}  // namespace

bool trace_open(runtime& rt) noexcept {
  bool from_env = false;
  const char* path = trace_path_of(rt, &from_env);
  if (!path || !*path) return true;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (!from_env) return false;
    std::fprintf(stderr, "fiber: FIBER_TRACE=%s: cannot open it (%s); not tracing\n", path, std::strerror(errno));
    return true;
  }
  // A ring for every slot, spares included (monitor.hpp): untouched until used.
  const unsigned slots = rt.nklts + rt.nspare;
  auto* ts = new (std::nothrow) trace_klt[slots];
  auto* bufs = new (std::nothrow) trace_rec[std::size_t{kCap} * slots];
  if (!ts || !bufs) {
    delete[] ts;
    delete[] bufs;
    close(fd);
    return !from_env ? false : true;
  }
  g_fd = fd;
  g_nklts = slots;
  struct {
    char magic[8];
    std::uint32_t version, nklts, pid, rec_size, timeslice_us, pad[3];
  } hdr{{'F', 'I', 'B', 'T', 'R', 'C', '0', '1'}, 1, slots, static_cast<std::uint32_t>(getpid()),
        sizeof(trace_rec), rt.cfg.timeslice_us, {0, 0, 0}};
  static_assert(sizeof hdr == 40, "the file format");
  syscall(SYS_pwrite64, fd, &hdr, sizeof hdr, 0);
  g_off.store(sizeof hdr, std::memory_order_relaxed);  // relaxed: before the KLTs start
  g_os_n = 0;
  g_os_dropped = 0;
  for (unsigned i = 0; i < slots; ++i) {
    ts[i].index = i;
    ts[i].buf = bufs + std::size_t{kCap} * i;
    rt.klts[i].trace = &ts[i];
  }
  mono_pair(&g_tsc0, &g_mono0);
  g_trace_on.store(true, std::memory_order_relaxed);  // relaxed: published by g_rt's release store
  trace_lock_open();
  return true;
}

void trace_close(runtime& rt) noexcept {
  if (g_fd < 0) return;
  g_trace_on.store(false, std::memory_order_relaxed);  // relaxed: the KLTs were joined
  trace_lock_close();
  trace_klt* first = rt.klts[0].trace;
  for (unsigned i = 0; i < rt.nklts + rt.nspare; ++i) {
    if (rt.klts[i].trace) flush_klt(rt.klts[i].trace);
    rt.klts[i].trace = nullptr;
  }
  {
    lock_guard<spinlock> g(g_os_lock);
    write_chunk(kSrcOs, 0, g_os_dropped, g_os_buf, g_os_n);
    g_os_n = 0;
  }
  trace_rec cal{};
  std::uint64_t tsc1 = 0, mono1 = 0;
  mono_pair(&tsc1, &mono1);
  std::uint64_t v[4] = {g_tsc0, g_mono0, tsc1, mono1};
  std::memcpy(&cal, v, sizeof v);
  write_chunk(kSrcCalib, 0, 0, &cal, 1);
  close(g_fd);
  g_fd = -1;
  if (first) {
    delete[] first->buf;  // the buffers were one allocation
    delete[] first;
  }
}

void trace_create_slow(fcb* f, const char* name, unsigned q) noexcept {
  f->tr = trace_fiber{};
  klt* k = this_klt();
  put_step(k, tev::create, f, recorder(k), qof(q));
  if (!name) return;
  std::size_t len = strnlen(name, kNameMax - 1);
  for (unsigned part = 0; part * 8u < len; ++part) {  // 8 bytes of the name per record
    std::uint64_t bytes = 0;
    std::memcpy(&bytes, name + part * 8, len - part * 8 < 8 ? len - part * 8 : 8);
    if (k && k->trace) {
      put_klt(k->trace, tev::name, f->id, kNoSeq, bytes, part, kQNone);
    } else {
      lock_guard<spinlock> g(g_os_lock);
      if (g_os_n < kOsCap) fill(g_os_buf[g_os_n++], tev::name, f->id, kNoSeq, bytes, part, kQNone, __rdtsc());
    }
  }
}

void trace_run_slow(klt* k, fcb* f) noexcept {
  maybe_flush(k->trace);  // a safe point: no lock held, the gate raised (I5)
  put_klt(k->trace, tev::run, f->id, f->tr.seq++, f->last_klt, 0, kQNone, true);
}

void trace_leave_slow(klt* k, fcb* f, klt_action a) noexcept {
  tev kind = tev::yield;
  std::uint64_t arg = 0;
  unsigned aux = 0;
  std::uint16_t q = qof(k->index);
  switch (a) {
    case klt_action::yield: break;
    case klt_action::preempted: {
      runtime& rt = *g_rt.load(std::memory_order_relaxed);  // relaxed: set while KLTs run
      kind = tev::preempt;
      if (rt.policy->preempted_moves(f->movable)) q = kQGlobal;  // as on_preempted decides (sched.cpp)
      break;
    }
    case klt_action::park: return;  // trace_park, in act_on's park case
    case klt_action::exit: return;  // finish_exit records it (trace_exit)
    case klt_action::none: return;
  }
  put_klt(k->trace, kind, f->id, f->tr.seq++, arg, aux, q, !k->current);  // scheduler: a slice ends
}

bool trace_park_slow(klt* k, fcb* f) noexcept {
  // What the fiber said it waits on (Seam::note_wait), as the diagnostics keep it.
  // relaxed (both): written by this fiber, its owner, before it left its stack.
  auto obj = reinterpret_cast<std::uintptr_t>(f->diag.obj_.load(std::memory_order_relaxed));
  auto kind = static_cast<unsigned>(f->diag.kind_.load(std::memory_order_relaxed));
  put_klt(k->trace, tev::park, f->id, f->tr.seq++, obj, kind, kQNone, !k->current);  // as trace_leave
  return g_no_commit.load(std::memory_order_relaxed);  // relaxed: a test knob
}

void trace_park_abort_slow(klt* k, fcb* f) noexcept {
  put_klt(k->trace, tev::park_abort, f->id, f->tr.seq++, 0, 0, qof(k->index));
}

// A fiber may wake another with its preempt_count at 0 (a semaphore grants
// after its lock is released): the count is raised here, so no other fiber of
// this KLT writes its buffer (or flushes it) between the slot's reservation
// and its record, and the waker cannot move to another KLT meanwhile (I5).
// No-op in the scheduler context and on OS threads.
bool trace_wake_slow(fcb* f) noexcept {
  native_seam::preempt_disable();
  klt* k = this_klt();
  put_step(k, tev::wake, f, recorder(k), k ? qof(k->index) : kQGlobal);
  bool lost = lose_wake(f);
  native_seam::preempt_enable();  // a tick refused meanwhile is taken here, as it would have been
  return lost;
}

void trace_exit_slow(fcb* f) noexcept { put_step(this_klt(), tev::exit, f, 0, kQNone); }

void trace_join_slow(fcb* f) noexcept {
  klt* k = this_klt();
  put_step(k, tev::join, f, recorder(k), kQNone);
}

void trace_idle_slow(klt* k, bool sleeping) noexcept {
  if (sleeping) flush_klt(k->trace);  // a long sleep leaves nothing unwritten
  put_klt(k->trace, sleeping ? tev::idle_sleep : tev::idle_wake, 0, kNoSeq, 0, 0, kQNone, true);
}

void trace_put_lock(tev kind, std::uint64_t who, const void* obj, std::uint32_t seq, unsigned aux, bool ext,
                    std::uint64_t x0, std::uint64_t x1, bool may_flush) noexcept {
  const auto m = reinterpret_cast<std::uintptr_t>(obj);
  klt* k = this_klt();
  if (k && k->trace) {  // a fiber, preemption disabled: nothing else of this KLT writes between
    trace_klt* t = k->trace;
    if (may_flush && t->n >= kCap / 2) flush_klt(t);  // a loop of uncontended locks never switches
    put_klt(t, kind, who, seq, m, aux, kQNone);
    if (ext) put_klt(t, tev::lock_ext, x0, kNoSeq, x1, 0, kQNone);
    return;
  }
  lock_guard<spinlock> g(g_os_lock);  // both records under one hold: adjacent
  if (g_os_n + 2 > kOsCap) {
    write_chunk(kSrcOs, 0, g_os_dropped, g_os_buf, g_os_n);
    g_os_n = 0;
  }
  std::uint64_t ts = __rdtsc();
  fill(g_os_buf[g_os_n++], kind, who, seq, m, aux, kQNone, ts);
  if (ext) fill(g_os_buf[g_os_n++], tev::lock_ext, x0, kNoSeq, x1, 0, kQNone, ts);
}

void trace_tick_refused(klt* k, fcb* f, trace_refusal why) noexcept {
  trace_klt* t = k->trace;
  if (!t) return;
  std::uint64_t h = t->tick_head.load(std::memory_order_relaxed);  // relaxed: the handler is its writer
  if (h - t->tick_tail >= kTickCap) {
    t->tick_dropped.store(t->tick_dropped.load(std::memory_order_relaxed) + 1,  // relaxed: one writer
                          std::memory_order_relaxed);                          // relaxed: a count
    return;
  }
  fill(t->tick[h % kTickCap], tev::tick_refused, f->id, kNoSeq, 0, static_cast<unsigned>(why), kQNone,
       __rdtsc());
  // release: the record before the head, for the flush on this thread (acquire in flush_tick).
  t->tick_head.store(h + 1, std::memory_order_release);
}

// ---- test knobs (testing.h) ----------------------------------------------

// Planted defect: the wake of a fiber whose park has a deadline is dropped and
// the fiber is parked again, so only its timeout wakes it (a lost wake-up
// that a timeout papers over).  Under timer_lock, so the expiry, which unparks
// under it (I6), either ran before (the fiber is no longer queued: the wake
// goes through) or runs after and finds it parked.  The expiry's own wake
// comes here with the timer already popped, so it is never dropped.
namespace {
bool lose_wake(fcb* f) noexcept {
  if (!g_lose_wake.load(std::memory_order_relaxed)) return false;  // relaxed: a test knob
  if (f->timer_index == timer_heap<fcb>::kNotQueued) return false;  // racy: rechecked under the lock
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: as in timers.cpp
  lock_guard<spinlock> g(rt.timer_lock);
  if (f->timer_index == timer_heap<fcb>::kNotQueued) return false;
  f->park.word().store(parker::kParked, mo::release);  // release: pairs with the expiry's unpark
  return true;
}
}  // namespace

void trace_set_knob(int knob, bool on) noexcept {
  if (knob == FIBER_KNOB_TRACE_LOSE_WAKE) g_lose_wake.store(on);  // seq_cst: a test's setting
  if (knob == FIBER_KNOB_TRACE_NO_COMMIT) g_no_commit.store(on);  // seq_cst: as above
}

}  // namespace fiber::detail
