// fiber/detail/condvar.hpp - the condition-variable algorithm, over the Seam.
//
// basic_condvar<Seam> backs fiber::condition_variable(_any) and fiber_cond_t;
// models/ check it under Relacy.  State: a spinlock lk_ and a FIFO wait_queue
// of wait_nodes living on the waiters' stacks.  No sequence word and no
// futex: a waiter is woken only by a grant of its own node, so a wait never
// returns 0 without a notify (no spurious wake-ups, stronger than POSIX).
//
// wait(m, deadline):
//   1. enqueue our node under lk_ while still holding the user mutex (I-C1);
//   2. release the user mutex;
//   3. park until the node is granted or the deadline passes (wait_node::wait);
//   4. on timeout take lk_ and remove() the node: success means ETIMEDOUT;
//      failure means a notifier already popped it (I-W2), so we wait for its
//      grant and report a signal (I-C4);
//   5. re-acquire the user mutex (always, also on timeout).
// notify_one pops the head and grants it; notify_all pops every node.  Both
// grant after releasing lk_ (grant_list.hpp), so a woken waiter may destroy
// the condvar at once (I-C5).
//
// Invariants (cited as I-Cn by code, models and tests):
//   I-C1 No lost wake-up: a waiter is in the queue before it releases the user
//        mutex.  A notifier that changed the predicate under that mutex (and
//        so acquired it after the waiter released it) takes lk_ after the
//        waiter's enqueue (lk_ release -> mutex unlock -> mutex lock -> lk_
//        acquire), and therefore sees the node.
//   I-C2 "Waiting when the notify is issued" means "queued under lk_ before the
//        notifier took lk_".  notify_one grants exactly one such waiter (the
//        oldest) if there is any; notify_all grants all of them and none that
//        enqueue later.  A notify with an empty queue is a no-op (no token is
//        stored for future waiters, as with pthreads).
//   I-C3 Timeouts are never early: ETIMEDOUT is returned only when
//        wait_node::wait reported the deadline passed (Seam::now_ns() >=
//        deadline) and the node was still queued.
//   I-C4 A granted node is never reported as a timeout, so a notify is never
//        swallowed by a waiter that then claims ETIMEDOUT (which would let a
//        notify_one wake nobody).
//   I-C5 A notifier's last touch of the condvar is releasing lk_; grants
//        follow.  A waiter returns only after its grant, or after taking lk_
//        itself, so it may destroy the condvar right after it returns.
//   I-C6 The user mutex is held again whenever wait returns 0 or ETIMEDOUT;
//        EPERM returns without touching anything.
// Lock order: user mutex before lk_ (enqueue holds both); lk_ is otherwise a
// leaf.  The user mutex's internal spinlock is never held with lk_.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/grant_list.hpp"
#include "fiber/detail/mutex.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class basic_condvar {
 public:
  using node_t = wait_node<Seam>;

  basic_condvar() = default;
  basic_condvar(const basic_condvar&) = delete;
  basic_condvar& operator=(const basic_condvar&) = delete;

  // 0 (notified), ETIMEDOUT, or EPERM when the caller does not own m.  On 0
  // and ETIMEDOUT the caller owns m again (I-C6).
  int wait(basic_mutex<Seam>& m, std::uint64_t deadline = kNoDeadline) noexcept {
    if (!m.held_by_caller()) return EPERM;
    node_t node(&Seam::current_parker());
    enqueue(node);  // I-C1: before the mutex is released
    int rc = m.unlock();
    FIBER_ASSERT(rc == 0, "condvar: unlock of a mutex the caller owns failed");
    const int result = await(node, deadline);
    rc = m.lock();
    FIBER_ASSERT(rc == 0, "condvar: re-lock after wait failed");
    (void)rc;
    return result;
  }

  // The wait of fiber::condition_variable_any over any BasicLockable `lock`
  // the caller holds: queue, unlock, park, relock (I-C1, I-C6).  If unlock()
  // throws, the wait is cancelled without losing a notify and the exception
  // propagates; if the relock throws, std::terminate is called, as for
  // std::condition_variable_any.  0 (notified) or ETIMEDOUT.
  template <class Lock>
  int wait_any(Lock& lock, std::uint64_t deadline = kNoDeadline) {
    node_t node(&Seam::current_parker());
    enqueue(node);  // I-C1: before the user lock is released
    try {
      lock.unlock();
    } catch (...) {
      cancel(node);
      throw;
    }
    const int rc = await(node, deadline);
    relock(lock);
    return rc;
  }

  // --- steps of a wait, for waits over any lock
  // Under the caller's lock: queue node (I-C1).
  void enqueue(node_t& node) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    q_.push_back(&node);
  }
  // After the caller's lock is released: 0 when notified, ETIMEDOUT (I-C3, I-C4).
  int await(node_t& node, std::uint64_t deadline) noexcept {
    Seam::note_wait(*node.parker, wait_kind::condvar, this);
    if (node.wait(deadline)) return 0;
    if (withdraw(node)) return ETIMEDOUT;
    return 0;
  }
  // Leaves the queue without consuming a notify (the waiter is going away, e.g.
  // its lock's unlock threw).  If the node was granted meanwhile, the notify
  // it carried is passed on to the next waiter so that none is lost (I-C2).
  void cancel(node_t& node) noexcept {
    if (!withdraw(node)) notify_one();
  }

  void notify_one() noexcept {
    node_t* n = nullptr;
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      n = q_.pop_front();
    }
    if (n != nullptr) node_t::grant(n);  // after lk_ is released (I-C5)
  }

  void notify_all() noexcept {
    grant_list<Seam> woken;
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      while (node_t* n = q_.pop_front()) woken.push_back(n);  // I-C2: exactly the queued ones
    }
    woken.grant_all();  // I-C5, I-GL2
  }

  // For destroy: EBUSY while waiters are queued.
  int check_destroy() noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    return q_.empty() ? 0 : EBUSY;
  }

 private:
  // True when the node was still queued and is now removed (a timeout); false
  // when a notifier popped it, in which case this returns only once the grant
  // is complete, so the node may leave the stack (I-W2, I-W3).
  bool withdraw(node_t& node) noexcept {
    {
      lock_guard<basic_spinlock<Seam>> g(lk_);
      if (q_.remove(&node)) return true;
    }
    const bool granted = node.wait(kNoDeadline);
    FIBER_ASSERT(granted, "condvar: popped node never granted (I-W2)");
    (void)granted;
    return false;
  }

  template <class Lock>
  static void relock(Lock& lock) noexcept { lock.lock(); }

  basic_spinlock<Seam> lk_;  // guards q_ (I-W1)
  wait_queue<Seam> q_;       // guarded by lk_
};

}  // namespace fiber::detail
