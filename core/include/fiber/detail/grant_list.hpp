// fiber/detail/grant_list.hpp - wake a batch of waiters after dropping the lock.
//
// condvar notify_all, semaphore post(n) and the barrier pop several nodes
// from a wait_queue under the primitive's spinlock, but grant them only after
// the spinlock is released: a grant may unpark (a futex syscall or a run-queue
// push), which must not lengthen the spinlock's critical section (I-S2), and
// waking after the last touch of the primitive lets a woken waiter destroy it
// at once (the "destroy right after wake" rule of POSIX).
//
// The list is threaded through wait_node::data, a field I-W1 reserves to the
// primitive that owns the queue.  Invariants:
//   I-GL1 A node in the list has been unlinked from its queue under the lock
//        (queued_ == false), so its waiter's remove() fails and the waiter
//        waits for the grant (I-W2): nobody but the list owner touches it.
//   I-GL2 grant_all() reads a node's successor *before* granting it: after
//        wait_node::grant the node's stack frame may vanish (I-W3).
//   I-GL3 Nodes are granted in the order they were pushed (FIFO is kept).
#pragma once

#include <cstdint>

#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class grant_list {
 public:
  using node = wait_node<Seam>;

  grant_list() = default;
  grant_list(const grant_list&) = delete;
  grant_list& operator=(const grant_list&) = delete;
  ~grant_list() { FIBER_ASSERT(head_ == nullptr, "grant_list: destroyed with ungranted nodes"); }

  // Under the owning primitive's lock, after the node was popped (I-GL1).
  void push_back(node* n) noexcept {
    n->data.store(0);  // end of chain; data is ours now (I-W1, I-GL1)
    if (tail_ != nullptr) {
      tail_->data.store(reinterpret_cast<std::uintptr_t>(n));
    } else {
      head_ = n;
    }
    tail_ = n;
    ++size_;
  }

  bool empty() const noexcept { return head_ == nullptr; }
  std::uint32_t size() const noexcept { return size_; }

  // After the lock is released.  Keeps I-GL2, I-GL3.
  void grant_all() noexcept {
    node* n = head_;
    head_ = tail_ = nullptr;
    size_ = 0;
    while (n != nullptr) {
      node* next = reinterpret_cast<node*>(n->data.load());  // before the grant: I-GL2
      node::grant(n);
      n = next;
    }
  }

 private:
  // Plain members: the list is a local of the waking party, never shared.
  node* head_ = nullptr;
  node* tail_ = nullptr;
  std::uint32_t size_ = 0;
};

}  // namespace fiber::detail
