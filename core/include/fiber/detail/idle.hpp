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
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
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
    Seam::os_wait(epoch_, key, deadline);
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
    epoch_.fetch_add(1, mo::release);  // release: pairs with prepare_sleep()'s acquire load
    Seam::os_wake(epoch_, count);
  }

  typename Seam::template atomic<std::uint32_t> epoch_{0};
  typename Seam::template atomic<std::uint32_t> sleepers_{0};
};

}  // namespace fiber::detail
