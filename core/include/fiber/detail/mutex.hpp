// fiber/detail/mutex.hpp - the mutex algorithm, written once over the Seam.
//
// basic_mutex<Seam> is what fiber::mutex (mutex.hpp) and fiber_mutex_t
// (core/src/sync.cpp) run natively and what models/ check under Relacy.  It
// touches shared state only through Seam (seam.hpp); a waiter parks through
// its own parker (parker.hpp) on a wait_node on its stack (wait_queue.hpp).
//
// State word state_ (Seam::atomic<uint32_t>):
//   kUnlocked  = 0  free; the wait queue is empty (I-M2)
//   kLocked    = 1  owned; no waiter is queued
//   kContended = 2  owned; waiters are queued, so the owner's unlock must take
//                   the slow path and hand the mutex to the queue's head
// Only these three values occur (I-M1).  Zero-filled storage is a valid,
// unlocked mutex with an empty queue (the C API's static initialiser).
//
// Uncontended cost: lock is one CAS kUnlocked->kLocked (acquire), unlock is
// one CAS kLocked->kUnlocked (release), plus a relaxed owner_ store each.
//
// Fairness: strict FIFO hand-off.  An unlock that finds waiters pops the head
// of the queue and grants it the mutex directly; state_ never passes through
// kUnlocked on the way (I-M3), so a barging locker on the fast path cannot
// overtake a queued waiter, and no waiter starves.  The cost is the classic
// lock convoy: once a queue forms, every later acquisition is a hand-off that
// waits for the grantee to be scheduled (a fiber switch or a futex wake-up),
// even when the releasing party would like to re-acquire at once, so a
// contended mutex runs at the rate of context switches rather than of
// critical sections.  Rejected: barging (glibc, abseil) - faster under
// contention but lets a waiter starve; the contract (fiber.h) asks for FIFO.
//
// Invariants (cited as I-Mn by code, models and tests):
//   I-M1 Mutual exclusion.  A party becomes the owner only by the CAS
//        kUnlocked->kLocked (fast path, or slow path under lk_) or by being
//        granted its wait_node by the unlocking owner; state_ is one of
//        kUnlocked/kLocked/kContended.
//   I-M2 Whenever lk_ is free: queue non-empty <=> state_ == kContended.  Hence
//        state_ == kUnlocked implies the queue is empty.  Lockers set
//        kContended and enqueue in one lk_ section; an unlocker pops and
//        rewrites state_ (kContended, or kLocked when the queue drained) in one.
//   I-M3 Strict FIFO hand-off: a queued waiter is granted ownership in queue
//        order and state_ stays locked across the hand-off, so a fast-path
//        CAS (which needs kUnlocked) never overtakes it.
//   I-M4 owner_ holds Seam::self_id() of the owner from just after it
//        acquires until its unlock starts, and 0 otherwise (also between a
//        grant and the grantee's first step).  Only the owner writes owner_,
//        so relaxed accesses suffice: a party that reads its own id wrote it
//        itself and has not yet cleared it (read-read coherence), i.e. it owns
//        the mutex; any other party can never read its own id there.
//   I-M5 Each critical section happens-before the next: fast unlock's release
//        CAS -> fast lock's acquire CAS; slow paths through lk_ (release/
//        acquire) and through wait_node::grant (release) -> granted()
//        (acquire) for a hand-off.
//   I-M6 An unlock's last touch of the mutex precedes the moment another party
//        can own it: the fast-path CAS is its last access; the slow path
//        releases lk_ before wait_node::grant.  So a new owner may unlock,
//        destroy and free the mutex at once.
//
// There is no timed lock: only unlockers remove queued nodes, which I-M2 uses.
// Lock order: basic_mutex::lk_ is a leaf (only wait_queue work and state_
// stores happen under it; grants are issued after it is released).
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class basic_mutex {
 public:
  static constexpr std::uint32_t kUnlocked = 0;
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kContended = 2;

  basic_mutex() = default;
  basic_mutex(const basic_mutex&) = delete;
  basic_mutex& operator=(const basic_mutex&) = delete;

  // 0, or EDEADLK when the caller already owns the mutex.
  int lock() noexcept {
    const std::uint64_t self = Seam::self_id();
    std::uint32_t expected = kUnlocked;
    // acquire: pairs with unlock()'s release CAS / unlock_slow()'s lk_
    // release; the previous critical section happens-before ours (I-M5).
    // relaxed on failure: we either return or retry under lk_.
    if (state_.compare_exchange_strong(expected, kLocked, mo::acquire, mo::relaxed)) {
      set_owner(self);
      return 0;
    }
    if (owner_.load(mo::relaxed) == self) return EDEADLK;  // relaxed: I-M4
    return lock_slow(self);
  }

  // 0, or EBUSY when the mutex is owned (by anyone, the caller included).
  int try_lock() noexcept {
    std::uint32_t expected = kUnlocked;
    // acquire: pairs with the release that freed the mutex (I-M5).
    if (!state_.compare_exchange_strong(expected, kLocked, mo::acquire, mo::relaxed)) return EBUSY;
    set_owner(Seam::self_id());
    return 0;
  }

  // 0, or EPERM when the caller does not own the mutex.
  int unlock() noexcept {
    if (owner_.load(mo::relaxed) != Seam::self_id()) return EPERM;  // relaxed: I-M4
    // relaxed: the release CAS (or lk_ release + grant) below orders this
    // store before the next owner's set_owner(), so it cannot be overwritten
    // out of order (I-M4).
    owner_.store(0, mo::relaxed);
    std::uint32_t expected = kLocked;
    // release: pairs with the next locker's acquire CAS (I-M5); the CAS is
    // our last touch of *this on the fast path (I-M6).  relaxed on failure:
    // unlock_slow() synchronises through lk_.
    if (state_.compare_exchange_strong(expected, kUnlocked, mo::release, mo::relaxed)) return 0;
    unlock_slow();
    return 0;
  }

  // True when the calling party owns the mutex (I-M4).
  bool held_by_caller() const noexcept {
    return owner_.load(mo::relaxed) == Seam::self_id();  // relaxed: I-M4
  }

  // For destroy: EBUSY when owned or waited on (I-M2: kUnlocked => no waiter).
  int check_destroy() const noexcept {
    // acquire: pairs with the release that freed the mutex, so a destroyer
    // that sees kUnlocked also sees the last critical section.
    return state_.load(mo::acquire) == kUnlocked ? 0 : EBUSY;
  }

  // Diagnostics and tests only: a racy snapshot.
  std::uint32_t state_hint() const noexcept { return state_.load(mo::relaxed); }  // relaxed: a hint
  // Diagnostics (dump, deadlock detector): the owner's self_id or 0 (I-M4).
  std::uint64_t owner_hint() const noexcept { return owner_.load(mo::relaxed); }  // relaxed: a hint

 private:
  using node_t = wait_node<Seam>;

  void set_owner(std::uint64_t self) noexcept {
    owner_.store(self, mo::relaxed);  // relaxed: only the owner writes owner_ (I-M4)
  }

  int lock_slow(std::uint64_t self) noexcept {
    node_t node(&Seam::current_parker());
    Seam::note_wait(*node.parker, wait_kind::mutex, this);
    if (!enqueue_or_acquire(node)) {
      // Queued: the unlocker hands the mutex over with grant() (I-M3).
      const bool granted = node.wait(kNoDeadline);
      FIBER_ASSERT(granted, "mutex: untimed wait returned without a grant");
      (void)granted;
    }
    set_owner(self);
    return 0;
  }

  // Under lk_: take the mutex if it is free, else mark it contended and queue
  // `node` in the same section (I-M2).  True when the mutex was acquired.
  bool enqueue_or_acquire(node_t& node) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    // relaxed: a first guess; the CASes below re-read and decide.
    std::uint32_t s = state_.load(mo::relaxed);
    for (unsigned iter = 0;; Seam::spin_hint(iter++)) {
      if (s == kUnlocked) {
        // acquire: pairs with a fast-path unlock()'s release CAS (I-M5).  The
        // queue is empty (I-M2), so nobody queued is overtaken (I-M3).
        if (state_.compare_exchange_weak(s, kLocked, mo::acquire, mo::relaxed)) return true;
      } else if (s == kContended) {
        q_.push_back(&node);
        return false;
      } else if (state_.compare_exchange_weak(s, kContended, mo::relaxed, mo::relaxed)) {
        // relaxed: races only with the owner's fast-path unlock CAS
        // (kLocked->kUnlocked).  Having won, that CAS fails and the owner
        // takes unlock_slow(), whose lk_ acquire pairs with our lk_ release
        // after the push below (I-M2, I-M5).
        q_.push_back(&node);
        return false;
      }
    }
  }

  // The owner found kContended: hand the mutex to the queue's head (I-M3).
  void unlock_slow() noexcept {
    node_t* next = nullptr;
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      next = q_.pop_front();
      FIBER_ASSERT(next != nullptr, "mutex: contended with an empty queue (I-M2)");
      if (next == nullptr) {
        // Unreachable while I-M2 holds; keep the mutex usable anyway.
        state_.store(kUnlocked, mo::release);  // release: pairs with the next acquire CAS
        return;
      }
      // State stays locked: ownership passes to `next` (I-M1, I-M3).  relaxed:
      // the grantee reads it after grant()'s release (I-M5), lockers under
      // lk_, and fast-path CASes cannot succeed on a locked state.
      if (q_.empty()) state_.store(kLocked, mo::relaxed);
    }
    node_t::grant(next);  // after lk_ is released: our last touch was lk_ (I-M6)
  }

  typename Seam::template atomic<std::uint32_t> state_{kUnlocked};  // I-M1
  basic_spinlock<Seam> lk_;                                         // guards q_ (I-W1)
  wait_queue<Seam> q_;                                              // guarded by lk_
  typename Seam::template atomic<std::uint64_t> owner_{0};          // I-M4
};

}  // namespace fiber::detail
