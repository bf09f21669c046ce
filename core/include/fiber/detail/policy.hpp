// fiber/detail/policy.hpp - scheduling policies: where a runnable fiber goes
// and which fiber a KLT runs next.  Pure data-structure logic over the seam:
// the native runtime drives it from real KLTs; proptests/ drive the very same
// class from one OS thread with virtual KLTs (see proptests/sim.hpp).
//
// Policy concept (both policies below model it):
//   explicit P(unsigned nklts);
//   void on_new(Node*, unsigned klt);       // a created fiber; klt = creator's KLT or kNoKlt
//   void on_yield(Node*, unsigned klt);     // voluntary yield on klt
//   void on_preempted(Node*, unsigned klt); // tick preemption on klt: pinned to it (I-R3)
//   void on_wake(Node*, unsigned klt);      // unparked by a waker on klt (or kNoKlt)
//   Node* pick_next(unsigned klt);          // nullptr if no work anywhere it may take
//   bool wants_notify(unsigned klt) const;  // should an idle KLT be woken after a push?
//   std::size_t evacuate(unsigned klt);     // any thread: klt's unpinned fibers to global
//
// fifo_policy - the seed's FIFO round robin, per KLT:
//   I-R1 A KLT runs the head of its own queue; new, yielded, preempted and
//        woken fibers go to the tail (round robin: a CPU-bound fiber waits
//        behind at most the fibers queued before it re-enters).
//   I-R2 Work created or woken outside any KLT (OS threads) goes to the global
//        queue.  Before running its head, a KLT moves half (rounded up) of the
//        global queue to its own tail, so global work waits at most one
//        rotation of the local queue; a KLT whose queue is still empty steals
//        half of another KLT's unpinned fibers (victims from klt+1 on).
//   I-R3 A preempted fiber is pinned: it resumes on the KLT it was preempted
//        on (compiled code caches TLS addresses; platform-facts).  Pinned is
//        cleared when it runs again; fibers migrate only after voluntary calls.
//   I-R4 Every runnable fiber is in exactly one queue (I-Q1 per queue).
//   I-R5 evacuate(k) moves every unpinned fiber of k's queue to the global
//        queue (I-Q5), so that KLTs that are busy (they never steal) take them
//        at their next pick (I-R2).  Called from any thread: the monitor calls
//        it for a KLT that takes no scheduling step (core/src/monitor.hpp).
//        Pinned fibers stay (I-R3), and so does runnext_policy's slot (read
//        by its owner KLT without a lock): at most one fiber per KLT.
//
// runnext_policy - the same, except that a fiber created on a KLT runs next
//   there (Go's runnext slot, LIFO for fresh work): depth-first spawn trees
//   keep few stacks alive.  Offered for comparison (bench/bench_skynet.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fiber/detail/run_queue.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber::detail {

inline constexpr unsigned kNoKlt = ~0u;

template <class Seam, class Node>
class fifo_policy {
 public:
  explicit fifo_policy(unsigned nklts)
      : nklts_(nklts), local_(new run_queue<Seam, Node>[nklts]) {}

  void on_new(Node* n, unsigned klt) noexcept { push(n, klt, false); }
  void on_yield(Node* n, unsigned klt) noexcept { push(n, klt, false); }
  void on_preempted(Node* n, unsigned klt) noexcept {
    FIBER_ASSERT(klt != kNoKlt, "preempted outside a KLT");
    push(n, klt, true);
  }
  void on_wake(Node* n, unsigned klt) noexcept { push(n, klt, false); }

  Node* pick_next(unsigned klt) noexcept {
    // I-R2: global work joins the tail of this KLT's queue before the head
    // runs, so a busy local queue cannot starve it (half at a time, leaving
    // the rest to other KLTs).
    global_.steal_half_into(local_[klt]);
    if (Node* n = local_[klt].pop_front()) return unpin(n);
    for (unsigned i = 1; i < nklts_; ++i) {
      unsigned victim = (klt + i) % nklts_;
      if (local_[victim].steal_half_into(local_[klt]) != 0) {
        if (Node* n = local_[klt].pop_front()) return unpin(n);
      }
    }
    return nullptr;
  }

  // An idle KLT could take it: it went to the global queue (pushed from
  // outside every KLT, so maybe all of them sleep), or the pusher's local
  // queue holds more than the one fiber its own, awake, KLT will run next.
  bool wants_notify(unsigned klt) const noexcept {
    return klt == kNoKlt || (nklts_ > 1 && local_[klt].size_hint() > 1);
  }

  // I-R5: returns how many moved; the caller wakes idle KLTs if any did.
  std::size_t evacuate(unsigned klt) noexcept { return local_[klt].evacuate_into(global_); }

  bool has_work_hint() const noexcept {
    if (global_.size_hint() != 0) return true;
    for (unsigned i = 0; i < nklts_; ++i)
      if (local_[i].size_hint() != 0) return true;
    return false;
  }
  std::size_t queued_hint(unsigned klt) const noexcept { return local_[klt].size_hint(); }
  unsigned klts() const noexcept { return nklts_; }

 protected:
  void push(Node* n, unsigned klt, bool pinned) noexcept {
    n->pinned.store(pinned);  // guarded: n is owned by the pusher until queued
    if (klt == kNoKlt) global_.push_back(n); else local_[klt].push_back(n);
  }
  static Node* unpin(Node* n) noexcept {
    n->pinned.store(false);  // owned by the popping KLT now
    return n;
  }

  unsigned nklts_;
  std::unique_ptr<run_queue<Seam, Node>[]> local_;
  run_queue<Seam, Node> global_;
};

template <class Seam, class Node>
class runnext_policy : public fifo_policy<Seam, Node> {
  using base = fifo_policy<Seam, Node>;

 public:
  explicit runnext_policy(unsigned nklts) : base(nklts), next_(new slot[nklts]) {}

  void on_new(Node* n, unsigned klt) noexcept {
    if (klt == kNoKlt) return base::on_new(n, klt);
    // The previous runnext occupant is demoted to the tail (Go does the same).
    if (Node* old = next_[klt].n) base::push(old, klt, false);
    n->pinned.store(false);
    next_[klt].n = n;  // owner KLT only: no other KLT reads its slot
  }
  Node* pick_next(unsigned klt) noexcept {
    if (Node* n = next_[klt].n) {
      next_[klt].n = nullptr;
      return n;
    }
    return base::pick_next(klt);
  }

 private:
  struct alignas(64) slot { Node* n = nullptr; };
  std::unique_ptr<slot[]> next_;
};

}  // namespace fiber::detail
