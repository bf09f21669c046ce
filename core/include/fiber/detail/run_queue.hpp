// fiber/detail/run_queue.hpp - a locked FIFO of runnable fibers: the policy's
// global queue, which every thread pushes to (OS threads' creates and wakes,
// migrated preemptions, evacuations).  A KLT's own queue is local_queue.hpp
// (the owner pushes without a lock); this class was that too until issue 13,
// and keeps its pinned-node support (the models and properties still check
// it, and a run_queue of KLT queues remains a valid, slower policy).
//
// Lock-based on purpose: many producers, and a spinlock held for a few
// pointer writes with preemption disabled (I-S1) is cheap uncontended,
// trivially linearisable, and its steal can honour "pinned" fibers.
//
// Node requirements: a member `Seam::var<Node*> rq_next` and a member
// `Seam::var<bool> pinned` (both guarded by the queue's lock while queued).
//
// Invariants (I-Q1..I-Q4, checked by models/run_queue.cpp):
//   I-Q1 A node pushed is popped or stolen exactly once (no loss, no duplicate).
//   I-Q2 pop_front returns nodes in push order (FIFO).
//   I-Q3 steal takes at most min(ceil(n/2), cap) nodes, never a pinned one,
//        at least one if any is unpinned, and keeps the relative order of
//        what it takes and what it leaves.  The cap bounds the walk: the
//        policy's (128) keeps a thief from walking half of a million-fiber
//        queue under its owner's lock.
//   I-Q4 size_hint() is exact whenever the lock is not held; a queue holding a
//        node is never reported empty to a pop (no spurious emptiness).
//   I-Q5 evacuate_into moves every unpinned node queued when it takes the
//        lock, never a pinned one, keeping the relative order of what it
//        moves and what it leaves (the monitor's hand-off, core/src/monitor.hpp).
//   I-Q6 stealable_hint() (size minus pinned nodes) is exact whenever the
//        lock is not held, and steal_into(dst, cap) moves the first
//        min(cap, unpinned) unpinned nodes (otherwise as I-Q3).  The policy's per-KLT has-work test
//        reads it, so that a KLT does not stay awake for work pinned to
//        another KLT (policy.hpp, I-R6).
//
// Thieves and the evacuating monitor run on other threads than the owner;
// they take the same lock, so evacuation is the steal with "all" for "half"
// (models/run_queue.cpp checks both, I-Q3 and I-Q5).
#pragma once

#include <cstddef>
#include <cstdint>

#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"

namespace fiber::detail {

// A cache line of its own (the policy keeps the KLTs' queues in one array):
// packed, 32 bytes each, two KLTs' queues shared a line, so every push and
// pop of one KLT missed on the other's writes (skynet on 2 KLTs: the lock's
// xchg in on_new and the head store in switch_out's pop were the hottest
// instructions; papers/results/stacks.md).
template <class Seam, class Node>
class alignas(64) run_queue {
 public:
  void push_back(Node* n) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    push_locked(n);
  }

  Node* pop_front() noexcept {
    // relaxed: a hint to skip the lock; a racing push is seen next time (the
    // idle protocol in idle.hpp re-checks after announcing itself).
    if (size_.load(mo::relaxed) == 0) return nullptr;
    lock_guard<basic_spinlock<Seam>> g(lock_);
    return pop_locked();
  }

  // Moves up to half (rounded up) of this queue's unpinned nodes, and at
  // most cap, oldest first, to the tail of dst, and returns how many moved
  // (I-Q3).
  std::size_t steal_half_into(run_queue& dst, std::size_t cap = ~std::size_t{0}) noexcept {
    return move_unpinned_into(dst, false, cap);
  }

  // Moves up to `cap` unpinned nodes (not limited to half), oldest first, to
  // the tail of dst (I-Q6): the policy's balanced intake from the global
  // queue (policy.hpp, I-R2).
  // dst: any queue with push_chain (a KLT's local_queue, its owner calling).
  template <class Dst>
  std::size_t steal_into(Dst& dst, std::size_t cap) noexcept { return move_unpinned_into(dst, true, cap); }

  // Moves every unpinned node, oldest first, to the tail of dst and returns
  // how many moved (I-Q5).  From any thread (the monitor: an OS thread).
  std::size_t evacuate_into(run_queue& dst) noexcept { return move_unpinned_into(dst, true, ~std::size_t{0}); }

  std::size_t size_hint() const noexcept { return size_.load(mo::relaxed) & kCountMask; }  // relaxed: hint
  // Nodes a thief may take (I-Q6).  One relaxed load of the size word (count
  // and pinned count together, so they agree): a hint, exact when quiescent;
  // the idle protocol's fences order it against pushes (idle.hpp).
  std::size_t stealable_hint() const noexcept {
    const std::size_t w = size_.load(mo::relaxed);  // relaxed: hint (see above)
    return (w & kCountMask) - (w >> kPinnedShift);
  }

  // Pushes a chain linked through rq_next (the caller owns every node of
  // it), in order, under one lock (local_queue::evacuate_into's target).
  void push_chain(Node* first) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    for (Node* c = first; c;) {
      Node* next = c->rq_next.load();
      push_locked(c);
      c = next;
    }
  }

  // For the scheduler's policies, which may need to inspect under the lock.
  basic_spinlock<Seam>& lock() noexcept { return lock_; }
  void push_locked(Node* n) noexcept {
    n->rq_next.store(nullptr);
    Node* t = tail_.load();
    if (t) t->rq_next.store(n); else head_.store(n);
    tail_.store(n);
    const std::size_t one = n->pinned.load() ? kPinnedOne + 1 : 1;
    size_.store(size_.load(mo::relaxed) + one, mo::relaxed);  // relaxed: only written under lock_
  }
  Node* pop_locked() noexcept {
    Node* n = head_.load();
    if (!n) return nullptr;
    Node* next = n->rq_next.load();
    head_.store(next);
    if (!next) tail_.store(nullptr);
    n->rq_next.store(nullptr);
    const std::size_t one = n->pinned.load() ? kPinnedOne + 1 : 1;
    size_.store(size_.load(mo::relaxed) - one, mo::relaxed);  // relaxed: only written under lock_
    return n;
  }

 private:
  // Lock order: none.  The victim's (this) lock is released before dst's is
  // taken, so no thread ever holds two queue locks.
  // Moves nothing pinned, so the pinned count is unchanged on both sides.
  template <class Dst>
  std::size_t move_unpinned_into(Dst& dst, bool all, std::size_t cap) noexcept {
    if (size_.load(mo::relaxed) == 0) return 0;  // relaxed: hint only
    Node* first = nullptr;
    Node* last = nullptr;
    std::size_t moved = 0;
    {
      lock_guard<basic_spinlock<Seam>> g(lock_);
      const std::size_t word = size_.load(mo::relaxed);  // relaxed: written only under lock_
      std::size_t n = word & kCountMask;
      std::size_t want = (n + 1) / 2;
      if (all) want = n;  // I-Q5
      if (want > cap) want = cap;  // I-Q6
      Node* prev = nullptr;
      Node* cur = head_.load();
      while (cur && moved < want) {
        Node* next = cur->rq_next.load();
        if (!cur->pinned.load()) {
          if (prev) prev->rq_next.store(next); else head_.store(next);
          if (tail_.load() == cur) tail_.store(prev);
          cur->rq_next.store(nullptr);
          if (last) last->rq_next.store(cur); else first = cur;
          last = cur;
          ++moved;
        } else {
          prev = cur;
        }
        cur = next;
      }
      size_.store(word - moved, mo::relaxed);  // relaxed: readers only use it as a hint
    }
    if (moved) dst.push_chain(first);
    return moved;
  }

  basic_spinlock<Seam> lock_;
  typename Seam::template var<Node*> head_{nullptr};  // guarded by lock_
  typename Seam::template var<Node*> tail_{nullptr};  // guarded by lock_
  // The size word: nodes queued in the low 32 bits, pinned ones among them in
  // the high 32 (one store per push or pop, as before the pinned count: I-Q6
  // costs the models no extra interleavings).  0 iff empty.
  static_assert(sizeof(std::size_t) == 8, "the size word packs two 32-bit counts");
  static constexpr unsigned kPinnedShift = 32;
  static constexpr std::size_t kPinnedOne = std::size_t{1} << kPinnedShift;
  static constexpr std::size_t kCountMask = kPinnedOne - 1;
  typename Seam::template atomic<std::size_t> size_{0};  // written under lock_, read as a hint
};

}  // namespace fiber::detail
