// core/src/diag.hpp - the explicit state of a fiber, kept for diagnostics
// (fiber_dump, deadlock detection, the gdb extension), not for scheduling.
//
// The scheduler decides with its own words (parker state, queue links,
// join_state, k->current: runtime.hpp); this is a mirror of them written at
// every transition, so that a dump, a detector or a debugger can say what a
// fiber is doing without taking a lock.  Go keeps g.atomicstatus the same way
// and throws "bad g status" on an impossible transition; marl has
// ASSERT_FIBER_STATE.  FIBER_ASSERT checks every transition in debug builds.
//
// States and who writes the transition (runtime.hpp has the ownership rules):
//   free      slot on the free list                 slot_free (slots.cpp)
//   runnable  queued or about to be                 create, act_on (yield,
//                                                   preempted, failed park
//                                                   commit), the waker (wake)
//   running   k->current of KLT `klt`               install (sched.cpp)
//   parked    committed to a park (I-P5); waits on  act_on, before try_commit
//             wait_obj_ of kind wait_kind_          (so a waker's "runnable"
//                                                   always comes after it)
//   exited    off its stack, not yet joined         finish_exit (sched.cpp)
//
// Every field is an atomic accessed relaxed: each has one writer at a time
// (the party that owns the fiber in that state), and readers (dump, detector,
// gdb) take a racy snapshot that orders nothing.  The detector never trusts a
// single snapshot: it re-reads wakes_/waits_ to prove a fiber stayed parked
// (deadlock.cpp).
//
// Time in state: since_ is a coarse clock (g_diag_now, advanced by the diag
// ticker every kDiagPeriodMs), one relaxed load instead of a clock_gettime,
// which costs 50-190 ns on this VM (vDSO COARSE / MONOTONIC), as much as a
// third of a yield.  So times in the dump have the ticker's resolution.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fiber/detail/assert.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"

namespace fiber::detail {

enum class fstate : unsigned char { free, runnable, running, parked, exited };

inline constexpr std::size_t kNameMax = 32;  // bytes with the NUL (fiber_setname: ERANGE beyond)
inline constexpr unsigned kDiagPeriodMs = 100;  // the ticker's period (deadlock.cpp)

// FIBER_DIAG_NO_STATE=1 (CMake FIBER_DIAG_NO_STATE, a private switch for the
// instruction-count measurement of papers/results/icount-diag.md only)
// compiles the state bookkeeping out: move, note_wait and note_wake do
// nothing, so dumps show stale states and the cycle rule finds nothing.
// Never shipped that way.
#ifndef FIBER_DIAG_NO_STATE
#define FIBER_DIAG_NO_STATE 0
#endif
inline constexpr bool kDiagStateOn = !FIBER_DIAG_NO_STATE;

// Coarse CLOCK_MONOTONIC ns, advanced by the diag ticker; 0 before it runs.
// A cache line of its own: read at every transition, written every period.
struct alignas(64) diag_clock {
  std::atomic<std::uint64_t> ns{0};
};
// Hidden: read without a GOT indirection at every transition (libfiber only).
extern diag_clock g_diag_now __attribute__((visibility("hidden")));

inline std::uint64_t diag_now() noexcept {
  return g_diag_now.ns.load(std::memory_order_relaxed);  // relaxed: a timestamp for humans
}

const char* fstate_name(fstate s) noexcept;
const char* wait_kind_name(wait_kind k) noexcept;

struct fiber_diag {
  std::atomic<fstate> state_{fstate::free};
  std::atomic<wait_kind> kind_{wait_kind::none};      // meaningful while parked
  std::atomic<const void*> obj_{nullptr};             // meaningful while parked
  std::atomic<std::uint64_t> since_{0};               // g_diag_now at the last transition
  std::atomic<std::uint32_t> waits_{0};               // logical waits begun (note_wait)
  std::atomic<std::uint32_t> wakes_{0};               // wakes received (one waker at a time: I-P2)
  std::atomic<std::uint64_t> id_{0};                  // copy of fcb::id for racy readers
  basic_spinlock<native_seam> name_lock_;             // writers of name_ only
  char name_[kNameMax] = {};                          // read bytewise relaxed by the dump

  // One transition: `to`, asserting (debug builds) that the fiber was `from`.
  void move(fstate from, fstate to) noexcept {
#if FIBER_DIAG_NO_STATE  // measurement builds only (see kDiagStateOn)
    (void)from, (void)to;
#else
    FIBER_ASSERT(state_.load(std::memory_order_relaxed) == from,  // relaxed: single writer
                 "bad fiber state transition (diag.hpp)");
    (void)from;
    state_.store(to, std::memory_order_relaxed);  // relaxed: diagnostics only; see top
    since_.store(diag_now(), std::memory_order_relaxed);  // relaxed: as above
#endif
  }
  // The fiber begins a logical wait on obj (Seam::note_wait; the owner writes).
  void note_wait(wait_kind k, const void* obj) noexcept {
    if (!kDiagStateOn) return;
    kind_.store(k, std::memory_order_relaxed);  // relaxed: diagnostics (see top)
    obj_.store(obj, std::memory_order_relaxed);  // relaxed: as above
    waits_.store(waits_.load(std::memory_order_relaxed) + 1,  // relaxed: one writer, the fiber
                 std::memory_order_relaxed);                   // relaxed: re-read by the detector
  }
  // A waker unparks the fiber (Seam::wake; one waker at a time: I-P2).
  void note_wake() noexcept {
    if (!kDiagStateOn) return;
    wakes_.store(wakes_.load(std::memory_order_relaxed) + 1,  // relaxed: one writer at a time (I-P2)
                 std::memory_order_relaxed);                   // relaxed: re-read by the detector
  }
  fstate state() const noexcept { return state_.load(std::memory_order_relaxed); }  // relaxed: snapshot
  // Racy copy of the name into out[kNameMax] (always NUL-terminated).
  void copy_name(char* out) const noexcept {
    for (std::size_t i = 0; i + 1 < kNameMax; ++i)
      out[i] = __atomic_load_n(&name_[i], __ATOMIC_RELAXED);  // relaxed: a possibly torn name
    out[kNameMax - 1] = '\0';
  }
  void set_name(const char* s) noexcept;  // under name_lock_ (diag.cpp); nullptr clears
};

}  // namespace fiber::detail
