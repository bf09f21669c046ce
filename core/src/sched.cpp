// core/src/sched.cpp - the KLT scheduler loop and context switches: the
// native environment of klt_loop.hpp (which holds the scheduling decisions,
// shared with the simulator in proptests/) and the switching mechanism.  The
// deadline heap is in timers.cpp, the native seam (futex, the blocking side
// of the park protocol) in native_seam.cpp.  Vocabulary, fiber states and the
// invariants I1..I7 are in runtime.hpp.
//
// Switching: a fiber that leaves its KLT (yield, park, exit, preemption)
// picks the next runnable fiber itself and switches straight to it; the
// fiber that lands acts on what the previous one asked (finish_prev: requeue,
// commit the park, exit), because only then is the previous one off its stack
// (I1).  When nothing is runnable, a park or exit switches to the KLT's
// scheduler context (its own stack), which does the same and then sleeps.
// One switch per yield instead of two through the scheduler.
//
// Designs rejected:
//   * a timer thread for sleeps.  Idle KLTs sleep until the earliest deadline
//     instead, and busy KLTs check the heap at every scheduling decision.
//   * ucontext: a sigprocmask syscall per switch (papers/platform.md).
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>

#include "arch/context.hpp"
#include "fiber/detail/klt_loop.hpp"
#include "monitor.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"
#include "signals.hpp"
#include "timers.hpp"
#include "trace.hpp"

namespace fiber::detail {

std::atomic<runtime*> g_rt{nullptr};
knobs_t knobs;

// initial-exec: read from the tick handler, so no lazy TLS allocation.
static thread_local klt* tls_klt __attribute__((tls_model("initial-exec"))) = nullptr;

// Not inlined and not pure: a fiber may resume on another KLT after any
// voluntary switch, so the KLT is re-read each time (I3 discussion).
__attribute__((noinline)) klt* this_klt() noexcept {
  asm volatile("" ::: "memory");
  return tls_klt;
}
klt* tick_klt() noexcept { return tls_klt; }  // for the handler, same thread by definition
void klt_publish_self(klt* k) noexcept { tls_klt = k; }

fcb* current_fiber() noexcept {
  klt* k = this_klt();
  return k ? k->current : nullptr;
}

// ---- the native environment of klt_loop.hpp --------------------------------

namespace {

[[noreturn]] void report_canary(const fcb* f) noexcept {
  char msg[128];
  std::snprintf(msg, sizeof msg, "fiber %llu: stack overflow (canary of an unguarded stack overwritten)",
                static_cast<unsigned long long>(f->id));
  fatal(msg);
}

// Test knob 27: an OS thread's wake lingers after its push and notify, still
// inside make_runnable's gated section (L2), so a test sees whether a
// shutdown that the woken fiber's exit allows waits for the waker to leave.
// Raw nanosleep: libc's is interposed (interpose_sleep.cpp).
void os_wake_linger() noexcept {
  if (!knobs.os_wake_linger.load(std::memory_order_relaxed)) return;  // relaxed: a test knob
  struct timespec ts{0, 200 * 1000 * 1000};
  syscall(SYS_nanosleep, &ts, nullptr);
}

// The runtime and, on a KLT, that KLT (nullptr: an OS thread waking a fiber).
struct native_env {
  using fiber_type = fcb;
  static constexpr bool nothrow = true;
  runtime& rt;
  klt* k;

  void process_timers(unsigned) noexcept { fiber::detail::process_timers(rt); }
  fcb* pick_next(unsigned ki) noexcept { return rt.policy->pick_next(ki); }
  // One policy object whose behaviours are flags fixed at init (policy.hpp).
  bool push(fcb* f, unsigned ki, push_kind why) noexcept {
    switch (why) {
      case push_kind::created: return rt.policy->on_new(f, ki);
      case push_kind::yielded: return rt.policy->on_yield(f, ki);
      case push_kind::preempted: return rt.policy->on_preempted(f, ki, f->movable);  // tls_scan.cpp
      case push_kind::woken: return rt.policy->on_wake(f, ki);
    }
    return false;
  }
  void notify_one() noexcept { rt.idle.notify_one(); }
  bool wake_another() noexcept { return rt.policy->wake_another(); }
  bool has_work(unsigned ki) noexcept { return rt.policy->has_work(ki); }
  bool has_any_work() noexcept { return rt.has_work(); }
  bool retiring(unsigned ki) noexcept { return rt.policy->retiring(ki); }
  // acquire: pairs with shutdown's release (the loop's exit test); in
  // may_sleep it is read after the idle fence, where relaxed would do.
  bool stopping() noexcept { return rt.stopping.load(std::memory_order_acquire); }
  std::uint64_t next_deadline() noexcept {
    return rt.next_deadline.load(std::memory_order_relaxed);  // relaxed: after the idle fence
  }
  std::uint64_t now() noexcept { return native_seam::now_ns(); }
  std::uint32_t prepare_sleep(unsigned) noexcept { return rt.idle.prepare_sleep(); }
  void cancel_sleep(unsigned) noexcept { rt.idle.cancel_sleep(); }
  void sleep(unsigned, std::uint32_t key, std::uint64_t until) noexcept {
    rt.stats.idle_sleeps.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    // release: the detector (deadlock.cpp) that sees idle also sees idle_sleeps;
    // the monitor's deep sleep (monitor.cpp) is ordered by its own fences.
    k->idle.store(true, std::memory_order_release);
    klt_timer_idle(*k, true);
    trace_idle(k, true);
    rt.idle.sleep(key, until);
    trace_idle(k, false);
    k->idle.store(false, std::memory_order_relaxed);  // relaxed: ordered by the fence in monitor_klt_woke
    monitor_klt_woke();
    klt_timer_idle(*k, false);
  }

  void left(unsigned, fcb* f, klt_action a) noexcept {
    if (!stack_canary_ok(f)) report_canary(f);
    auto sp = reinterpret_cast<std::uintptr_t>(f->sp);
    if (sp < f->low_sp) f->low_sp = sp;  // stacks.cpp: trim only stacks seen deep
    if (f->sp_overflowed(sp))  // stack clash (slots.cpp)
      report_stack_overflow(f, "sp", sp, "a frame skipped the guard; seen at a switch");
    trace_leave(k, f, a);  // yield, preempt: before f is queued (trace.hpp)
    if (a == klt_action::yield || a == klt_action::preempted) f->diag.move(fstate::running, fstate::runnable);
  }
  bool commit_park(unsigned, fcb* f) noexcept {
    // The diag state says parked before the commit, so the waker's
    // "runnable" (wake) is always the later store.
    f->diag.move(fstate::running, fstate::parked);
    if (trace_park(k, f)) {  // records the park; true only under test knob 18 (trace.hpp)
      f->diag.move(fstate::parked, fstate::runnable);
      return false;
    }
    if (f->park.try_commit()) return true;
    f->diag.move(fstate::parked, fstate::runnable);
    trace_park_abort(k, f);
    return false;
  }
  void exited(unsigned ki, fcb* f) noexcept {
    f->diag.move(fstate::running, fstate::exited);  // before join.exit may free it
    trace_exit(f);  // before the live count and the join hand-off (tools/trace_check.py)
    stack_stash_exited(ki, f);  // off its stack now (I1): warm for the next fiber to start here
  }
  // I7 (live_count.hpp LC4): the exit's half of the store-buffering pair
  // with fiber_shutdown's wait.  true: a shutdown waits and sums again.
  bool drop_live() noexcept { return live_exit<native_seam>(k->live, rt.shutdown_waiter); }
  // A shutdown woken here waits for this KLT to leave its loop before it
  // frees anything, so finishing the join protocol afterwards is safe.
  void wake_shutdown() noexcept { live_wake<native_seam>(rt.shutdown_waiter); }
  void join_exit(unsigned, fcb* f) noexcept {
    if (f->join.exit(f->retval) == join_state<native_seam>::free_by::caller) slot_free(f);
  }
};
using loop = klt_loop<native_env>;

}  // namespace

void runtime::on_new(fcb* f, unsigned k) noexcept {
  native_env e{*this, nullptr};  // a push reads only the runtime: no this_klt() call on the create path
  loop::push(e, f, k, push_kind::created);
}

// After landing on a stack: finish the fiber that switched directly to us.
static void finish_prev(klt* k) noexcept {
  fcb* prev = k->prev;
  if (!prev) return;
  k->prev = nullptr;
  int saved = errno;  // I4: the landing fiber's errno is already in place
  native_env e{*g_rt.load(std::memory_order_relaxed), k};  // relaxed: set while KLTs run
  loop::act_on(e, k->index, prev, k->prev_action);
  errno = saved;
}

static void count_switch(klt* k) noexcept {
  k->switches.store(k->switches.load(std::memory_order_relaxed) + 1,
                    std::memory_order_relaxed);  // relaxed: statistics, one writer
}

// A scheduling step that switched nothing (monitor.hpp: the monitor counts
// steps + switches, so the switch path pays nothing more).  relaxed: one
// writer; the monitor only compares two readings taken a period apart.
static void count_step(klt* k) noexcept {
  k->steps.store(k->steps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// Makes `next` the running fiber of k (errno, exception globals, first frame).
static void install(klt* k, fcb* next) noexcept {
  if (!next->sp) {  // first run: a warm stack, then the first frame (slots.cpp, stacks.cpp)
    stack_first_run(k->index, next);
    next->sp = ctx_make(next->stack_hi(), fiber_entry, next);
  }
  k->current = next;
  k->running.store(next->id, std::memory_order_relaxed);  // relaxed: the id is the whole datum (monitor.cpp)
  trace_run(k, next);  // before last_klt changes: the record keeps the previous KLT
  next->last_klt = k->index;
  next->diag.move(fstate::runnable, fstate::running);
  if (!knobs.no_errno_swap.load(std::memory_order_relaxed)) errno = next->saved_errno;  // I4
  if (!knobs.no_eh_swap.load(std::memory_order_relaxed)) *k->eh = next->saved_eh;      // I4
  if (next->sigmask != k->sigmask) signals_apply(*k, next->sigmask);  // I8: rare, a syscall
  count_switch(k);
}

// ---- switching -------------------------------------------------------------

// From a fiber: leave the KLT, asking for `a`.  If another fiber is runnable
// the switch goes straight to it and that fiber acts on `a` once it has
// landed (finish_prev); otherwise a yield or preemption simply continues, and
// a park or exit switches to the KLT's scheduler, which acts on it.  Runs
// with the fiber's preempt_count raised so no tick interleaves (I2, I5).
// Nothing KLT-local is used after the switch: the fiber may resume on
// another KLT.
void switch_out(klt_action a) noexcept {
  klt* k = this_klt();
  fcb* f = k->current;
  f->gate.enter_switch();  // I-G1: the handler sees the count before k's fields
  native_env e{*g_rt.load(std::memory_order_relaxed), k};  // relaxed: set while KLTs run
  const loop::leave_plan to = loop::plan_leave(e, k->index, a);
  if (!to.stays()) {
    fcb* next = to.next;
    if (!knobs.no_errno_swap.load(std::memory_order_relaxed)) f->saved_errno = errno;  // I4
    if (!knobs.no_eh_swap.load(std::memory_order_relaxed)) f->saved_eh = *k->eh;      // I4
    void** fake = a == klt_action::exit ? nullptr : &f->asan_fake_stack;
    if (next) {
      k->prev = f;
      k->prev_action = a;
      install(k, next);
      san_start_switch(fake, next->stack_lo(), next->stack_hi() - next->stack_lo(), next->tsan_fiber);
      fiber_ctx_switch(&f->sp, next->sp);
    } else {
      k->action = a;
      san_start_switch(fake, k->stack_map, k->stack_map_size, k->tsan_fiber);
      fiber_ctx_switch(&f->sp, k->sched_sp);
    }
    san_finish_switch(f->asan_fake_stack);
    finish_prev(this_klt());
  } else {
    count_step(k);  // a step without a switch (a switch counts in install)
  }
  f->gate.leave_switch();  // rescheduled: a refused tick is satisfied (I-G3)
}

}  // namespace fiber::detail

extern "C" void fiber_finish(void* fp, void* ret) {
  auto* f = static_cast<fiber::detail::fcb*>(fp);
  f->retval = ret;
  fiber::detail::switch_out(fiber::detail::klt_action::exit);
  __builtin_unreachable();
}

namespace fiber::detail {

// First frame of every fiber (arch/context.hpp: entry(arg)).
void fiber_entry(void* arg) {
  san_finish_switch(nullptr);
  finish_prev(this_klt());
  // A new fiber starts with preempt_count 1 (fiber_create), so the window
  // between install() and this point is covered by I5 like every other
  // switch; a tick that landed there is taken now.
  native_seam::preempt_enable();
  fcb* f = static_cast<fcb*>(arg);
  // The runtime's calls above leave TLS addresses (errno's, this KLT's) in
  // dead stack slots where the fiber's frames go next and in registers: the
  // stack scan of each preemption (tls_scan.cpp) took them for the fiber's
  // and kept plain spinners on the KLT they started on (a quarter of their
  // preemptions; 4 of 8 workers of runtime_spare_test).  Hence the start
  // function runs with those cleared, and the exit follows in fiber_finish.
  fiber_run_clean(f->start, f->arg, f);
}

// Scheduler side: run f on k until a fiber switches back to the scheduler
// (fibers may have switched among themselves meanwhile), then act on it.
static void run_fibers(native_env& e, klt* k, fcb* f) noexcept {
  install(k, f);
  san_start_switch(&k->asan_fake_stack, f->stack_lo(), f->stack_hi() - f->stack_lo(), f->tsan_fiber);
  fiber_ctx_switch(&k->sched_sp, f->sp);
  san_finish_switch(k->asan_fake_stack);
  FIBER_ASSERT(k->prev == nullptr, "a direct switch left unfinished on the way to the scheduler");
  fcb* last = k->current;
  k->current = nullptr;
  k->running.store(0, std::memory_order_relaxed);  // relaxed: as in install()
  klt_action a = k->action;
  k->action = klt_action::none;
  loop::landed_in_scheduler(e, k->index, last, a);
}

// ---- the KLT loop ----------------------------------------------------------

// A spare KLT that is off (policy.hpp I-R7) sleeps here, apart from the idle
// set, until the monitor turns it on (monitor.cpp) or the runtime stops.  It
// may have taken a notify meant for a regular KLT on its way out of the idle
// sleep, so it passes one on.  The protocol on spare_gen: the monitor stores
// on, then bumps the word (release) and wakes; here the word is read
// (acquire) before the flag, and the futex sleeps only while the word is
// unchanged, so a bump after the read is never slept through.
static void spare_dormant(runtime& rt, klt* k) noexcept {
  // release: as native_env::sleep (the detector reads idle with acquire).
  k->idle.store(true, std::memory_order_release);
  klt_timer_idle(*k, true);
  trace_idle(k, true);
  rt.idle.notify_one();
  for (;;) {
    std::uint32_t gen = k->spare_gen.load(mo::acquire);  // acquire: the monitor's or stop_klts' release bump
    // acquire: pairs with shutdown's release, as native_env::stopping
    if (!rt.policy->retiring(k->index) || rt.stopping.load(std::memory_order_acquire)) break;
    native_seam::os_wait(k->spare_gen, gen, kNoDeadline);
  }
  trace_idle(k, false);
  k->idle.store(false, std::memory_order_relaxed);  // relaxed: ordered by the fence in monitor_klt_woke
  monitor_klt_woke();
  klt_timer_idle(*k, false);
}

void* klt_main(void* arg) {
  klt* k = static_cast<klt*>(arg);
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: pairs with fiber_init's release
  klt_publish_self(k);
  k->tid.store(gettid(), std::memory_order_relaxed);  // relaxed: a diagnostic snapshot (dump.cpp)
  char name[16];
  std::snprintf(name, sizeof name, "fiber-klt-%u", k->index);
  pthread_setname_np(pthread_self(), name);  // what ps, top and gdb show
  k->eh = reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
  klt_altstack_install(*k);
  tls_range_init(*k);     // what a preempted fiber must not hold to move (I-R3)
  signals_klt_start(*k);  // I8
  k->tsan_fiber = san_current_fiber();
  klt_timer_start(*k, rt.cfg);
  native_env e{rt, k};
  if (k->index >= rt.nklts) spare_dormant(rt, k);  // a spare starts turned on; see there
  process_timers(rt);
  bool idled = false;  // this KLT looked for work and found none since it last ran a fiber
  for (;;) {
    count_step(k);
    if (knobs.sched_stall.load(std::memory_order_relaxed)) knob_sched_stall(rt);  // relaxed: a test knob (monitor.cpp)
    const loop::sched_choice c = loop::sched_pick(e, k->index, idled);
    if (c.run) {
      run_fibers(e, k, c.run);
      continue;
    }
    if (c.stop) break;
    if (c.retire) {  // I-R7: a spare nobody needs now
      spare_dormant(rt, k);
      idled = true;
      continue;
    }
    loop::idle(e, k->index, idled);
  }
  klt_timer_stop(*k);
  klt_publish_self(nullptr);
  return nullptr;
}

void make_runnable(fcb* f) noexcept {
  // A waking fiber's KLT must stay its KLT from reading it to the end of the
  // push: the push goes into that KLT's own queue, whose only producer is its
  // owner (local_queue.hpp), and with migrate_preempted a tick between the two
  // could resume the waker on another KLT.  (The queue's own preemption guard
  // covers only the push itself.  Nothing for an OS thread or the scheduler
  // context, which no tick moves.)  The gate directly, not the seam's calls:
  // each of those looks the KLT up again, and every wake pays.
  klt* k = this_klt();
  fcb* self = k ? k->current : nullptr;
  if (self) {
    self->gate.disable();
    k = this_klt();  // a tick before the disable may have moved the waker (migrate_preempted)
  }
  // An OS-thread waker holds the runtime's call gate across the queue push and
  // the idle notify: once f is queued it may run, exit, and let a shutdown
  // finish, which must not free the runtime under this notify (L2).  The gate
  // is open here because f is parked, hence live (L4).
  bool gated = !k && os_wake_enter();
  native_env e{*g_rt.load(std::memory_order_acquire), k};  // acquire: as above
  loop::push(e, f, k ? k->index : kNoKlt, push_kind::woken);
  if (!k) os_wake_linger();  // test knob 27
  if (gated) os_wake_leave();
  if (self && self->gate.enable()) switch_out(klt_action::yield);  // I5, I-G2: as preempt_enable
}

}  // namespace fiber::detail
