// core/src/trace_lock.cpp - the native trace's lock events (Seam::trace_lock,
// called by mutex.hpp) and the planted mutex defects (test knobs 23-25).
//
// What is recorded (trace.hpp's lock_* kinds): each acquisition of a fiber
// mutex (fiber::mutex and fiber_mutex_t share basic_mutex) with how it was
// obtained (a barge, the woken waiter, a hand-off), each release, each wait
// node entering the queue (at the tail, or back at the head), and each node
// an unlock popped (woken or granted).  tools/trace_check.py checks mutual
// exclusion (I-M1), arrival order (I-M3 a) and the overtaking bound (I-M3 b)
// from them.
//
// Ordering without clocks, as the per-fiber seq (trace_types.hpp): every
// mutex has two counters here, numbered where its events are serialised
// already.
//   oseq  acquire and release events.  Written by the owner only: the owner's
//         critical section is serialised by the mutex itself (the next owner's
//         acquire CAS reads the previous unlock's release, I-M5), so a load and
//         a store suffice, and a duplicated number is itself two owners at
//         once (I-M1).
//   qseq  queue and pop events, both made under the mutex's lk_ (a leaf lock
//         that orders them as the queue changes).
// A queue event also records the oseq it reads under lk_ after the acquire
// fence below: with the queuer's CAS on state_ (which read the last unlock's
// release sequence) every owner event up to that unlock is visible, so the
// number is exact but for the current owner's acquisition, whose record may
// still be on its way; the checker allows for that one (trace_check.py).
//
// The counters live in a table keyed by the mutex's address (open
// addressing, never removed: a mutex destroyed and another made at the same
// address start free with an empty queue, so their numbers just continue).
// Nothing is added to the mutex, nothing is allocated when tracing is off (the
// table is zero pages).  A full table records lock_lost and the checker
// refuses the trace.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fiber/detail/testing.h"
#include "trace.hpp"

namespace fiber::detail {

std::atomic<bool> native_seam::lock_trace{false};
std::atomic<unsigned> native_seam::mutex_defects{0};

namespace {

struct lock_slot {
  std::atomic<std::uintptr_t> obj{0};
  std::atomic<std::uint32_t> oseq{0};  // owner events (see the top)
  std::atomic<std::uint32_t> qseq{0};  // queue events, under the mutex's lk_
};
constexpr unsigned kSlotBits = 14;
constexpr std::size_t kSlots = std::size_t{1} << kSlotBits;  // 16k mutexes per trace
lock_slot g_slots[kSlots];
std::atomic<std::uint32_t> g_defect_calls{0};  // knob 25 plants one contended lock in four

lock_slot* slot_of(const void* m) noexcept {
  const auto key = reinterpret_cast<std::uintptr_t>(m);
  const std::size_t h = static_cast<std::size_t>(((key >> 3) * 0x9E3779B97F4A7C15ull) >> (64 - kSlotBits));
  for (std::size_t i = 0; i < kSlots; ++i) {
    lock_slot& s = g_slots[(h + i) & (kSlots - 1)];
    // relaxed (load and CAS): the key publishes nothing; the counters are
    // ordered by the mutex's own synchronisation (see the top).
    std::uintptr_t cur = s.obj.load(std::memory_order_relaxed);
    if (cur == key) return &s;
    if (cur == 0 && (s.obj.compare_exchange_strong(cur, key, std::memory_order_relaxed) || cur == key)) return &s;
  }
  return nullptr;
}

// Load and store, not an RMW (see the top): relaxed, the caller's own
// serialisation (the mutex, or lk_) orders consecutive writers.
std::uint32_t next(std::atomic<std::uint32_t>& c) noexcept {
  const std::uint32_t v = c.load(std::memory_order_relaxed);
  c.store(v + 1, std::memory_order_relaxed);
  return v;
}

void record(const void* m, lock_ev ev, unsigned aux, const void* node, unsigned k) noexcept {
  const std::uint64_t who = native_seam::self_id();
  lock_slot* s = slot_of(m);
  if (s == nullptr) {
    trace_put_lock(tev::lock_lost, who, m, ~0u, 0, false, 0, 0, false);
    return;
  }
  const auto nd = reinterpret_cast<std::uintptr_t>(node);
  switch (ev) {
    case lock_ev::acquire:
      trace_put_lock(tev::lock_acquire, who, m, next(s->oseq), aux, false, 0, 0, true);
      break;
    case lock_ev::release:
      trace_put_lock(tev::lock_release, who, m, next(s->oseq), aux, false, 0, 0, true);
      break;
    case lock_ev::queue: {
      const std::uint32_t q = next(s->qseq);
      // acquire: with the queuer's CAS on state_ (its release sequence), the
      // owner events before the last unlock are visible to the load below.
      std::atomic_thread_fence(std::memory_order_acquire);
      const std::uint32_t o = s->oseq.load(std::memory_order_relaxed);  // relaxed: ordered by the fence
      trace_put_lock(tev::lock_queue, who, m, q, aux, true, nd, (std::uint64_t{k} << 32) | o, false);
      break;
    }
    case lock_ev::pop:
      trace_put_lock(tev::lock_pop, who, m, next(s->qseq), aux, true, nd, 0, false);
      break;
  }
}

}  // namespace

// Preemption off, as in trace_wake_slow: the record and its lock_ext go to
// one KLT's buffer with nothing of that KLT in between.  Under lk_ it is
// already off (I-S1); elsewhere the enable may take a pending preemption.
void native_seam::trace_lock_slow(const void* m, lock_ev ev, unsigned aux, const void* node,
                                  unsigned barge_limit) noexcept {
  preempt_disable();
  record(m, ev, aux, node, barge_limit);
  preempt_enable();
}

void trace_lock_open() noexcept {
  for (lock_slot& s : g_slots) {  // relaxed (all): before the KLTs start
    s.obj.store(0, std::memory_order_relaxed);
    s.oseq.store(0, std::memory_order_relaxed);
    s.qseq.store(0, std::memory_order_relaxed);
  }
  native_seam::lock_trace.store(true, std::memory_order_relaxed);  // relaxed: as g_trace_on (trace.hpp)
}

void trace_lock_close() noexcept {
  native_seam::lock_trace.store(false, std::memory_order_relaxed);  // relaxed: the KLTs were joined
}

// ---- planted defects (testing.h knobs 23-25; mutex.hpp) ----------------------
// Like knobs 17 and 18 they act only while tracing: their purpose is the
// checker's controls.

bool native_seam::mutex_defect_fires(mutex_defect d) noexcept {
  if (!lock_trace.load(std::memory_order_relaxed)) return false;  // relaxed: as trace_lock
  if (d != mutex_defect::double_owner) return true;
  return (g_defect_calls.fetch_add(1, std::memory_order_relaxed) & 3) == 0;  // relaxed: a count
}

void trace_lock_set_knob(int knob, bool on) noexcept {
  unsigned bit = 0;
  if (knob == FIBER_KNOB_MUTEX_WAKE_TAIL) bit = static_cast<unsigned>(mutex_defect::wake_tail);
  if (knob == FIBER_KNOB_MUTEX_NO_STARVATION) bit = static_cast<unsigned>(mutex_defect::no_starvation);
  if (knob == FIBER_KNOB_MUTEX_DOUBLE_OWNER) bit = static_cast<unsigned>(mutex_defect::double_owner);
  if (on)
    native_seam::mutex_defects.fetch_or(bit);  // seq_cst: a test's setting
  else
    native_seam::mutex_defects.fetch_and(~bit);  // seq_cst: as above
}

}  // namespace fiber::detail
