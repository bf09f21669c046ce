// proptests/planted.hpp - deliberately broken variants of the core
// structures, each the control of one property: the property must find a
// counterexample against it (see expect_counterexample in prop_util.hpp).
// Nothing here is used outside the controls.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "sim.hpp"

namespace fiber_sim::planted {

// PLANTED: a KLT runs the newest fiber of its queue (LIFO), breaking I-R1.
struct lifo_policy : fifo {
  using fifo::fifo;
  sim_fiber* pick_next(unsigned klt) noexcept {
    std::vector<sim_fiber*> v;
    while (sim_fiber* n = local_[klt].pop_front()) v.push_back(n);
    if (v.empty()) return fifo::pick_next(klt);
    for (std::size_t i = 0; i + 1 < v.size(); ++i) local_[klt].push_back(v[i]);
    return unpin(v.back());
  }
};

// PLANTED: a steal that moves two or more fibers loses the first (I-R4, I-Q1).
struct drop_on_steal_policy : fifo {
  using fifo::fifo;
  sim_fiber* pick_next(unsigned klt) noexcept {
    if (local_[klt].size_hint() != 0 || global_.size_hint() != 0) return fifo::pick_next(klt);
    for (unsigned i = 1; i < nklts_; ++i) {
      const std::size_t moved = local_[(klt + i) % nklts_].steal_half_into(local_[klt]);
      if (moved == 0) continue;
      if (moved >= 2) local_[klt].pop_front();  // the bug
      sim_fiber* n = local_[klt].pop_front();
      return n != nullptr ? unpin(n) : nullptr;
    }
    return nullptr;
  }
};

// PLANTED: the skeleton's pick_next (dc7bcbc): the global queue is read only
// when the local one is empty, so CPU-bound local fibers starve it (I-R2).
struct local_first_policy : fifo {
  using fifo::fifo;
  sim_fiber* pick_next(unsigned klt) noexcept {
    if (sim_fiber* n = local_[klt].pop_front()) return unpin(n);
    if (sim_fiber* n = global_.pop_front()) return unpin(n);
    return fifo::pick_next(klt);
  }
};

// PLANTED: a preempted fiber is queued unpinned, so a thief may take it (I-R3).
struct unpinning_policy : fifo {
  using fifo::fifo;
  bool on_preempted(sim_fiber* n, unsigned klt, bool = false) noexcept { return push(n, klt, false); }
};

// PLANTED: no hand-off, as before the monitor: a stalled KLT keeps its
// fibers, and busy KLTs never steal them (I-R5).
struct no_handoff_policy : fifo {
  using fifo::fifo;
  std::size_t evacuate(unsigned) noexcept { return 0; }
};

// PLANTED: the hand-off moves only half of the stranded fibers (I-R5).
struct half_handoff_policy : fifo {
  using fifo::fifo;
  std::size_t evacuate(unsigned klt) noexcept {
    local_queue_t half;  // the sim is one thread: the evacuating thread owns it
    local_[klt].steal_half_into(half);
    return half.evacuate_into(global_);
  }
};

// PLANTED: the has-work test before issue 13: any queued fiber keeps an idle
// KLT awake, even one pinned to another KLT, so it spins (I-R6).
struct spin_on_pinned_policy : fifo {
  using fifo::fifo;
  bool has_work(unsigned) const noexcept { return has_work_hint(); }
};

// PLANTED: a yield never wakes an idle KLT (the runtime before issue 13):
// a KLT rotating several yielders keeps them all while another sleeps (I-R6).
struct silent_yield_policy : fifo {
  using fifo::fifo;
  bool on_yield(sim_fiber* n, unsigned klt) noexcept {
    fifo::on_yield(n, klt);
    return false;
  }
};

// PLANTED: a KLT that found work after sleeping never wakes another, so
// one notify for a burst of work wakes one KLT only (I-R6).
struct no_chain_wake_policy : fifo {
  using fifo::fifo;
  bool wake_another() const noexcept { return false; }
};

// PLANTED: the global intake before issue 13: half of the global queue,
// whatever the KLT already has, so a start-up split can be 5:3 (I-R2).
struct half_intake_policy : fifo {
  using fifo::fifo;
  sim_fiber* pick_next(unsigned klt) noexcept {
    global_.steal_into(local_[klt], (global_.size_hint() + 1) / 2);  // half (global: all unpinned)
    return pick_local(klt);
  }
};

// PLANTED: migrate_preempted that requeues on the preempting KLT, unpinned,
// instead of the global queue: nothing ever rebalances CPU-bound fibers.
struct local_migrate_policy : fiber::detail::migrate_policy<sim_seam, sim_fiber> {
  using fiber::detail::migrate_policy<sim_seam, sim_fiber>::migrate_policy;
  bool on_preempted(sim_fiber* n, unsigned klt, bool = false) noexcept { return push(n, klt, false); }
};

// PLANTED: the stack scan's verdict ignored (FIBER_MIGRATE_SCAN, I-R3): every
// preempted fiber goes to the global queue, TLS holders included.
struct scan_ignored_policy : fifo {
  using fifo::fifo;
  bool on_preempted(sim_fiber* n, unsigned, bool = false) noexcept { return push(n, fiber::detail::kNoKlt, false); }
};

// PLANTED: timers fire one nanosecond early (I-T1).
struct early_heap : heap_t {
  sim_fiber* pop_expired(std::uint64_t now) noexcept { return heap_t::pop_expired(now + 1); }
};

// PLANTED: equal deadlines fire newest first (I-T1's tie rule).
class lifo_tie_heap {
 public:
  bool empty() const noexcept { return v_.empty(); }
  std::uint64_t next_deadline() const noexcept {
    return v_.empty() ? ~std::uint64_t{0} : v_.front()->timer_deadline;
  }
  void push(sim_fiber* n, std::uint64_t deadline) {
    n->timer_deadline = deadline;
    auto it = std::find_if(v_.begin(), v_.end(),
                           [&](const sim_fiber* m) { return m->timer_deadline >= deadline; });
    n->timer_index = 0;  // "queued"
    v_.insert(it, n);    // before its equals: the bug
  }
  sim_fiber* pop_expired(std::uint64_t now) noexcept {
    if (v_.empty() || v_.front()->timer_deadline > now) return nullptr;
    sim_fiber* n = v_.front();
    v_.erase(v_.begin());
    n->timer_index = heap_t::kNotQueued;
    return n;
  }
  bool remove(sim_fiber* n) noexcept {
    auto it = std::find(v_.begin(), v_.end(), n);
    if (it == v_.end()) return false;
    v_.erase(it);
    n->timer_index = heap_t::kNotQueued;
    return true;
  }
  std::size_t size() const noexcept { return v_.size(); }

 private:
  std::vector<sim_fiber*> v_;
};

// ---- the KLT loop (fiber/detail/klt_loop.hpp): one decision planted wrong.
// A subclass hides one member and names itself as klt_loop's Self, so the
// loop's own calls reach the planted member; the simulator calls the loop
// through the subclass (sim's Loop parameter).  The rest is the shipped code.
using fiber::detail::klt_action;
using fiber::detail::klt_loop;

// PLANTED: the leaving fiber's KLT picks before it expires timers, so a
// sleeper due during the quantum waits a second one (wake-up lateness, I-T1).
template <class Env>
struct timers_after_pick_loop : klt_loop<Env, timers_after_pick_loop<Env>> {
  using typename klt_loop<Env, timers_after_pick_loop<Env>>::leave_plan;
  static leave_plan plan_leave(Env& e, unsigned k, klt_action a) {
    auto* next = e.pick_next(k);
    e.process_timers(k);
    return {next, next == nullptr && (a == klt_action::park || a == klt_action::exit)};
  }
};

// PLANTED: an idle KLT sleeps without asking for work it may take (I-R6).
template <class Env>
struct sleep_ignoring_work_loop : klt_loop<Env, sleep_ignoring_work_loop<Env>> {
  static bool may_sleep(Env& e, unsigned, std::uint64_t& until) {
    until = e.next_deadline();
    return until == fiber::detail::kNoDeadline || until > e.now();
  }
};

// PLANTED: a park is never committed; the fiber is requeued as if a wake-up
// had come first, while it also waits on its object (I-R4: queued twice).
template <class Env>
struct park_never_commits_loop : klt_loop<Env, park_never_commits_loop<Env>> {
  using base = klt_loop<Env, park_never_commits_loop<Env>>;
  static void act_on(Env& e, unsigned k, typename Env::fiber_type* f, klt_action a) {
    if (a == klt_action::park) return base::push(e, f, k, fiber::detail::push_kind::yielded);
    base::act_on(e, k, f, a);
  }
};

// PLANTED: an exit hands the fiber to its joiners before it is recorded as
// exited and before the live count drops (join returns before exit).
template <class Env>
struct join_before_exit_loop : klt_loop<Env, join_before_exit_loop<Env>> {
  static void finish_exit(Env& e, unsigned k, typename Env::fiber_type* f) {
    e.join_exit(k, f);
    e.exited(k, f);
    if (e.drop_live()) e.wake_shutdown();
  }
};

// PLANTED: an exit is finished without dropping the live count (I7).
template <class Env>
struct exit_keeps_live_loop : klt_loop<Env, exit_keeps_live_loop<Env>> {
  static void finish_exit(Env& e, unsigned k, typename Env::fiber_type* f) {
    e.exited(k, f);
    e.join_exit(k, f);
  }
};

// PLANTED: pop_front takes the newest node (breaks I-Q2).
struct lifo_queue : run_queue_t {
  sim_fiber* pop_front() noexcept {
    std::vector<sim_fiber*> v = contents(*this);
    if (v.empty()) return nullptr;
    while (pop_locked() != nullptr) {}
    for (std::size_t i = 0; i + 1 < v.size(); ++i) push_locked(v[i]);
    return v.back();
  }
  std::size_t steal_half_into(lifo_queue& dst, std::size_t cap = ~std::size_t{0}) noexcept {
    return run_queue_t::steal_half_into(dst, cap);
  }
};

// PLANTED: a KLT's queue whose pop serves unpinned fibers before pinned ones
// whatever their age (breaks I-L2: a preempted fiber waits behind younger).
struct pinned_last_queue : fiber::detail::local_queue<sim_seam, sim_fiber, 2> {
  using base = fiber::detail::local_queue<sim_seam, sim_fiber, 2>;
  sim_fiber* pop_front() noexcept {
    std::vector<sim_fiber*> v;
    while (sim_fiber* n = base::pop_front()) v.push_back(n);
    if (v.empty()) return nullptr;
    auto it = std::find_if(v.begin(), v.end(), [](sim_fiber* n) { return !n->pinned.load(); });
    if (it == v.end()) it = v.begin();
    sim_fiber* got = *it;
    v.erase(it);
    for (sim_fiber* n : v) base::push_back(n);
    return got;
  }
  std::size_t steal_half_into(pinned_last_queue& dst, std::size_t cap = ~std::size_t{0}) noexcept {
    return base::steal_half_into(dst, cap);
  }
};

// PLANTED: a steal takes every unpinned node, not half nor at most the cap
// (breaks I-Q3).
struct greedy_steal_queue : run_queue_t {
  std::size_t steal_half_into(greedy_steal_queue& dst, std::size_t = ~std::size_t{0}) noexcept {
    std::vector<sim_fiber*> v = contents(*this);
    while (pop_locked() != nullptr) {}
    std::size_t moved = 0;
    for (sim_fiber* n : v) {
      if (n->pinned.load()) { push_locked(n); continue; }
      dst.push_locked(n);
      ++moved;
    }
    return moved;
  }
};

}  // namespace fiber_sim::planted

// ------------------------------------------------ readiness (sim_fds.hpp)
// The controls of prop_io.cpp.  Simulator-side bugs are io_bug bits
// (sim_fds.hpp: kPollDropsLast, kCloseNoWake, kTrustWake); these two are
// copies of fiber::detail::basic_readiness with one line changed.
#include "sim_fds.hpp"

namespace fiber_sim::planted {

// PLANTED: the waiter does not re-check after registering: enqueue() queues
// the node without comparing the sequence with the snapshot, so an edge
// that came between the snapshot and the enqueue is lost (breaks I-RD1).
class no_recheck_readiness {
 public:
  using node = fiber::detail::wait_node<io::io_seam>;
  std::uint32_t snapshot() const noexcept { return seq_.load(mo::acquire); }
  bool wait(std::uint32_t seen, std::uint64_t deadline) noexcept {
    node n(&io::io_seam::current_parker());
    if (!enqueue(n, seen)) return true;
    if (n.wait(deadline)) return true;
    return dequeue(n);
  }
  bool enqueue(node& n, std::uint32_t) noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    q_.push_back(&n);  // the bug: no `seq_ != seen` test
    return true;
  }
  bool dequeue(node& n) noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    return !q_.remove(&n);
  }
  void notify() noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    seq_.fetch_add(1, mo::release);
    while (node* n = q_.pop_front()) node::grant(n);
  }
  const fiber::detail::wait_queue<io::io_seam>& queue_for_sim() const noexcept { return q_; }

 private:
  fiber::detail::basic_spinlock<io::io_seam> lock_;
  io::io_seam::atomic<std::uint32_t> seq_{0};
  fiber::detail::wait_queue<io::io_seam> q_;
};

// PLANTED: an edge grants only the oldest waiter (a "wake one" notify), so a
// second waiter of the same direction sleeps on while data waits (breaks
// I-RD3: every waiter is woken, the I/O decides who wins).
class wake_one_readiness {
 public:
  using node = fiber::detail::wait_node<io::io_seam>;
  std::uint32_t snapshot() const noexcept { return seq_.load(mo::acquire); }
  bool wait(std::uint32_t seen, std::uint64_t deadline) noexcept {
    node n(&io::io_seam::current_parker());
    if (!enqueue(n, seen)) return true;
    if (n.wait(deadline)) return true;
    return dequeue(n);
  }
  bool enqueue(node& n, std::uint32_t seen) noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    if (seq_.load(mo::relaxed) != seen) return false;
    q_.push_back(&n);
    return true;
  }
  bool dequeue(node& n) noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    return !q_.remove(&n);
  }
  void notify() noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    seq_.fetch_add(1, mo::release);
    if (node* n = q_.pop_front()) node::grant(n);  // the bug: one, not all
  }
  const fiber::detail::wait_queue<io::io_seam>& queue_for_sim() const noexcept { return q_; }

 private:
  fiber::detail::basic_spinlock<io::io_seam> lock_;
  io::io_seam::atomic<std::uint32_t> seq_{0};
  fiber::detail::wait_queue<io::io_seam> q_;
};

// PLANTED: on timeout the waiter returns without dequeue(): its node stays
// queued in a frame that is gone (breaks I-RD4, I-W2).
class no_dequeue_readiness {
 public:
  using node = fiber::detail::wait_node<io::io_seam>;
  std::uint32_t snapshot() const noexcept { return seq_.load(mo::acquire); }
  bool wait(std::uint32_t seen, std::uint64_t deadline) noexcept {
    node n(&io::io_seam::current_parker());
    if (!enqueue(n, seen)) return true;
    if (n.wait(deadline)) return true;
    return false;  // the bug: no dequeue(n)
  }
  const fiber::detail::wait_queue<io::io_seam>& queue_for_sim() const noexcept { return q_; }
  bool enqueue(node& n, std::uint32_t seen) noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    if (seq_.load(mo::relaxed) != seen) return false;
    q_.push_back(&n);
    return true;
  }
  void notify() noexcept {
    fiber::detail::lock_guard<fiber::detail::basic_spinlock<io::io_seam>> g(lock_);
    seq_.fetch_add(1, mo::release);
    while (node* n = q_.pop_front()) node::grant(n);
  }

 private:
  fiber::detail::basic_spinlock<io::io_seam> lock_;
  io::io_seam::atomic<std::uint32_t> seq_{0};
  fiber::detail::wait_queue<io::io_seam> q_;
};

}  // namespace fiber_sim::planted
