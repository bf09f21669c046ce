// fiber/detail/wait_queue.hpp - intrusive FIFO of waiters, the building block
// of every blocking primitive (mutex, condition variable, semaphore, barrier).
//
// A wait_node lives on the waiting party's stack.  Protocol (I-W1..I-W3):
//   I-W1 Links (next_, prev_, queued_) are guarded by the owning primitive's
//        spinlock; nobody touches them without it.
//   I-W2 A node leaves the queue only under that lock, either by a waker
//        (pop_front, then grant()) or by its own waiter (remove(), on timeout).
//        Exactly one of the two succeeds: remove() returns false when a waker
//        already took the node, and the waiter must then wait for the grant.
//   I-W3 grant() is the waker's last touch of the node: it reads the parker
//        first, publishes state_ (release), then unparks.  After the store
//        the waiter may return and its stack frame vanish; the parker is
//        type-stable (I-P4), so the unpark is safe.
#pragma once

#include <cstdint>

#include "fiber/detail/parker.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
struct wait_node {
  static constexpr std::uint32_t kWaiting = 0;
  static constexpr std::uint32_t kGranted = 1;

  explicit wait_node(basic_parker<Seam>* p) noexcept : parker(p) {}
  wait_node(const wait_node&) = delete;
  wait_node& operator=(const wait_node&) = delete;

  basic_parker<Seam>* const parker;                       // immutable while queued
  typename Seam::template var<wait_node*> next_{nullptr};  // guarded: I-W1
  typename Seam::template var<wait_node*> prev_{nullptr};  // guarded: I-W1
  typename Seam::template var<bool> queued_{false};        // guarded: I-W1
  typename Seam::template var<std::uintptr_t> data{0};     // primitive-specific, guarded: I-W1
  typename Seam::template atomic<std::uint32_t> state_{kWaiting};

  bool granted() const noexcept {
    return state_.load(mo::acquire) == kGranted;  // acquire: pairs with grant()'s release
  }

  // Waiter side: park until granted or the deadline passes.  Returns true if
  // granted.  On false the caller must take the lock and remove() (I-W2).
  bool wait(std::uint64_t deadline) noexcept {
    for (;;) {
      if (granted()) return true;
      if (parker->park_until(deadline)) return granted();
    }
  }

  // Waker side, after the node was popped under the lock.  Keeps I-W3.
  static void grant(wait_node* n) noexcept {
    basic_parker<Seam>* p = n->parker;
    n->state_.store(kGranted, mo::release);  // release: pairs with granted()'s acquire
    p->unpark();
  }
};

template <class Seam>
class wait_queue {
 public:
  using node = wait_node<Seam>;

  bool empty() const noexcept { return head_.load() == nullptr; }
  node* front() const noexcept { return head_.load(); }
  node* back() const noexcept { return tail_.load(); }

  void push_back(node* n) noexcept {
    FIBER_ASSERT(!n->queued_.load(), "wait_queue: node queued twice");
    node* t = tail_.load();
    n->next_.store(nullptr);
    n->prev_.store(t);
    if (t) t->next_.store(n); else head_.store(n);
    tail_.store(n);
    n->queued_.store(true);
  }

  // LIFO re-entry (mutex.hpp: a woken waiter that lost the race goes back to
  // the head, keeping its turn).
  void push_front(node* n) noexcept {
    FIBER_ASSERT(!n->queued_.load(), "wait_queue: node queued twice");
    node* h = head_.load();
    n->prev_.store(nullptr);
    n->next_.store(h);
    if (h) h->prev_.store(n); else tail_.store(n);
    head_.store(n);
    n->queued_.store(true);
  }

  node* pop_front() noexcept {
    node* n = head_.load();
    if (n) unlink(n);
    return n;
  }

  // I-W2: false when a waker already dequeued n.
  bool remove(node* n) noexcept {
    if (!n->queued_.load()) return false;
    unlink(n);
    return true;
  }

 private:
  void unlink(node* n) noexcept {
    node* p = n->prev_.load();
    node* x = n->next_.load();
    if (p) p->next_.store(x); else head_.store(x);
    if (x) x->prev_.store(p); else tail_.store(p);
    n->queued_.store(false);
  }

  typename Seam::template var<node*> head_{nullptr};  // guarded by the owner's lock
  typename Seam::template var<node*> tail_{nullptr};  // guarded by the owner's lock
};

}  // namespace fiber::detail
