// fiber/detail/klt_loop.hpp - the scheduling decisions of a KLT, written once.
// core/src/sched.cpp instantiates them with the native runtime (real stacks,
// signals, futexes); proptests/sim_driver.hpp with the simulator (virtual KLTs,
// fibers and time), so every property checks the loop that ships.
//
// What is decided here, and in what order:
//   leave      a running fiber gives up KLT k asking for an action (yield,
//              preempted, park, exit).  Timers are expired first, so a sleeper
//              due during the quantum that ends queues ahead of the leaving
//              fiber (wake-up lateness is one quantum, not two); then k picks.
//              A fiber picked: switch straight to it.  None: a yield or
//              preemption continues the same fiber; a park or an exit goes to
//              k's scheduler context, and so does a yield on a retiring spare
//              (I-R7: the yielded fiber goes to the global queue).
//   act_on     once the fiber that left is off its stack (I1), whoever landed
//              on k acts on its action: requeue it (yield, preempted), commit
//              its park (a wake token that came first makes it runnable again,
//              I-P1), or finish its exit.
//   finish_exit  the exit is recorded, then the live count drops (the last
//              fiber wakes a waiting shutdown, I7), then the join hand-off,
//              which may free the fiber: a joiner never finds the fiber still
//              counted live.
//   push       every push onto the run queues (new, yielded, preempted,
//              woken) wakes an idle KLT when the policy says it leaves work a
//              sleeping KLT could take (I-R6).
//   sched_pick k's scheduler context picks; a pick that ends an idle spell
//              wakes another sleeper if work remains (I-R6); nothing to pick
//              and the runtime stopping with no work anywhere ends the loop;
//              nothing to pick on a retiring spare sends it to its own sleep.
//   idle       a KLT that found nothing announces itself as a sleeper, then
//              (may_sleep) sleeps only if no work it may take exists, the
//              runtime is not stopping, it is not a retiring spare (the
//              monitor turns a spare off, then notifies: I-I1 makes one of the
//              two seen) and no deadline is due; it sleeps until
//              the earliest deadline.  After the sleep (or its refusal) timers
//              are expired.
//
// The environment Env supplies the mechanism:
//   using fiber_type = ...;
//   static constexpr bool nothrow;              true: its members never throw
//                                               (native); the simulator's throw
//                                               a violation out of the loop
//   void process_timers(unsigned k);            expire due timers (wakes push)
//   fiber_type* pick_next(unsigned k);          the policy's pick
//   bool push(fiber_type*, unsigned k, push_kind);  the policy's on_*; true: notify
//   void notify_one();                          wake one sleeping KLT
//   bool wake_another();                        the policy's, after an idle spell
//   bool has_work(unsigned k);                  the policy's: may k find work
//   bool has_any_work();                        anything queued anywhere
//   bool retiring(unsigned k);                  k is a spare KLT that is not needed
//                                               now (policy.hpp I-R7): it leaves
//                                               the loop for its own sleep
//   bool stopping();
//   std::uint64_t next_deadline();  std::uint64_t now();
//   std::uint32_t prepare_sleep(unsigned k);    idle_set::prepare_sleep: k announced
//   void cancel_sleep(unsigned k);              k does not sleep after all
//   void sleep(unsigned k, std::uint32_t key, std::uint64_t until);  until woken or until
//   void left(unsigned k, fiber_type*, klt_action);  checks and records of the leaver
//   bool commit_park(unsigned k, fiber_type*);  false: a wake token came first
//   void exited(unsigned k, fiber_type*);       the exit recorded (before the count)
//   bool drop_live();                           counts the exit (I7); true: a
//                                               shutdown must look at the count
//                                               again (native: one waits; the
//                                               simulator: it was the last)
//   void wake_shutdown();
//   void join_exit(unsigned k, fiber_type*);    the join hand-off; may free it
#pragma once

#include <cstdint>
#include <type_traits>

#include "fiber/detail/assert.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber::detail {

// What a fiber asked for when it left its KLT.
enum class klt_action : unsigned char { none, yield, preempted, park, exit };

// Why a fiber is pushed onto the run queues (the policy's on_new/on_yield/
// on_preempted/on_wake).
enum class push_kind : unsigned char { created, yielded, preempted, woken };

// Self: a subclass that hides some of these members (the property tests'
// controls plant one decision wrong that way, proptests/planted.hpp); every
// call between the members goes through it, so the rest stays the shipped code.
template <class Env, class Self = void>
struct klt_loop {
  using fiber_type = typename Env::fiber_type;
  using S = std::conditional_t<std::is_void_v<Self>, klt_loop, Self>;

  // Where KLT k goes when its running fiber leaves asking for `a`.
  struct leave_plan {
    fiber_type* next;   // switch straight to it
    bool to_scheduler;  // no next fiber, and the leaver cannot continue
    bool stays() const noexcept { return next == nullptr && !to_scheduler; }
  };
  static leave_plan plan_leave(Env& e, unsigned k, klt_action a) noexcept(Env::nothrow) {
    e.process_timers(k);  // first: a sleeper due by now queues ahead of the leaver
    fiber_type* next = e.pick_next(k);
    return {next, next == nullptr && (a == klt_action::park || a == klt_action::exit ||
                                      (a == klt_action::yield && e.retiring(k)))};
  }

  static void push(Env& e, fiber_type* f, unsigned k, push_kind why) noexcept(Env::nothrow) {
    if (e.push(f, k, why)) e.notify_one();  // I-R6
  }

  // f left KLT k asking for `a` and is off its stack now (I1).
  static void act_on(Env& e, unsigned k, fiber_type* f, klt_action a) noexcept(Env::nothrow) {
    e.left(k, f, a);
    switch (a) {
      case klt_action::yield: S::push(e, f, k, push_kind::yielded); break;
      case klt_action::preempted: S::push(e, f, k, push_kind::preempted); break;
      case klt_action::park:
        // I-P5/I1: the park is committed only now; a token that came first
        // makes the fiber runnable again at once (I-P1).
        if (!e.commit_park(k, f)) S::push(e, f, k, push_kind::yielded);
        break;
      case klt_action::exit: S::finish_exit(e, k, f); break;
      case klt_action::none: FIBER_ASSERT(false, "fiber switched out without an action"); break;
    }
  }

  static void finish_exit(Env& e, unsigned k, fiber_type* f) noexcept(Env::nothrow) {
    e.exited(k, f);
    // The live count first, so a joiner woken below never sees the fiber
    // still counted (I7).
    if (e.drop_live()) e.wake_shutdown();
    e.join_exit(k, f);
  }

  // k's scheduler context has landed with `last`, which left asking for `a`.
  static void landed_in_scheduler(Env& e, unsigned k, fiber_type* last, klt_action a) noexcept(Env::nothrow) {
    e.process_timers(k);
    S::act_on(e, k, last, a);
  }

  // One pick of k's scheduler context.  `idled`: k looked for work and found
  // none since it last ran a fiber.
  struct sched_choice {
    fiber_type* run;  // run it
    bool stop;        // nothing to run and the runtime is stopping: leave the loop
    bool retire;      // nothing to run and k is a retiring spare (I-R7): its own sleep
  };
  static sched_choice sched_pick(Env& e, unsigned k, bool& idled) noexcept(Env::nothrow) {
    if (fiber_type* f = e.pick_next(k)) {
      if (idled && e.wake_another()) e.notify_one();  // I-R6: the end of an idle spell
      idled = false;
      return {f, false, false};
    }
    const bool stop = e.stopping() && !e.has_any_work();
    return {nullptr, stop, !stop && e.retiring(k)};
  }

  // May idle KLT k sleep, and until when (kNoDeadline: until woken)?  Asked
  // after the sleeper has announced itself (idle_set::prepare_sleep), so a
  // push that this check misses notifies it.
  static bool may_sleep(Env& e, unsigned k, std::uint64_t& until) noexcept(Env::nothrow) {
    // I-R6: only work k may take keeps it awake (not fibers pinned elsewhere).
    if (e.has_work(k) || e.stopping() || e.retiring(k)) return false;
    until = e.next_deadline();
    return until == kNoDeadline || until > e.now();
  }

  // After k's idle sleep, or its refusal to sleep.
  static void after_idle(Env& e, unsigned k, bool& idled) noexcept(Env::nothrow) {
    idled = true;
    e.process_timers(k);
  }

  // k's scheduler context found nothing to run and the runtime goes on: the
  // idle protocol (idle.hpp I-I1: announce, re-check, sleep), then timers.
  static void idle(Env& e, unsigned k, bool& idled) noexcept(Env::nothrow) {
    const std::uint32_t key = e.prepare_sleep(k);
    std::uint64_t until = kNoDeadline;
    if (S::may_sleep(e, k, until)) e.sleep(k, key, until);
    else e.cancel_sleep(k);
    S::after_idle(e, k, idled);
  }
};

}  // namespace fiber::detail
