// fiber/detail/barrier.hpp - the reusable barrier algorithm, over the Seam.
//
// basic_barrier<Seam> backs fiber::barrier and fiber_barrier_t; models/ check
// it under Relacy.  `count` parties arrive; the first count-1 queue a
// wait_node and park; the last one (the "serial" party) pops them all, starts
// the next generation, runs an optional completion step and then grants them.
// Every waiter wakes only by the grant of its own node, so a fast party that
// re-arrives for the next generation can never be confused with this one.
//
// Invariants (cited as I-Bn by code, models and tests):
//   I-B1 Whenever lk_ is free: 0 <= arrived_ < count_, and the queue holds
//        exactly arrived_ nodes, all tagged with generation_ (checked by
//        FIBER_ASSERT when they are released).
//   I-B2 The arrival that brings arrived_ to count_ pops every queued node,
//        resets arrived_ to 0 and bumps generation_ in one lk_ section, so the
//        next generation starts with an empty queue (reusable).
//   I-B3 Exactly one party per generation gets `true` (the serial return).
//   I-B4 Every arrival's writes before arrive_and_wait() happen-before every
//        party's return from it: arrivals reach the serial party through lk_
//        (release/acquire), and it releases the others by grant() (release ->
//        granted() acquire).  The completion step runs after all arrivals and
//        before any waiter returns.
//   I-B5 The serial party's last touch of the barrier is releasing lk_ (grants
//        follow), so the barrier may be destroyed once every party returned.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/grant_list.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam>
class basic_barrier {
 public:
  using node_t = wait_node<Seam>;

  explicit basic_barrier(std::uint32_t count) noexcept : count_(count) {
    FIBER_ASSERT(count > 0, "barrier: count must be positive");
  }
  basic_barrier(const basic_barrier&) = delete;
  basic_barrier& operator=(const basic_barrier&) = delete;

  // True for exactly one party per generation (I-B3).
  bool arrive_and_wait() noexcept {
    return arrive_and_wait([]() noexcept {});
  }

  // As above; the serial party runs on_complete() after every party arrived
  // and before any is released (I-B4).  on_complete must not throw.
  template <class F>
  bool arrive_and_wait(F&& on_complete) noexcept {
    node_t node(&Seam::current_parker());
    grant_list<Seam> woken;
    if (!arrive(node, woken)) {
      Seam::note_wait(*node.parker, wait_kind::barrier, this);
      const bool granted = node.wait(kNoDeadline);
      FIBER_ASSERT(granted, "barrier: untimed wait returned without a grant");
      (void)granted;
      return false;
    }
    on_complete();
    woken.grant_all();  // after lk_ is released (I-B5, I-GL2)
    return true;
  }

  // The party count; 0 only for zero-filled storage that was never constructed
  // (the C API reports EINVAL for it).  Immutable after construction.
  std::uint32_t count() const noexcept { return count_.load(); }

  // For destroy: EBUSY while parties wait.
  int check_destroy() noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    return arrived_.load() == 0 ? 0 : EBUSY;
  }

 private:
  // Under lk_: queue node, or (last arrival) pop everyone into `woken` and
  // start the next generation (I-B2).  True for the last arrival.
  bool arrive(node_t& node, grant_list<Seam>& woken) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lk_);
    const std::uint32_t gen = generation_.load();
    const std::uint32_t arrived = arrived_.load() + 1;
    if (arrived < count_.load()) {
      node.data.store(gen);  // tag (I-B1); grant_list reuses data once popped
      q_.push_back(&node);
      arrived_.store(arrived);
      return false;
    }
    while (node_t* n = q_.pop_front()) {
      FIBER_ASSERT(n->data.load() == gen, "barrier: a node of another generation queued (I-B1)");
      woken.push_back(n);
    }
    FIBER_ASSERT(woken.size() + 1 == count_.load(), "barrier: queue and arrivals disagree (I-B1)");
    arrived_.store(0);
    generation_.store(gen + 1);  // wraps harmlessly: only compared for equality
    return true;
  }

  basic_spinlock<Seam> lk_;                             // guards everything below (I-W1)
  wait_queue<Seam> q_;                                  // guarded by lk_
  typename Seam::template var<std::uint32_t> count_;    // set at construction, read under lk_
  typename Seam::template var<std::uint32_t> arrived_{0};     // guarded by lk_
  typename Seam::template var<std::uint32_t> generation_{0};  // guarded by lk_
};

}  // namespace fiber::detail
