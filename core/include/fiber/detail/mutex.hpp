// fiber/detail/mutex.hpp - the mutex algorithm, written once over the Seam.
//
// basic_mutex<Seam, K> is what fiber::mutex (mutex.hpp) and fiber_mutex_t
// (core/src/sync.cpp) run natively and what models/ check under Relacy.  It
// touches shared state only through Seam (seam.hpp); a waiter parks through
// its own parker (parker.hpp) on a wait_node on its stack (wait_queue.hpp).
// The design follows Go's sync.Mutex (normal and starvation modes), with a
// count instead of Go's 1 ms so that the bound is model-checked; see
// papers/design.md, "mutex: spinning, barging and the starvation bound".
//
// State word state_ (Seam::atomic<uint32_t>), zero = unlocked, no waiter:
//   kLocked   owned.
//   kQueued   the wait queue is non-empty (I-M2).
//   kWoken    a waiter was popped and woken by an unlock and has not yet
//             retried: it will take the mutex or queue again, so unlocks wake
//             nobody else meanwhile (one waiter in flight at a time).
//   kHandoff  starvation mode: K barges happened since a waiter last became
//             the owner; only a waiter may become the next owner.
//   count     (bits 4..) barges since a waiter last became the owner, counted
//             only while waiters exist; kHandoff is set by the K-th.
// "Waiters" are the queued nodes plus the woken one.  A *barge* is an
// acquisition by a party that is not a waiter: the fast path, try_lock, the
// bounded spin, or a first attempt under lk_.
//
// Normal mode (barging): an unlock releases the mutex (kLocked cleared) and,
// if waiters are queued and none is in flight, pops the head and wakes it
// (kWoken); the woken waiter then competes with new lockers.  A releasing
// party may re-acquire at once, so a contended mutex runs at the rate of
// critical sections, not of context switches (no lock convoy).  A woken
// waiter that loses goes back to the *head* of the queue.
// Starvation mode (hand-off): once K barges happened, kHandoff shuts bargers
// out; the next unlock grants the mutex to the head without releasing it (or,
// with a waiter in flight, leaves it to that one).  Any waiter's acquisition
// clears kHandoff and the count: the mode lasts one ownership transfer.
//
// Spinning: before queueing (and after each wake-up), a locker retries for at
// most Seam::kMutexSpinLimit rounds, and only while Seam::spin_useful(owner)
// says the owner is running on another KLT (never on one KLT, never when the
// owner is parked or preempted: Seam, native_seam.cpp) and bargers are not
// shut out.
//
// Uncontended cost: lock is one CAS 0->kLocked (acquire), unlock one CAS
// kLocked->0 (release), plus the caller's id (Seam::self_id) and a relaxed
// owner_ store each.
//
// Invariants (cited as I-Mn by code, models and tests):
//   I-M1 Mutual exclusion.  A party becomes the owner only by a CAS that sets
//        kLocked on a state without it (a barge needs kHandoff clear too; the
//        woken waiter does not), or by being granted its node by the owner's
//        unlock in starvation mode, which keeps kLocked set.
//   I-M2 Whenever lk_ is free: queue non-empty <=> kQueued.  Queue and bit
//        change together, only under lk_.  Also (no lost wake-up): kQueued
//        and not kLocked => kWoken; kHandoff => kQueued or kWoken; and
//        state_ == 0 <=> unlocked with no waiter at all.
//   I-M3 Bounded overtaking (the fairness bound).  (a) Waiters own the mutex
//        in arrival order: only the queue's head is woken or granted, and a
//        woken waiter that loses re-enters at the head.  (b) While waiters
//        exist, at most K barges happen between two consecutive acquisitions
//        by waiters (and before the first): the K-th sets kHandoff.  So a
//        party that queues behind p waiters owns the mutex after at most
//        p + (p + 1) * K acquisitions by others.  K = Seam::kMutexBargeLimit
//        unless given (native 64: about 2 us of tight critical sections;
//        models 1 and 2).
//   I-M4 owner_ holds Seam::self_id() of the owner from just after it
//        acquires until its unlock starts, and 0 otherwise (also between a
//        grant and the grantee's first step).  Only the owner writes owner_,
//        so relaxed accesses suffice: a party that reads its own id wrote it
//        itself and has not yet cleared it (read-read coherence), i.e. it owns
//        the mutex; any other party can never read its own id there.
//   I-M5 Each critical section happens-before the next: an unlock's release
//        (its CAS or its store under lk_) -> the next owner's acquire CAS;
//        wait_node::grant (release) -> granted() (acquire) for a hand-off.
//   I-M6 An unlock's last touch of the mutex precedes the moment another party
//        can own it: the CAS that clears kLocked is its last access; the
//        hand-off releases lk_ before wait_node::grant; a wake-up's grant
//        touches only the popped node and its parker (I-W3).  So a new owner
//        may unlock, destroy and free the mutex at once.
//
// Trace (Seam::trace_lock, seam.hpp): each acquisition (how: barge, woken,
// granted), release (still the owner), queueing (under lk_, in queue order)
// and pop (under lk_) is a lock event of the native trace, from which
// tools/trace_check.py checks I-M1 and I-M3 on native runs; one untaken branch
// per hook when tracing is off, nothing under Relacy.  Seam::mutex_defect_on
// plants the checker's controls (test knobs 23-25), on slow paths only.
//
// There is no timed lock: waiters leave only by owning the mutex, which I-M2
// and the count reset use.  Lock order: lk_ is a leaf (queue work and state_
// updates only; grants happen after it is released).
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam, unsigned K = Seam::kMutexBargeLimit>
class basic_mutex {
  static_assert(K >= 1 && K < (1u << 27), "barge limit out of range");

 public:
  static constexpr std::uint32_t kUnlocked = 0;
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kQueued = 2;
  static constexpr std::uint32_t kWoken = 4;
  static constexpr std::uint32_t kHandoff = 8;
  static constexpr std::uint32_t kBargeOne = 16;
  static constexpr std::uint32_t kBargeMask = ~(kBargeOne - 1);
  static constexpr unsigned kBargeLimit = K;

  basic_mutex() = default;
  basic_mutex(const basic_mutex&) = delete;
  basic_mutex& operator=(const basic_mutex&) = delete;

  // 0, or EDEADLK when the caller already owns the mutex.
  int lock() noexcept {
    std::uint32_t expected = kUnlocked;
    // acquire: pairs with the release that freed the mutex (I-M5).  relaxed
    // on failure: the slow path re-reads.
    if (state_.compare_exchange_strong(expected, kLocked, mo::acquire, mo::relaxed)) {
      set_owner(Seam::self_id());
      Seam::trace_lock(this, lock_ev::acquire, lock_by_barge);  // trace: one untaken branch when off
      return 0;
    }
    const std::uint64_t self = Seam::self_id();
    if (owner_.load(mo::relaxed) == self) return EDEADLK;  // relaxed: I-M4
    return lock_slow(self);
  }

  // 0, or EBUSY when the mutex is owned (by anyone, the caller included) or,
  // in starvation mode, reserved for a waiter (I-M3).  A success is a barge.
  int try_lock() noexcept {
    std::uint32_t s = kUnlocked;
    // acquire: pairs with the release that freed the mutex (I-M5).
    if (!state_.compare_exchange_strong(s, kLocked, mo::acquire, mo::relaxed) && !try_take(s, false))
      return EBUSY;
    set_owner(Seam::self_id());
    Seam::trace_lock(this, lock_ev::acquire, lock_by_barge);
    return 0;
  }

  // 0, or EPERM when the caller does not own the mutex.
  int unlock() noexcept {
    if (owner_.load(mo::relaxed) != Seam::self_id()) return EPERM;  // relaxed: I-M4
    Seam::trace_lock(this, lock_ev::release);  // still the owner: ordered by I-M5 like its section
    // relaxed: the release below (CAS, or lk_ + grant) orders this store
    // before the next owner's set_owner(), so it cannot be overwritten out of
    // order (I-M4).
    owner_.store(0, mo::relaxed);
    std::uint32_t expected = kLocked;
    // release: pairs with the next owner's acquire CAS (I-M5); our last touch
    // of *this on this path (I-M6).  relaxed on failure: unlock_slow re-reads
    // through its own CAS or lk_.
    if (state_.compare_exchange_strong(expected, kUnlocked, mo::release, mo::relaxed)) return 0;
    unlock_slow(expected);
    return 0;
  }

  // True when the calling party owns the mutex (I-M4).
  bool held_by_caller() const noexcept {
    return owner_.load(mo::relaxed) == Seam::self_id();  // relaxed: I-M4
  }

  // For destroy: EBUSY when owned or waited on (I-M2: 0 <=> free, no waiter).
  int check_destroy() const noexcept {
    // acquire: pairs with the release that freed the mutex, so a destroyer
    // that sees it free also sees the last critical section.
    return state_.load(mo::acquire) == kUnlocked ? 0 : EBUSY;
  }

  // Diagnostics and tests only: a racy snapshot.
  std::uint32_t state_hint() const noexcept { return state_.load(mo::relaxed); }  // relaxed: a hint
  // Diagnostics (dump, deadlock detector): the owner's self_id or 0 (I-M4).
  std::uint64_t owner_hint() const noexcept { return owner_.load(mo::relaxed); }  // relaxed: a hint

 private:
  using node_t = wait_node<Seam>;
  // node_t::data of a granted node: what the unlock gave it.
  static constexpr std::uintptr_t kGrantWake = 1;   // normal mode: retry (as the kWoken waiter)
  static constexpr std::uintptr_t kGrantOwner = 2;  // starvation mode: you own the mutex

  void set_owner(std::uint64_t self) noexcept {
    owner_.store(self, mo::relaxed);  // relaxed: only the owner writes owner_ (I-M4)
  }

  // May a party take the mutex from state s?  The woken waiter only needs it
  // unlocked; a barger also needs starvation mode off (I-M1, I-M3).
  static bool can_take(std::uint32_t s, bool woken) noexcept {
    return (s & (woken ? kLocked : (kLocked | kHandoff))) == 0;
  }
  // The state after taking it from s (can_take(s, woken) holds).
  static std::uint32_t taken(std::uint32_t s, bool woken) noexcept {
    // A waiter owns it: no longer in flight; the count and the mode restart (I-M3).
    if (woken) return (s | kLocked) & ~(kWoken | kHandoff | kBargeMask);
    if ((s & (kQueued | kWoken)) == 0) return s | kLocked;  // no waiter: not counted
    s += kBargeOne;                                          // a barge past waiters (I-M3 b)
    if ((s >> 4) >= K) s |= kHandoff;                        // the K-th: starvation mode
    // Planted defect (test knob 24; tested at the K-th barge only): the switch is never taken.
    if ((s & kHandoff) != 0 && Seam::mutex_defect_on(mutex_defect::no_starvation)) s &= ~kHandoff;
    return s | kLocked;
  }
  // CAS loop from the observed state s; false once it cannot take.
  bool try_take(std::uint32_t s, bool woken) noexcept {
    while (can_take(s, woken)) {
      // acquire: pairs with the release that freed the mutex (I-M5).
      if (state_.compare_exchange_strong(s, taken(s, woken), mo::acquire, mo::relaxed)) return true;
    }
    return false;
  }

  // Bounded spin: retries while the owner runs on another KLT (I-M3 is kept:
  // every success is a counted barge, or the woken waiter's turn).
  bool spin(bool woken) noexcept {
    for (unsigned i = 0; i < Seam::kMutexSpinLimit; ++i) {
      // relaxed: a guess; try_take's CAS decides.
      const std::uint32_t s = state_.load(mo::relaxed);
      if (try_take(s, woken)) return true;
      if (!woken && (s & kHandoff) != 0) return false;  // reserved for a waiter
      if (!Seam::spin_useful(owner_.load(mo::relaxed))) return false;  // relaxed: a hint (I-M4)
      Seam::spin_hint(i);
    }
    return false;
  }

  int lock_slow(std::uint64_t self) noexcept {
    unsigned how = lock_by_barge;  // for the trace (Seam::trace_lock)
    if (Seam::mutex_defect_on(mutex_defect::double_owner)) {
      set_owner(self);  // planted defect (test knob 25): in without the mutex, breaking I-M1
      Seam::trace_lock(this, lock_ev::acquire, how);
      return 0;
    }
    if (!spin(false)) {
      node_t node(&Seam::current_parker());
      how = wait_turn(node);
    }
    set_owner(self);
    Seam::trace_lock(this, lock_ev::acquire, how);
    return 0;
  }

  // Queue, park, and retry when woken, until we own the mutex.  Returns how
  // we became the owner (lock_by_*, seam.hpp).
  unsigned wait_turn(node_t& node) noexcept {
    bool woken = false;
    for (;;) {
      if (enqueue_or_acquire(node, woken)) return woken ? lock_by_woken : lock_by_barge;
      const bool granted = node.wait(kNoDeadline);
      FIBER_ASSERT(granted, "mutex: untimed wait returned without a grant");
      (void)granted;
      // The grant's release -> our acquire in wait() orders this read (I-M5).
      if (node.data.load() == kGrantOwner) return lock_by_granted;  // hand-off (I-M1, I-M3)
      // relaxed: the node is popped and granted; nobody else touches it now.
      node.state_.store(node_t::kWaiting, mo::relaxed);
      woken = true;
      if (spin(true)) return lock_by_woken;
    }
  }

  // Under lk_: take the mutex if we may, else queue `node` - at the tail, or
  // at the head when we are the woken waiter that lost (I-M3 a) - and set
  // kQueued in the same section (I-M2).  True when the mutex was acquired.
  bool enqueue_or_acquire(node_t& node, bool woken) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    // relaxed: a first guess; the CASes below re-read and decide.
    std::uint32_t s = state_.load(mo::relaxed);
    for (;;) {
      if (can_take(s, woken)) {
        // acquire: pairs with the release that freed the mutex (I-M5).
        if (state_.compare_exchange_strong(s, taken(s, woken), mo::acquire, mo::relaxed)) return true;
        continue;
      }
      // relaxed: the owner we saw will unlock; its unlock reads kQueued
      // (its CAS fails on the changed word, or it takes lk_ after us), and
      // I-M2's "kQueued and unlocked => kWoken" holds on every value.
      const std::uint32_t n = (s | kQueued) & ~(woken ? kWoken : 0u);
      if (state_.compare_exchange_strong(s, n, mo::relaxed, mo::relaxed)) break;
    }
    if (!woken) Seam::note_wait(*node.parker, wait_kind::mutex, this);  // diagnostics; models: queued now
    if (woken)
      q_.push_front(&node);
    else
      q_.push_back(&node);
    // Under lk_: the trace numbers queue events in queue order.  s is the state
    // our CAS replaced: kWoken there (not ours) is a waiter in flight ahead of us.
    Seam::trace_lock(this, lock_ev::queue,
                     woken ? lock_queued_head : ((s & kWoken) != 0 ? lock_queued_inflight : 0u), &node, K);
    return false;
  }

  // The fast unlock failed: waiters exist (or the state moved meanwhile).
  void unlock_slow(std::uint32_t s) noexcept {
    // Nobody to wake: a woken waiter is in flight (it will take the mutex or
    // queue again), or no waiter is queued.
    while ((s & kWoken) != 0 || (s & kQueued) == 0) {
      // release: pairs with the next owner's acquire CAS (I-M5); last touch (I-M6).
      if (state_.compare_exchange_strong(s, s & ~kLocked, mo::release, mo::relaxed)) return;
    }
    wake_or_hand_off();
  }

  // Waiters are queued and none is in flight: pop the head and wake it
  // (normal mode) or grant it the mutex (starvation mode).
  void wake_or_hand_off() noexcept {
    node_t* next = nullptr;
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      // relaxed: with kLocked ours and kWoken clear, nobody else writes
      // state_ now (a barger's CAS needs kLocked clear, a queuer holds lk_),
      // so this reads the current value and the store below loses nothing.
      const std::uint32_t s = state_.load(mo::relaxed);
      FIBER_ASSERT((s & kQueued) != 0 && (s & (kWoken | kLocked)) == kLocked,
                   "mutex: wake with no queued waiter or one in flight (I-M2)");
      next = Seam::mutex_defect_on(mutex_defect::wake_tail) ? pop_tail() : q_.pop_front();
      std::uint32_t n = 0;
      Seam::trace_lock(this, lock_ev::pop, (s & kHandoff) != 0 ? lock_popped_granted : lock_popped_woken, next);
      if ((s & kHandoff) != 0) {
        n = s & ~(kHandoff | kBargeMask);  // stays locked: ownership passes to next (I-M1, I-M3)
        next->data.store(kGrantOwner);
      } else {
        n = (s & ~kLocked) | kWoken;  // released; next is the waiter in flight
        next->data.store(kGrantWake);
      }
      if (q_.empty()) n &= ~kQueued;  // I-M2
      // release: pairs with a barger's acquire CAS when this frees the mutex (I-M5).
      state_.store(n, mo::release);
    }
    node_t::grant(next);  // after lk_ is released: our last touch of *this was lk_ (I-M6)
  }

  // Planted defect (test knob 23), under lk_: the tail instead of the head (breaks I-M3 a).
  node_t* pop_tail() noexcept {
    node_t* t = q_.back();
    q_.remove(t);
    return t;
  }

  typename Seam::template atomic<std::uint32_t> state_{kUnlocked};  // I-M1, I-M2
  basic_spinlock<Seam> lk_;                                         // guards q_ (I-W1)
  wait_queue<Seam> q_;                                              // guarded by lk_
  typename Seam::template atomic<std::uint64_t> owner_{0};          // I-M4
};

}  // namespace fiber::detail
