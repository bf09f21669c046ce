// fiber/detail/readiness.hpp - waiting for a descriptor to become ready
// without losing the wake-up (the poller's half of "blocking calls park the
// fiber", core/src/poller.cpp).
//
// One readiness object per (descriptor, direction).  The kernel tells the
// poller about readiness as *edges* (epoll, EPOLLET): an edge that arrives
// while nobody waits is not repeated.  So a waiter that saw EAGAIN and then
// parks could sleep forever if the edge came in between.  The protocol closes
// that window with a sequence number bumped by every edge:
//
//   waiter:  s = snapshot();            // acquire
//            try the I/O (non-blocking); done unless EAGAIN
//            wait(s, deadline)          // under the lock: if seq_ != s an
//                                       // edge came since s: return at once;
//                                       // else queue a node and park
//            loop (a wake-up is a hint: the I/O is tried again, I-RD3)
//   poller:  notify()                   // seq_ += 1 (release), then grant and
//                                       // unpark every queued node, under the lock
//
//   I-RD1 No lost edge: an edge that comes after the waiter's snapshot either
//        makes wait() return at once (seq_ moved) or finds the waiter's node
//        queued and grants it.  The seq check and the queueing happen under
//        the lock that notify() holds while it bumps and grants.
//   I-RD2 The snapshot is an acquire load paired with notify()'s release bump:
//        a waiter that sees the new sequence number also sees what the
//        readiness published (in the model: the data; natively the kernel
//        orders it anyway).
//   I-RD3 Every wake-up is a hint: several waiters of one direction are all
//        woken by one edge, the I/O decides who wins; the others wait again.
//   I-RD4 A node leaves the queue under the lock, by notify() (grant) or by its
//        own waiter on timeout (I-W2 of wait_queue.hpp); the waiter returns
//        only once its node is off the queue, so notify() never touches a dead
//        stack frame.  The parker is type-stable (I-P4): a late unpark is a
//        spurious wake-up.
//
// Checked by models/readiness.cpp (Relacy) with planted bugs in
// tools/mutants/.
#pragma once

#include <cstdint>

#include "fiber/detail/parker.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class basic_readiness {
 public:
  using node = wait_node<Seam>;

  // Waiter: before the I/O attempt.
  std::uint32_t snapshot() const noexcept {
    return seq_.load(mo::acquire);  // acquire: pairs with notify()'s release bump (I-RD2)
  }

  // Waiter: after the attempt said "would block".  Returns false only when the
  // deadline passed with no edge since `seen`; true means "try again" (I-RD3).
  bool wait(std::uint32_t seen, std::uint64_t deadline) noexcept {
    node n(&Seam::current_parker());
    if (!enqueue(n, seen)) return true;
    if (n.wait(deadline)) return true;
    return dequeue(n);
  }

  // The two halves of wait(), for a waiter on several objects at once (poll):
  // queue n unless an edge came since `seen` (then false: try again, I-RD1).
  bool enqueue(node& n, std::uint32_t seen) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    if (seq_.load(mo::relaxed) != seen) return false;  // relaxed: under the lock notify() holds (I-RD1)
    q_.push_back(&n);
    return true;
  }
  // After the park: takes n off the queue (I-RD4).  True when notify() had
  // granted it (it grants under this lock, so the grant is complete here).
  bool dequeue(node& n) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    return !q_.remove(&n);
  }

  // Poller: an edge in this direction.
  void notify() noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    seq_.fetch_add(1, mo::release);  // release: pairs with snapshot()'s acquire (I-RD2)
    while (node* n = q_.pop_front()) node::grant(n);
  }

 private:
  basic_spinlock<Seam> lock_;
  typename Seam::template atomic<std::uint32_t> seq_{0};  // written under lock_
  wait_queue<Seam> q_;                                     // guarded by lock_ (I-W1)
};

}  // namespace fiber::detail
