// fiber/detail/semaphore.hpp - the counting-semaphore algorithm, over the Seam.
//
// basic_semaphore<Seam> backs fiber::counting_semaphore and fiber_sem_t;
// models/ check it under Relacy.  Permits are handed to waiters in FIFO
// order: a post that finds waiters grants the permit to the oldest directly
// (it never becomes visible in the count), so a try_wait can never take a
// permit a queued waiter was owed.
//
// State word word_ (Seam::atomic<uint32_t>):
//   bits 0..30  kCountMask  available permits, 0..kMax (= INT32_MAX)
//   bit  31     kWaiters    the wait queue is non-empty; posts take the slow path
// Zero-filled storage is a valid semaphore with value 0 and no waiters.
//
// Invariants (cited as I-SEMn by code, models and tests):
//   I-SEM1 Whenever lk_ is free: kWaiters set <=> queue non-empty.
//   I-SEM2 kWaiters set => count == 0 (FIFO: no permit idles while a waiter
//          waits).  So with kWaiters set no lock-free CAS can succeed (try_wait
//          needs count > 0, a fast post needs kWaiters clear) and word_ is
//          written only under lk_.
//   I-SEM3 Conservation: every post(n) either adds n to the count or grants
//          some waiters and adds the rest; each permit is consumed once, by a
//          successful try_wait CAS or by one granted node.
//   I-SEM4 FIFO: permits go to queued waiters in queue order, and a waiter
//          that finds count > 0 under lk_ overtakes nobody (I-SEM2).
//   I-SEM5 A poster's writes before post() happen-before the code after the
//          wait() that consumed the permit: release CAS -> acquire CAS on the
//          count (a release sequence covers later RMWs), or grant() release
//          -> granted() acquire.
//   I-SEM6 Timeouts are never early, and a granted node is never reported as
//          ETIMEDOUT (its permit would be lost): the same remove() rule as
//          I-C3/I-C4.  A poster grants only after its last touch of word_
//          and lk_, so a woken waiter may destroy the semaphore at once.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/grant_list.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class basic_semaphore {
 public:
  using node_t = wait_node<Seam>;
  static constexpr std::uint32_t kWaiters = 0x80000000u;
  static constexpr std::uint32_t kCountMask = 0x7fffffffu;
  static constexpr std::uint32_t kMax = kCountMask;  // INT32_MAX
  static_assert((kWaiters & kCountMask) == 0 && (kWaiters | kCountMask) == ~std::uint32_t{0},
                "word_ is exactly the count bits plus the waiters bit");

  basic_semaphore() = default;
  explicit basic_semaphore(std::uint32_t initial) noexcept : word_(initial & kCountMask) {
    FIBER_ASSERT(initial <= kMax, "semaphore: initial value above INT32_MAX");
  }
  basic_semaphore(const basic_semaphore&) = delete;
  basic_semaphore& operator=(const basic_semaphore&) = delete;

  // 0, or EAGAIN when no permit is available.
  int try_wait() noexcept {
    // relaxed: a first guess; the CAS decides.
    std::uint32_t v = word_.load(mo::relaxed);
    for (unsigned iter = 0;; Seam::spin_hint(iter++)) {
      if ((v & kCountMask) == 0) return EAGAIN;  // I-SEM2 covers v == kWaiters
      // acquire: pairs with post()'s release CAS (I-SEM5).
      if (word_.compare_exchange_weak(v, v - 1, mo::acquire, mo::relaxed)) return 0;
    }
  }

  // 0, or ETIMEDOUT once the deadline has passed (never earlier, I-SEM6).
  int wait(std::uint64_t deadline = kNoDeadline) noexcept {
    if (try_wait() == 0) return 0;
    return wait_slow(deadline);
  }

  // Adds n permits (granting waiters first, FIFO).  EOVERFLOW when the count
  // would pass kMax; then the permits not yet granted are not added.
  int post(std::uint32_t n = 1) noexcept {
    if (n == 0) return 0;
    if (n > kMax) return EOVERFLOW;
    grant_list<Seam> woken;
    int rc = 0;
    std::uint32_t v = word_.load(mo::relaxed);  // relaxed: a first guess; the CAS decides
    for (unsigned iter = 0; n != 0; Seam::spin_hint(iter++)) {
      if ((v & kWaiters) != 0) {
        n -= take_waiters(n, woken);
        v = word_.load(mo::relaxed);  // relaxed: re-guess; the CAS decides
        continue;
      }
      if (v > kMax - n) {
        rc = EOVERFLOW;
        break;
      }
      // release: pairs with the acquire CAS of try_wait()/enqueue_or_take()
      // (I-SEM5).  relaxed on failure: we retry.
      if (word_.compare_exchange_weak(v, v + n, mo::release, mo::relaxed)) n = 0;
    }
    woken.grant_all();  // after our last touch of *this (I-SEM6)
    return rc;
  }

  // Available permits (0 while waiters wait: I-SEM2).  A snapshot.
  std::uint32_t value() const noexcept {
    return word_.load(mo::relaxed) & kCountMask;  // relaxed: a snapshot, orders nothing
  }
  bool has_waiters() const noexcept {
    return (word_.load(mo::relaxed) & kWaiters) != 0;  // relaxed: a snapshot, orders nothing
  }
  // For destroy: EBUSY while waiters are queued.
  int check_destroy() noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    return q_.empty() ? 0 : EBUSY;
  }

 private:
  int wait_slow(std::uint64_t deadline) noexcept {
    node_t node(&Seam::current_parker());
    if (enqueue_or_take(node)) return 0;
    Seam::note_wait(*node.parker, wait_kind::semaphore, this);
    if (node.wait(deadline)) return 0;  // granted: the permit is ours (I-SEM3)
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      if (q_.remove(&node)) {
        // relaxed: with kWaiters set only lk_ holders write word_ and count
        // is 0 (I-SEM2); lk_ orders this store for them.
        if (q_.empty()) word_.store(0, mo::relaxed);  // keeps I-SEM1
        return ETIMEDOUT;
      }
    }
    // A poster popped us (I-W2): wait for its grant; the permit is ours.
    const bool granted = node.wait(kNoDeadline);
    FIBER_ASSERT(granted, "semaphore: popped node never granted (I-W2)");
    (void)granted;
    return 0;
  }

  // Under lk_: take a permit if one is free (nobody is queued: I-SEM2), else
  // set kWaiters and queue node in the same section (I-SEM1).  True if taken.
  bool enqueue_or_take(node_t& node) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    std::uint32_t v = word_.load(mo::relaxed);  // relaxed: a first guess; the CASes decide
    for (unsigned iter = 0;; Seam::spin_hint(iter++)) {
      if ((v & kCountMask) != 0) {
        // acquire: pairs with post()'s release CAS (I-SEM5).
        if (word_.compare_exchange_weak(v, v - 1, mo::acquire, mo::relaxed)) return true;
      } else if (v == kWaiters) {
        q_.push_back(&node);
        return false;
      } else if (word_.compare_exchange_weak(v, kWaiters, mo::relaxed, mo::relaxed)) {
        // relaxed: races only with fast-path posts (0 -> n); once kWaiters is
        // set they take_waiters() under lk_, which orders them after our push.
        q_.push_back(&node);
        return false;
      }
    }
  }

  // Under lk_: pop up to n waiters into `woken`; clear kWaiters if the queue
  // drains (I-SEM1).  Returns how many were popped (0 if the last waiter
  // timed out meanwhile).
  std::uint32_t take_waiters(std::uint32_t n, grant_list<Seam>& woken) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    std::uint32_t taken = 0;
    while (taken < n) {
      node_t* w = q_.pop_front();
      if (w == nullptr) break;
      woken.push_back(w);
      ++taken;
    }
    // The caller saw kWaiters without lk_; a timed-out waiter may have
    // cleared it since and a fast post added permits, so clear only a set
    // kWaiters (stable under lk_: I-SEM2).  relaxed: count is 0 then and only
    // lk_ holders write word_; the permits travel by grant(), not word_.
    if (q_.empty() && word_.load(mo::relaxed) == kWaiters) word_.store(0, mo::relaxed);
    return taken;
  }

  typename Seam::template atomic<std::uint32_t> word_{0};  // I-SEM1, I-SEM2
  basic_spinlock<Seam> lk_;                                // guards q_ (I-W1)
  wait_queue<Seam> q_;                                     // guarded by lk_
};

}  // namespace fiber::detail
