// fiber/detail/idle.hpp - idle KLTs sleep in the kernel and are woken when work arrives.
//
// An eventcount (Vyukov; also folly's EventCount): a KLT that found no work
// announces itself (sleepers_), snapshots epoch_, re-checks every queue, and
// only then sleeps on epoch_.  A producer publishes work, then checks
// sleepers_ and, if any, bumps epoch_ and wakes one.  This is the
// store-buffering shape: producer "store work; load sleepers" against sleeper
// "store sleepers; load work".  Both sides put a seq_cst fence between their
// store and their load, so at least one sees the other (I-I1).  With only
// release/acquire both can miss and a KLT sleeps with work queued
// (papers/platform.md: Relacy finds that in 2 iterations; models/idle.cpp).
//
//   I-I1 No lost wake-up: if work is published while a KLT is between
//        prepare_sleep() and sleep(), either its re-check sees the work or the
//        producer's notify() bumps the epoch it sleeps on.
//   I-I2 notify() is cheap when nobody sleeps: one fence and one load.
//
// The I/O poller woven in (Poll, papers/design.md "Blocking system calls"):
// at most one sleeper sleeps in the poller instead of on epoch_ (natively in
// epoll_wait on the descriptors fibers wait for, so readiness wakes the KLT
// that will run the woken fibers, with no hop through another thread).  A
// futex wake does not reach it, so notify() kicks it (an eventfd write) when
// the futex woke fewer sleepers than asked and a sleeper holds the poll role:
//
//   I-I3 No lost wake-up in the poller: a sleeper that claims the poll role
//        and then sees the epoch unchanged sleeps there; a producer that
//        bumps the epoch and then woke fewer than asked reads the role.
//        Role and epoch are seq_cst on both sides (the store-buffering shape
//        again), so the sleeper sees the bump or the producer sees the role
//        and kicks.  A kick is sticky until a poll sleep takes it (natively
//        an eventfd edge waiting on epoll's ready list), so a kick that
//        comes before the sleep begins still ends it.
//   I-I4 One poll sleeper at a time (a CAS claims the role), so the kick,
//        which wakes whoever sleeps in the poller, is never spent on a
//        second one while the first sleeps on.
//
// Poll (native: core/src/idle_poll.hpp; models/idle.cpp's stands in for it):
//   bool available();                 may a sleeper sleep in the poller now
//   atomic<uint32_t>& role();         the role word (1: held), read by the
//                                     native poller thread too, hence the
//                                     Poll's storage; the protocol is here
//   void wait(std::uint64_t deadline); until a kick, readiness, the deadline
//                                     or spuriously
//   void kick();                      ends the current or next wait (sticky)
// no_poll: every sleeper sleeps on epoch_ (the simulator, the monitor's deep
// sleep).
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

// Every sleeper on the eventcount: no poller.
template <class Seam>
struct no_poll {
  static constexpr bool available() noexcept { return false; }
  typename Seam::template atomic<std::uint32_t>& role() noexcept { return role_; }
  void wait(std::uint64_t) noexcept {}
  void kick() noexcept {}
  typename Seam::template atomic<std::uint32_t> role_{0};  // never claimed
};

template <class Seam, class Poll = no_poll<Seam>>
class idle_set {
 public:
  // Sleeper: 1) key = prepare_sleep(); 2) re-check for work; 3) if work was
  // found cancel_sleep() else sleep(key, deadline).
  std::uint32_t prepare_sleep() noexcept {
    sleepers_.fetch_add(1, mo::seq_cst);  // seq_cst: the "store sleepers" of the SB pair
    Seam::fence(mo::seq_cst);             // forbids the re-check's loads moving above the announce (I-I1)
    return epoch_.load(mo::acquire);      // acquire: pairs with notify()'s release bump
  }
  void cancel_sleep() noexcept {
    sleepers_.fetch_sub(1, mo::relaxed);  // relaxed: only an estimate for notify()
  }
  void sleep(std::uint32_t key, std::uint64_t deadline) noexcept {
    if (poll_.available() && claim_poll()) {
      // seq_cst: the "load epoch" after the "store role" (I-I3).
      if (epoch_.load(mo::seq_cst) == key) poll_.wait(deadline);
      poll_.role().store(0, mo::relaxed);  // relaxed: a kick that reads a stale 1 is only spurious (I-I3)
    } else {
      Seam::os_wait(epoch_, key, deadline);
    }
    sleepers_.fetch_sub(1, mo::relaxed);  // relaxed: only an estimate for notify()
  }

  // Producer: call after publishing work (a run-queue push).
  void notify_one() noexcept { notify(1); }
  void notify_all() noexcept { notify(~std::uint32_t{0} >> 1); }

  std::uint32_t sleepers_hint() const noexcept { return sleepers_.load(mo::relaxed); }  // relaxed: stats

 private:
  void notify(std::uint32_t count) noexcept {
    Seam::fence(mo::seq_cst);  // forbids the sleepers_ load moving above the work's publication (I-I1)
    if (sleepers_.load(mo::relaxed) == 0) return;  // relaxed: ordered by the fence above
    // release: pairs with prepare_sleep()'s acquire load; seq_cst: the
    // "store epoch" before the role's load (I-I3).
    epoch_.fetch_add(1, mo::seq_cst);
    std::uint32_t woken = Seam::os_wake(epoch_, count);
    if (woken < count && poll_.role().load(mo::seq_cst) != 0) poll_.kick();  // seq_cst: I-I3
  }

  // I-I4: one poll sleeper.  seq_cst: the "store role" of I-I3.
  bool claim_poll() noexcept {
    std::uint32_t free = 0;
    return poll_.role().compare_exchange_strong(free, 1, mo::seq_cst, mo::relaxed);
  }

  typename Seam::template atomic<std::uint32_t> epoch_{0};
  typename Seam::template atomic<std::uint32_t> sleepers_{0};
  Poll poll_;
};

}  // namespace fiber::detail
