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
//             obj_ of kind kind_ (note_wait)        (so a waker's "runnable"
//                                                   always comes after it)
//   exited    off its stack, not yet joined         finish_exit (sched.cpp)
//
// The state word (word_): state, transition count and time stamp in one
// 64-bit word, so that a transition is one store and a reader gets all three
// from one load:
//   bits  0..2   the state (fstate)
//   bits  3..31  transitions so far (29 bits, wraps): every move adds one
//   bits 32..63  the time of the last transition, in units of 2^kDiagUnitShift
//                ns (about 1 ms) of the coarse clock, modulo 2^32 (52 days)
// A move is: load the low half (the writer's own last value: one writer at a
// time, handed over with the fiber, runtime.hpp), add one precomputed word of
// the clock table (g_diag_clock, below: the time in the high half, and
// 8 + to - from in the low half, which bumps the count and turns `from` into
// `to`), store.  Four instructions, one store, no branch; in debug builds
// FIBER_ASSERT checks `from` first (Go's "bad g status", marl's
// ASSERT_FIBER_STATE).  A carry out of the count (every 2^29 transitions)
// advances the time by one unit: harmless for a dump.
//
// The detector's confirmation (deadlock.cpp) compares whole words: two equal
// readings of a parked fiber mean no transition in between (the count),
// which is what its proof needs; the count replaced the wait and wake
// counters (papers/results/icount-diag.md: note_wake is gone).
//
// What a parked fiber waits on (kind_, obj_) is written by the fiber itself
// (note_wait) before it parks; the move into parked is a release store and
// readers load the word with acquire (both plain moves on x86), so a reader
// that sees "parked" sees that wait's kind and object.  name_ and id_ are
// read racily (relaxed) and order nothing.
//
// Time in state: the clock table is advanced by the diag ticker every
// kDiagPeriodMs, so a move costs no clock_gettime (50-190 ns on this VM,
// vDSO COARSE / MONOTONIC, as much as a third of a yield) and times in the
// dump have the ticker's resolution.
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
// compiles the state bookkeeping out: move and note_wait do
// nothing, so dumps show stale states and the cycle rule finds nothing.
// Never shipped that way.
#ifndef FIBER_DIAG_NO_STATE
#define FIBER_DIAG_NO_STATE 0
#endif
inline constexpr bool kDiagStateOn = !FIBER_DIAG_NO_STATE;

// Coarse CLOCK_MONOTONIC ns, advanced by the diag ticker; 0 before it runs.
// A cache line of its own: written every period, read by dumps and reports.
struct alignas(64) diag_clock {
  std::atomic<std::uint64_t> ns{0};
};
extern diag_clock g_diag_now __attribute__((visibility("hidden")));

inline std::uint64_t diag_now() noexcept {
  return g_diag_now.ns.load(std::memory_order_relaxed);  // relaxed: a timestamp for humans
}

// The state word's fields (see top).
inline constexpr unsigned kDiagUnitShift = 20;          // time unit: 2^20 ns = 1.048576 ms
inline constexpr std::uint64_t kDiagStateMask = 7;      // bits 0..2
inline constexpr std::uint64_t kDiagMoveOne = 8;        // one transition (bit 3)
inline constexpr int kDiagStepBias = 4;                 // step[to - from + 4]

// The clock table: step[d + 4] = (coarse time units << 32) + 8 + d, for every
// state difference d = to - from in [-4, 3] (step[4], d = 0, also tells the
// time: diag_now_units).  One cache line, read at every transition, written
// by the ticker every period (diag_clock_set).  Constant-initialised to time
// 0: a transition before the first ticker starts (fiber_create from an OS
// thread once fiber_init has published the runtime, before diag_start) still
// changes the state.  Zero-initialised, it left the state as it was, and that
// fiber's word one transition behind for its whole life ("bad fiber state
// transition ... is free, expected runnable" under ASan in stress_lifecycle).
struct alignas(64) diag_steps {
  std::atomic<std::uint64_t> step[8] = {kDiagMoveOne - 4, kDiagMoveOne - 3, kDiagMoveOne - 2, kDiagMoveOne - 1,
                                        kDiagMoveOne,     kDiagMoveOne + 1, kDiagMoveOne + 2, kDiagMoveOne + 3};
};
static_assert(kDiagStepBias == 4, "the initialiser above lists d = -4..3");
// Hidden: read without a GOT indirection at every transition (libfiber only).
extern diag_steps g_diag_clock __attribute__((visibility("hidden")));

void diag_clock_set(std::uint64_t ns) noexcept;  // the ticker (diag.cpp): g_diag_now and g_diag_clock

// The coarse clock in state-word units (modulo 2^32), for time-in-state.
inline std::uint32_t diag_now_units() noexcept {
  return static_cast<std::uint32_t>(g_diag_clock.step[kDiagStepBias].load(std::memory_order_relaxed) >>
                                    32);  // relaxed: a timestamp for humans
}

inline fstate diag_state_of(std::uint64_t word) noexcept { return static_cast<fstate>(word & kDiagStateMask); }
inline std::uint32_t diag_since_of(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32); }

const char* fstate_name(fstate s) noexcept;
const char* wait_kind_name(wait_kind k) noexcept;

struct fiber_diag {
  // The state word (see top), always accessed with __atomic builtins.  The
  // union lets the writer load the low half alone (GCC and Clang define
  // reading a union member other than the last one written).
  union word_t {
    std::uint64_t all;
    std::uint32_t low;
  } word_{0};
  std::atomic<wait_kind> kind_{wait_kind::none};      // meaningful while parked
  std::atomic<const void*> obj_{nullptr};             // meaningful while parked
  std::atomic<std::uint64_t> id_{0};                  // copy of fcb::id for racy readers
  basic_spinlock<native_seam> name_lock_;             // writers of name_ only
  char name_[kNameMax] = {};                          // read bytewise relaxed by the dump

  // One transition: `to`, asserting (debug builds) that the fiber was `from`.
  void move(fstate from, fstate to) noexcept {
#if FIBER_DIAG_NO_STATE  // measurement builds only (see kDiagStateOn)
    (void)from, (void)to;
#else
    // relaxed: the last store to this word was ours or our predecessor's,
    // which handed the fiber over (runtime.hpp ownership), so it is ordered.
    const std::uint32_t low = __atomic_load_n(&word_.low, __ATOMIC_RELAXED);
#if FIBER_ENABLE_ASSERTS
    if ((low & kDiagStateMask) != static_cast<std::uint32_t>(from)) bad_move(from, low, to);
#endif
    const int d = static_cast<int>(to) - static_cast<int>(from) + kDiagStepBias;
    const std::uint64_t step =
        g_diag_clock.step[d & 7].load(std::memory_order_relaxed);  // relaxed: a timestamp for humans
    __atomic_store_n(&word_.all, low + step, __ATOMIC_RELEASE);  // release: pairs with word()'s acquire
#endif
  }
  // The fiber begins a logical wait on obj (Seam::note_wait; the owner
  // writes, before the move into parked, whose release publishes both).
  void note_wait(wait_kind k, const void* obj) noexcept {
    if (!kDiagStateOn) return;
    kind_.store(k, std::memory_order_relaxed);   // relaxed: published by the park's release (move)
    obj_.store(obj, std::memory_order_relaxed);  // relaxed: as above
  }
  // A racy reading of the state word (see top).
  std::uint64_t word() const noexcept {
    return __atomic_load_n(&word_.all, __ATOMIC_ACQUIRE);  // acquire: pairs with move's release
  }
  fstate state() const noexcept { return diag_state_of(word()); }
  // Racy copy of the name into out[kNameMax] (always NUL-terminated).
  void copy_name(char* out) const noexcept {
    for (std::size_t i = 0; i + 1 < kNameMax; ++i)
      out[i] = __atomic_load_n(&name_[i], __ATOMIC_RELAXED);  // relaxed: a possibly torn name
    out[kNameMax - 1] = '\0';
  }
  void set_name(const char* s) noexcept;  // under name_lock_ (diag.cpp); nullptr clears
  // The assertion of move: prints the fiber's id and the three states, aborts.
  [[noreturn]] [[gnu::cold]] void bad_move(fstate from, std::uint32_t low, fstate to) const noexcept;
};

}  // namespace fiber::detail
