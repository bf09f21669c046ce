// fiber/detail/policy.hpp - the scheduling policy: where a runnable fiber goes
// and which fiber a KLT runs next.  Pure data-structure logic over the seam:
// the native runtime drives it from real KLTs; proptests/ drive the very same
// class from one OS thread with virtual KLTs (see proptests/sim.hpp).
//
// One class, sched_policy, with two behaviours chosen at construction (plain
// flags, read-only afterwards, so the runtime dispatches with no run-time
// if/else between policy objects):
//   runnext            a fiber created on a KLT runs next there (Go's runnext
//                      slot, LIFO for fresh work: depth-first spawn trees keep
//                      few stacks alive).  FIBER_POLICY_RUNNEXT; off by default.
//   migrate_preempted  every preempted fiber goes to the global queue unpinned
//                      and may resume on any KLT, as goroutines do (unsafe for
//                      code that caches a TLS address across a preemption, see
//                      I-R3): FIBER_MIGRATE_ALWAYS.  The runtime's default,
//                      FIBER_MIGRATE_SCAN, leaves it off and passes each
//                      preemption's verdict to on_preempted (movable).
// fifo_policy / runnext_policy / migrate_policy name the three settings.
//
// Interface (the runtime and the simulator call exactly these):
//   bool on_new(Node*, unsigned klt);       // a created fiber; klt = creator's KLT or kNoKlt
//   bool on_yield(Node*, unsigned klt);     // voluntary yield on klt
//   bool on_preempted(Node*, unsigned klt, bool movable);
//                                           // tick preemption on klt (I-R3); movable:
//                                           // the runtime found it may resume elsewhere
//   bool on_wake(Node*, unsigned klt);      // unparked by a waker on klt (or kNoKlt)
//       each returns true when an idle KLT should be woken (I-R6)
//   Node* pick_next(unsigned klt);          // nullptr if no work anywhere it may take
//   bool has_work(unsigned klt) const;      // may klt find work?  false: it may sleep (I-R6)
//   bool wake_another() const;              // after a pick that ended an idle spell (I-R6)
//   std::size_t evacuate(unsigned klt);     // any thread: klt's unpinned fibers to global
//   bool retiring(unsigned klt) const;      // a spare KLT that is not needed now (I-R7)
//   void spare_on(unsigned klt, bool on);   // the monitor: a spare is needed, or not (I-R7)
//
// Invariants:
//   I-R1 A KLT runs the head of its own queue; new, yielded, preempted and
//        woken fibers go to the tail (round robin: a CPU-bound fiber waits
//        behind at most the fibers queued before it re-enters).  With
//        runnext, a fiber created on a KLT runs before that KLT's queue
//        (LIFO for fresh work: I-R1 holds for the others, not for it, and a
//        spawn loop can keep the rest waiting; proptests show it).
//   I-R2 Work created or woken outside any KLT (OS threads), and with
//        migrate_preempted every preempted fiber, goes to the global queue.
//        Before running its head, a KLT moves global fibers to its own tail:
//        as many as bring its load (queue + running fiber) to the fair load
//        ceil((global + all queues + KLTs) / KLTs); at least one if its
//        queue is empty or on every kGlobalEvery-th pick, so global work is
//        never starved by KLTs above their share (Go's globrunqget takes
//        global/P + 1 and checks the global queue every 61 ticks; counting
//        the local queues too is what keeps a start-up split balanced: CPU-
//        bound fibers are pinned after their first quantum, I-R3, so the
//        split their first run makes is kept).  With migrate_preempted the same
//        intake applies to preempted fibers (taking one per pick instead
//        lets locally created fibers cycle unevenly: the fair-share property
//        found a lag of 5 quanta in 53 rounds).  A KLT whose queue is still
//        empty steals half of another KLT's unpinned fibers (victims from
//        klt+1 on).  Both moves take at most kBatch (128) fibers: a move
//        walks the queue under its lock, and a FIFO spawn tree queues a
//        million fibers, whose half took tens of milliseconds to walk - long
//        enough for the victim to stall on its own lock and for the monitor
//        to evacuate it (Go's steal takes half of a 256-slot ring, so at most
//        128, and its global intake at most 128 too).
//   I-R3 A preempted fiber that is not movable is pinned: it resumes on the
//        KLT it was preempted on (compiled code caches TLS addresses across
//        the preemption, e.g. errno's via the const __errno_location, and
//        resuming elsewhere breaks it).  Pinned is cleared when it runs
//        again.  A movable one (the runtime's stack scan found no TLS
//        address, core/src/tls_scan.cpp; or migrate_preempted) goes to the
//        global queue unpinned, as with migrate_preempted.
//   I-R4 Every runnable fiber is in exactly one queue (I-L1, I-Q1) or in
//        its creator KLT's runnext slot.
//   I-R5 evacuate(k) moves every unpinned fiber of k's queue to the global
//        queue (I-L4), so that KLTs that are busy (they never steal) take them
//        at their next pick (I-R2).  Called from any thread: the monitor calls
//        it for a KLT that takes no scheduling step (core/src/monitor.hpp).
//        Pinned fibers stay (I-R3), and so does the runnext slot (read by its
//        owner KLT without a lock): at most one fiber per KLT.
//   I-R6 Work conservation of the idle protocol.  has_work(k) is false only
//        if the global queue, k's queue and k's runnext slot are empty and
//        every other queue holds only fibers pinned to its KLT (I-L5): a KLT
//        never sleeps while there is work it could take, and never stays
//        awake for work it cannot take.  A push returns true (wake a KLT)
//        whenever it leaves work a sleeping KLT could take, except the one
//        fiber its own, awake KLT runs next: it went to the global queue, or
//        the pusher's queue (plus its runnext slot) holds more than one fiber
//        and at least one unpinned.  A KLT that found work after sleeping
//        wakes another if such work remains (wake_another; Go's spinning M
//        does the same), so a burst of pushes wakes as many KLTs as it needs.
//   I-R7 Spare KLTs (slots nklts .. nklts+spares-1, none in the simulator):
//        the monitor turns a spare on while a KLT is stalled in the kernel
//        (core/src/monitor.hpp), so at most nklts KLTs run fibers outside a
//        stall.  An on spare is a KLT like the others.  A spare that is off
//        (retiring) takes no global work and steals nothing, sends every
//        unpinned fiber it holds or pushes (created, yielded, woken) to the
//        global queue, and runs only the fibers preempted on it (pinned,
//        I-R3) until none is left; then it sleeps apart (sched.cpp), never
//        in the idle set, so a notify meant for a regular KLT is never spent
//        on it.  Slots above span() were never started: every loop over the
//        queues stops at span(), so a runtime that never needed a spare pays
//        nothing for the reserve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fiber/detail/local_queue.hpp"
#include "fiber/detail/run_queue.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber::detail {

inline constexpr unsigned kNoKlt = ~0u;

struct policy_opts {
  bool runnext = false;
  bool migrate_preempted = false;
};

template <class Seam, class Node>
class sched_policy {
 public:
  // nklts regular KLTs and `spares` spare slots (I-R7), all off at first.
  explicit sched_policy(unsigned nklts, policy_opts o = {}, unsigned spares = 0)
      : nklts_(nklts), opts_(o), local_(new local_queue<Seam, Node>[nklts + spares]),
        next_(new slot[nklts + spares]), spares_(spares), span_(nklts) {
    for (unsigned i = nklts; i < nklts + spares; ++i)
      next_[i].off.store(true, mo::relaxed);  // relaxed: before the policy is published (fiber_init)
  }

  bool on_new(Node* n, unsigned klt) noexcept {
    if (!opts_.runnext || klt == kNoKlt || retiring(klt)) return push(n, klt, false);
    // The previous runnext occupant is demoted to the tail (Go does the same).
    if (Node* old = next_[klt].n) local_[klt].push_back(old);
    n->pinned.store(false);  // owned by the creator until it is in the slot
    next_[klt].n = n;        // owner KLT only: no other KLT reads its slot
    return wants_notify(klt);
  }
  bool on_yield(Node* n, unsigned klt) noexcept { return push(n, klt, false); }
  bool on_preempted(Node* n, unsigned klt, bool movable = false) noexcept {
    FIBER_ASSERT(klt != kNoKlt, "preempted outside a KLT");
    if (preempted_moves(movable)) return push(n, kNoKlt, false);
    return push(n, klt, true);
  }
  // I-R3: where on_preempted puts a fiber: true, the global queue unpinned
  // (the trace records it so: core/src/trace.cpp).
  bool preempted_moves(bool movable) const noexcept { return opts_.migrate_preempted || movable; }
  bool on_wake(Node* n, unsigned klt) noexcept { return push(n, klt, false); }

  Node* pick_next(unsigned klt) noexcept {
    if (retiring(klt)) return pick_retiring(klt);  // I-R7
    if (opts_.runnext) {
      if (Node* n = next_[klt].n) {
        next_[klt].n = nullptr;
        return n;
      }
    }
    // relaxed (both): a hint; a stale reading shifts one intake's size only.
    if (next_[klt].stalled.load(mo::relaxed)) next_[klt].stalled.store(false, mo::relaxed);
    take_global(klt);  // I-R2
    return pick_local(klt);
  }

  // I-R6: the idle test of KLT klt (called by klt itself).
  bool has_work(unsigned klt) const noexcept {
    if (local_[klt].size_hint() != 0) return true;
    if (retiring(klt)) return false;  // I-R7: its own pinned fibers only
    if (global_.size_hint() != 0) return true;
    if (opts_.runnext && next_[klt].n != nullptr) return true;
    const unsigned n = span();
    for (unsigned i = 0; i < n; ++i)
      if (i != klt && local_[i].stealable_hint() != 0) return true;
    return false;
  }
  // I-R6: work a sleeping KLT could take and no awake KLT runs next.  Another
  // KLT's runnext slot is its owner's alone, so with runnext a queue holding
  // one unpinned fiber counts (its owner may run the slot's fiber first).
  bool wake_another() const noexcept {
    if (global_.size_hint() != 0) return true;
    const unsigned n = span();
    for (unsigned i = 0; i < n; ++i)
      if (local_[i].stealable_hint() != 0 && (local_[i].size_hint() > 1 || opts_.runnext)) return true;
    return false;
  }

  // I-R5: returns how many moved; the caller wakes idle KLTs if any did.
  // Marks klt stalled, so that the intake (I-R2) shares global work among the
  // others only, until klt picks again.
  std::size_t evacuate(unsigned klt) noexcept {
    next_[klt].stalled.store(true, mo::relaxed);  // relaxed: a hint for take_global
    return local_[klt].evacuate_into(global_);
  }

  // Anything queued anywhere (shutdown and the deadlock detector).
  bool has_work_hint() const noexcept {
    if (global_.size_hint() != 0) return true;
    const unsigned n = span();
    for (unsigned i = 0; i < n; ++i)
      if (local_[i].size_hint() != 0) return true;
    return false;
  }
  std::size_t queued_hint(unsigned klt) const noexcept { return local_[klt].size_hint(); }
  std::size_t global_hint() const noexcept { return global_.size_hint(); }
  unsigned klts() const noexcept { return nklts_; }
  unsigned spares() const noexcept { return spares_; }

  // I-R7.  relaxed (all): a spare's on/off flag is a hint read at every pick
  // and push of a spare; the monitor's wake (sched.cpp) and the idle set's
  // fences order it where a decision depends on it (a spare's sleep).
  // One compare for a configured KLT (kNoKlt is above nklts_ too): this is
  // on every pick and push, and spares are rare.
  bool retiring(unsigned klt) const noexcept {
    return __builtin_expect(klt >= nklts_, 0) && klt != kNoKlt && next_[klt].off.load(mo::relaxed);
  }
  // The monitor turns spare slot `klt` on or off; the first time on, the
  // slot enters span() before its KLT starts.
  void spare_on(unsigned klt, bool on) noexcept {
    FIBER_ASSERT(klt >= nklts_ && klt < nklts_ + spares_, "not a spare slot");
    if (on && klt >= span_.load(mo::relaxed)) span_.store(klt + 1, mo::relaxed);  // monitor only
    next_[klt].off.store(!on, mo::relaxed);
  }
  // Slots that ever held a KLT: the regular ones and the spares started so far.
  unsigned span() const noexcept { return span_.load(mo::relaxed); }
  const policy_opts& opts() const noexcept { return opts_; }

 protected:
  bool push(Node* n, unsigned klt, bool pinned) noexcept {
    if (retiring(klt) && !pinned) klt = kNoKlt;  // I-R7: a retiring spare keeps only pinned fibers
    n->pinned.store(pinned);  // guarded: n is owned by the pusher until queued
    if (klt == kNoKlt) global_.push_back(n); else local_[klt].push_back(n);
    return wants_notify(klt);
  }
  // I-R6, the push side: the global queue (maybe every KLT sleeps), or the
  // pusher's queue holds more than the one fiber its own, awake, KLT will run
  // next and a thief could take one.  Called by KLT klt itself (runnext slot).
  bool wants_notify(unsigned klt) const noexcept {
    if (klt == kNoKlt) return true;
    if (span() == 1) return false;
    const std::size_t in_slot = opts_.runnext && next_[klt].n != nullptr ? 1 : 0;
    return local_[klt].stealable_hint() != 0 && local_[klt].size_hint() + in_slot > 1;
  }
  // The head of klt's queue, else half of another KLT's unpinned fibers (I-R2).
  Node* pick_local(unsigned klt) noexcept {
    if (Node* n = local_[klt].pop_front()) return unpin(n);
    const unsigned span_now = span();
    for (unsigned i = 1; i < span_now; ++i) {
      unsigned victim = (klt + i) % span_now;
      if (local_[victim].steal_half_into(local_[klt], kBatch) != 0) {
        if (Node* n = local_[klt].pop_front()) return unpin(n);
      }
    }
    return nullptr;
  }
  // I-R2: the balanced intake of global work.  Loads count each KLT's
  // running fiber (the picker's is requeued after the pick when it was
  // preempted or yielded), so a KLT that already has its share takes none.
  // KLTs the monitor found stalled (evacuate) take no part: they cannot run
  // their share, and the others must take the evacuated fibers (I-R5).
  void take_global(unsigned klt) noexcept {
    const std::size_t g = global_.size_hint();
    if (g == 0) return;
    std::size_t total = g, active = 0;
    const unsigned n = span();
    for (unsigned i = 0; i < n; ++i) {
      // relaxed: hint (evacuate).  A spare that is off takes no share (I-R7);
      // the picker itself always counts (active >= 1).
      if (i != klt && (next_[i].stalled.load(mo::relaxed) || retiring(i))) continue;
      total += local_[i].size_hint() + 1;
      ++active;
    }
    const std::size_t fair = (total + active - 1) / active;
    const std::size_t mine = local_[klt].size_hint() + 1;
    std::size_t want = fair > mine ? fair - mine : 0;
    // At least one when this KLT has nothing else to run, and every
    // kGlobalEvery picks (Go checks its global queue every 61 ticks), so a
    // KLT above its share cannot starve global work while others are busy.
    if (++next_[klt].picks % kGlobalEvery == 0 || mine == 1) want = want ? want : 1;
    if (want == 0) return;
    global_.steal_into(local_[klt], want < kBatch ? want : kBatch);
  }
  // I-R7: a retiring spare first sends what it could hand on (unpinned) to
  // the global queue, then runs its pinned fibers in order.  Out of line:
  // the switch path of configured KLTs never gets here.
  [[gnu::noinline]] Node* pick_retiring(unsigned klt) noexcept {
    if (local_[klt].stealable_hint() != 0) local_[klt].evacuate_into(global_);
    if (Node* n = local_[klt].pop_front()) return unpin(n);
    return nullptr;
  }
  static Node* unpin(Node* n) noexcept {
    n->pinned.store(false);  // owned by the popping KLT now
    return n;
  }

  static constexpr unsigned kGlobalEvery = 61;
  static constexpr std::size_t kBatch = 128;  // most fibers one steal or intake moves (I-R2)
  struct alignas(64) slot {  // owner KLT only
    Node* n = nullptr;       // runnext
    unsigned picks = 0;      // intakes tried (I-R2's kGlobalEvery)
    typename Seam::template atomic<bool> stalled{false};  // evacuated; cleared at its next pick
    typename Seam::template atomic<bool> off{false};      // a spare not needed now (I-R7)
  };

  unsigned nklts_;
  policy_opts opts_;
  std::unique_ptr<local_queue<Seam, Node>[]> local_;  // I-L: the owner pushes without a lock
  run_queue<Seam, Node> global_;  // any thread pushes: a locked list (I-Q)
  std::unique_ptr<slot[]> next_;
  unsigned spares_;
  typename Seam::template atomic<unsigned> span_;  // written by the monitor only (spare_on)
};

template <class Seam, class Node>
using fifo_policy = sched_policy<Seam, Node>;

template <class Seam, class Node>
class runnext_policy : public sched_policy<Seam, Node> {
 public:
  explicit runnext_policy(unsigned nklts) : sched_policy<Seam, Node>(nklts, policy_opts{true, false}) {}
};

template <class Seam, class Node>
class migrate_policy : public sched_policy<Seam, Node> {
 public:
  explicit migrate_policy(unsigned nklts) : sched_policy<Seam, Node>(nklts, policy_opts{false, true}) {}
};

}  // namespace fiber::detail
