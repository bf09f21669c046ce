// fiber/detail/seam.hpp - the one place that decides what the platform is.
//
// Every concurrent algorithm in core/ (parker, spinlock, run queue, idle-KLT
// eventcount, mutex, condition variable, semaphore, barrier, join word) is a
// template over a *Seam* type and touches shared state only through it.  The
// native build instantiates them with fiber::detail::native_seam; the Relacy
// build (models/, -DFIBER_SEAM_RELACY=1) with fiber::detail::relacy_seam.  The
// algorithms never spell std::atomic, a futex, a scheduler call, Relacy's `$`
// or rl::var: only the seam does.  This mirrors tokio's loom module and
// abseil's waiter_base.h.
//
// The Seam concept (what an algorithm may use), written down once:
//
//   template <class T> using atomic = ...;  // load(mo), store(v, mo),
//       exchange(v, mo), compare_exchange_strong(e, d, mo_ok, mo_fail),
//       compare_exchange_weak(...), fetch_add(v, mo), fetch_sub(v, mo),
//       fetch_or(v, mo), fetch_and(v, mo).  No implicit seq_cst operators:
//       every call names its order (the house rule).  Zero-initialised storage is a
//       valid atomic holding 0 (static initialisers of the C API rely on it).
//   template <class T> using var = ...;     // a plain shared variable,
//       load()/store(v); Relacy reports a data race on unsynchronised access.
//   static void fence(mo);                  // atomic_thread_fence
//   static void fence_after_rmw();          // fence(seq_cst) placed right after an
//       RMW of the caller: natively a compiler barrier on x86-64, where a
//       locked RMW is a full barrier (parking_lot.hpp's releases).
//   static void signal_fence();             // atomic_signal_fence: orders against
//       an asynchronous handler on the same thread (preempt_gate.hpp); nothing
//       under Relacy, where that handler runs inline at an interrupt point.
//   static void spin_hint(unsigned iter);   // every retry loop calls it; the
//       native seam pauses (and sched_yield()s after many tries), the Relacy
//       seam calls rl::yield so bounded searches terminate.
//   static void preempt_disable();          // the native seam bumps the
//   static void preempt_enable();           //  running fiber's counter (I5
//       in core/src/native_seam.cpp); a preemption that arrived meanwhile is taken
//       in preempt_enable (preempt_gate.hpp).  Under Relacy they only count a
//       per-thread depth that models read to check I-S1.
//   using parker_platform = ...;            // the platform half of the park
//       protocol, see parker.hpp: block(parker&, deadline) and wake(parker&).
//   static parker_type& current_parker();   // the caller's parker: the running
//       fiber's, or the calling OS thread's (type-stable storage, never freed).
//   static uint64_t self_id();              // nonzero identity of the caller
//       (fiber id, or an OS-thread id with bit 63 set); owner tracking.
//   static uint64_t now_ns();               // CLOCK_MONOTONIC (virtual under Relacy)
//   static void note_wait(parker_type&, wait_kind, const void* obj);
//                                           // diagnostics only: what the owner of
//       the parker is about to wait on (fiber_dump, deadlock detection).  Called
//       once per logical wait on the slow path, before parking; natively a few
//       plain stores into the waiter's control block, nothing under Relacy.
//   static void os_wait(atomic<uint32_t>&, uint32_t expected, uint64_t deadline);
//   static uint32_t os_wake(atomic<uint32_t>&, uint32_t count);
//                                           // futex-like wait/wake on a word for
//       KLTs and OS threads only (idle KLTs, blocked OS threads).  May return
//       spuriously; Relacy's spurious wake-ups are switchable per search.
//       os_wake returns how many waiters it woke (idle.hpp, I-I3).
//
//   static constexpr unsigned kMutexBargeLimit, kMutexSpinLimit;
//   static bool spin_useful(uint64_t owner_self_id);
//                                           // mutex.hpp: the starvation bound K,
//       the spin rounds, and whether spinning on a mutex whose owner is that
//       party can help (it runs on another KLT).  Relacy: 2, 1, always true.
//
//   static void trace_lock(const void* mutex, lock_ev ev, unsigned aux = 0,
//                          const void* node = nullptr, unsigned barge_limit = 0);
//                                           // mutex.hpp: a lock event for the native
//       trace (core/src/trace_lock.cpp): acquired (aux: how), released, queued
//       (under the mutex's lock; aux: lock_queued_*; the node and K given),
//       popped (under its lock, by the owner; aux: lock_popped_*).  Natively one
//       predicted branch on the trace flag, the record out of line; nothing
//       under Relacy.
//   static bool mutex_defect_on(mutex_defect d);
//                                           // mutex.hpp: a planted defect is on
//       (test knobs 23-25, testing.h; only the trace checker's controls).
//       Natively a relaxed load, on slow paths only; false under Relacy.
//
//   FIBER_ASSERT(cond, msg)                 // internal invariant; on in models
//                                           // and debug builds, prints and aborts.
//
// src_loc: every seam operation takes a defaulted source location built from
// __builtin_FILE/__builtin_LINE/__builtin_FUNCTION, so Relacy's histories name
// the call site inside core/ rather than this wrapper.  Natively it is an empty
// struct and costs nothing.
#pragma once

#include <cstdint>

namespace fiber::detail {

// Memory orders as the algorithms spell them.  Each backend maps them.
enum class mo : unsigned char { relaxed, acquire, release, acq_rel, seq_cst };

// Deadlines are absolute CLOCK_MONOTONIC nanoseconds.
inline constexpr std::uint64_t kNoDeadline = ~std::uint64_t{0};

// What a parked party waits on (Seam::note_wait; printed by fiber_dump).  The
// object is the algorithm object (basic_mutex..., a fiber's join_state).
enum class wait_kind : unsigned char { none, mutex, condvar, semaphore, barrier, join, sleep, shutdown, io, libc_lock };

// Lock events (Seam::trace_lock; mutex.hpp records them, core/src/trace_lock.cpp
// writes them, tools/trace_check.py checks I-M1 and I-M3 from them).
enum class lock_ev : unsigned char { acquire = 1, release, queue, pop };
// aux of an acquire: how the party became the owner (mutex.hpp's "barge").
inline constexpr unsigned lock_by_barge = 1;    // fast path, try_lock, spin, first try under lk_
inline constexpr unsigned lock_by_woken = 2;    // the woken waiter (kWoken) took it
inline constexpr unsigned lock_by_granted = 3;  // starvation mode: the unlock handed it over
// aux of a queue: bits.
inline constexpr unsigned lock_queued_head = 1;      // a woken waiter that lost, back at the head
inline constexpr unsigned lock_queued_inflight = 2;  // kWoken was set: a waiter in flight ahead
// aux of a pop.
inline constexpr unsigned lock_popped_woken = 1;    // normal mode: woken to retry
inline constexpr unsigned lock_popped_granted = 2;  // starvation mode: granted the mutex

// Planted mutex defects (Seam::mutex_defect_on; test knobs 23-25 in testing.h).
enum class mutex_defect : unsigned char {
  wake_tail = 1,      // an unlock wakes or grants the queue's tail, not its head (I-M3 a)
  no_starvation = 2,  // the K-th barge never sets kHandoff (I-M3 b)
  double_owner = 4,   // some contended lockers enter without the mutex (I-M1)
};

}  // namespace fiber::detail

#if defined(FIBER_SEAM_RELACY) && FIBER_SEAM_RELACY
#include "fiber/detail/seam_relacy.hpp"
namespace fiber::detail { using seam = relacy_seam; }
#else
#include "fiber/detail/seam_native.hpp"
namespace fiber::detail { using seam = native_seam; }
#endif
