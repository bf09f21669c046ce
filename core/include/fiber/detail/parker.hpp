// fiber/detail/parker.hpp - the park/wake protocol every wait in fiber uses.
//
// One parker per waiter: every fiber owns one (inside its control block) and
// every OS thread that blocks in a fiber primitive gets one (thread-local,
// type-stable, never freed - see I-P4).  Mutex, condition variable, semaphore,
// barrier, join and sleep all wait by parking; there is no second mechanism.
//
// The parker holds at most one wake-up token (as Rust's thread::park):
//
//   state_   kEmpty    no token, owner not blocked
//            kNotified a token is present (an unpark happened)
//            kParked   the owner committed to blocking and must be woken
//
//   park_until(d):  if a token is present, consume it and return.  Otherwise
//                   Seam::block(*this, d): the platform commits (kEmpty ->
//                   kParked via try_commit()), sleeps, and leaves the state
//                   kEmpty on return (finish()).
//   unpark():       state_ := kNotified; if it was kParked, the caller owns the
//                   wake-up and calls Seam::wake (enqueue the fiber / futex-wake
//                   the thread).
//
// Invariants (cited as I-Pn by code, models and tests):
//   I-P1 A wake racing with a block is never lost: an unpark() that happens
//        before try_commit() leaves kNotified, so try_commit() fails and the
//        owner does not sleep; one that happens after sees kParked and wakes.
//   I-P2 Exactly one party wakes a blocked owner: only the unpark() whose
//        exchange returned kParked calls Seam::wake.
//   I-P3 A double unpark is harmless: tokens do not accumulate; the second
//        sees kNotified and does nothing.
//   I-P4 park may return spuriously (a stale token from an earlier, raced
//        unpark; a timeout).  Every user loops on its own condition.  Parker
//        storage is type-stable, so a late unpark to an owner that has moved
//        on is only a spurious wake-up, never a use after free.
//   I-P5 The commit of a *fiber* (kEmpty -> kParked) happens after the fiber
//        has left its stack (in the scheduler, core/src/sched.cpp), so a
//        waker on another KLT can never resume a fiber still running.
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
class basic_parker {
 public:
  static constexpr std::uint32_t kEmpty = 0;
  static constexpr std::uint32_t kNotified = 1;
  static constexpr std::uint32_t kParked = 2;

  basic_parker() = default;
  basic_parker(const basic_parker&) = delete;
  basic_parker& operator=(const basic_parker&) = delete;

  // Waiter side.  Returns true when the deadline had passed on return.
  bool park_until(std::uint64_t deadline) noexcept {
    if (!try_consume()) Seam::block(*this, deadline);
    return deadline != kNoDeadline && Seam::now_ns() >= deadline;
  }
  void park() noexcept { park_until(kNoDeadline); }

  // Waker side (any thread, any KLT).  Keeps I-P1..I-P3.
  void unpark() noexcept {
    // acq_rel: release pairs with the acquire in try_consume()/try_commit()/
    // finish() so the waiter sees what the waker wrote before unparking;
    // acquire pairs with try_commit()'s release so a waker that takes over a
    // blocked fiber sees the state the fiber saved before it committed.
    if (state_.exchange(kNotified, mo::acq_rel) == kParked) Seam::wake(*this);
  }

  // --- used by the platform half (Seam::block) ---------------------------
  // Consumes a present token.
  bool try_consume() noexcept {
    // Cheap check first: the common case when parking is "no token".
    if (state_.load(mo::relaxed) != kNotified) return false;  // relaxed: rechecked by the exchange below
    // acquire: pairs with the release half of unpark()'s exchange.
    return state_.exchange(kEmpty, mo::acquire) == kNotified;
  }
  // kEmpty -> kParked.  False when a token arrived meanwhile (it is consumed
  // and the caller must not sleep: I-P1).
  bool try_commit() noexcept {
    std::uint32_t expected = kEmpty;
    // acq_rel: release publishes the waiter's saved state to the waker that
    // will see kParked; acquire (also on failure) pairs with unpark().
    if (state_.compare_exchange_strong(expected, kParked, mo::acq_rel, mo::acquire)) return true;
    FIBER_ASSERT(expected == kNotified, "parker: commit from a state other than empty/notified");
    // An RMW, not a store: a second unpark() may land between the failed CAS
    // and here (it sees kNotified and, by I-P2, does not wake).  A blind store
    // of kEmpty would erase its token without synchronising with it, and the
    // owner could re-check stale state and sleep forever (found by
    // models/parker.cpp I-P3, full search, 2 threads).  acquire: pairs with the
    // release half of every unpark() whose token this consumes.
    state_.exchange(kEmpty, mo::acquire);
    return false;
  }
  // Leaves the parker kEmpty after a block: consumes the token of the unpark
  // that woke us, or cancels a park that ended by timeout/spuriously.
  void finish() noexcept {
    // acquire: pairs with unpark()'s release when a token is consumed.
    state_.exchange(kEmpty, mo::acquire);
  }
  bool is_parked() const noexcept { return state_.load(mo::acquire) == kParked; }  // acquire: pairs with try_commit()
  typename Seam::template atomic<std::uint32_t>& word() noexcept { return state_; }

  // Platform tag: who owns this parker (the native runtime stores its fiber
  // control block here; nullptr means an OS thread).  Set once before use.
  void* owner = nullptr;

 private:
  typename Seam::template atomic<std::uint32_t> state_{kEmpty};
};

}  // namespace fiber::detail
