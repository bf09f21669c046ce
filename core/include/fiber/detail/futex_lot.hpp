// fiber/detail/futex_lot.hpp - futex semantics for fibers: FUTEX_WAIT parks
// the calling fiber, FUTEX_WAKE wakes parked fibers (core/src/
// interpose_futex.cpp uses it for syscall(SYS_futex, ...)).  Written over the
// seam and checked by models/futex_lot.cpp.
//
// What it does.  wait(key, changed, deadline, recheck_ns) is the kernel's
// FUTEX_WAIT on the word at `key` for a fiber: changed() reads the word and
// says whether it differs from the value the caller expects.  It returns
// EAGAIN when the word differs before the fiber sleeps, ETIMEDOUT at the
// deadline, 0 when woken - or when a re-check period found the word changed
// (a wake this lot did not see, I-FX2).  A return of 0 with the word unchanged
// is legal for futex: callers loop.  wake(key, want) wakes up to `want`
// fibers parked on key (all: UINT_MAX) and returns how many.
//
// The protocol is the parking lot's (parking_lot.hpp, I-LOT1) with the word
// compare as the re-try:
//   waiter: changed()?; enqueue (count++, FENCE); changed() again; park.
//   waker:  (the caller's store to the word, any order); FENCE; load count;
//           grant queued nodes of key.
// Either the waiter's second changed() sees the store or the waker's load
// sees the count (a store-buffering pair of seq_cst fences).  The waker's
// fence is a full one: the caller's store need not be an RMW.
//
// Invariants (cited as I-FXn by code, model and tests):
//   I-FX1 No lost wake-up: a waiter that sleeps was registered before its
//         last changed() was false, so a wake after a store that made it
//         true finds the waiter (I-LOT1).
//   I-FX2 (recheck_ns != 0) A store whose wake never reaches this lot (a
//         raw futex call, another process) ends the wait within the re-check
//         period: recheck_ns, doubling to the lot's kMaxRecheckNs.
//   I-FX3 A grant is never dropped: a waiter that a waker popped returns 0
//         (even when its own re-check or timeout ran first), so the waker's
//         count of woken fibers is exact.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/parking_lot.hpp"

namespace fiber::detail {

template <class Seam, unsigned kBuckets = 256>
class basic_futex_lot {
 public:
  using lot_type = basic_parking_lot<Seam, kBuckets>;
  static constexpr unsigned kAll = ~0u;

  template <class Changed>
  int wait(const void* key, Changed&& changed, std::uint64_t deadline, std::uint64_t recheck_ns) noexcept {
    if (changed()) return EAGAIN;  // the fast path: no registration
    for (bool first = true;; first = false) {
      const int r = park_once(key, changed, deadline, recheck_ns);
      if (r == 0 || r == ETIMEDOUT) return r;
      if (r == EAGAIN) return first ? EAGAIN : 0;  // later: a wake we did not see (I-FX2)
      if (recheck_ns < lot_type::kMaxRecheckNs) recheck_ns *= 2;
    }
  }

  unsigned wake(const void* key, unsigned want) noexcept {
    if (want == kAll) return lot_.unpark_all(key);  // its fence pairs with enqueue()'s (I-FX1)
    unsigned woken = 0;
    while (woken < want) {
      const unsigned k = lot_.unpark_one(key);  // its fence pairs with enqueue()'s (I-FX1)
      if (k == 0) break;
      woken += k;
    }
    return woken;
  }

 private:
  static constexpr int kPeriodEnded = lot_type::kBusy;

  // One registration: 0 woken, EAGAIN changed at the re-check, ETIMEDOUT, or
  // kPeriodEnded (only the re-check period ended: register again).
  template <class Changed>
  int park_once(const void* key, Changed& changed, std::uint64_t deadline, std::uint64_t recheck_ns) noexcept {
    typename lot_type::node n(&Seam::current_parker());
    lot_.enqueue(&n, key, wait_kind::libc_lock);  // ends with the waiter's fence (I-FX1)
    if (changed()) {  // the re-check after registering (I-FX1)
      if (lot_.cancel(&n, key)) return EAGAIN;
      while (!n.wait(kNoDeadline)) {}  // a waker popped us: its wake is ours (I-FX3)
      return 0;
    }
    std::uint64_t until = deadline;
    if (recheck_ns != 0) {
      const std::uint64_t poll = Seam::now_ns() + recheck_ns;
      if (poll < until) until = poll;
    }
    if (n.wait(until)) return 0;  // granted: woken
    if (!lot_.cancel(&n, key)) {  // a waker holds n: its grant lands, and counts (I-FX3)
      while (!n.wait(kNoDeadline)) {}
      return 0;
    }
    return until == deadline ? ETIMEDOUT : kPeriodEnded;
  }

  lot_type lot_;
};

}  // namespace fiber::detail
