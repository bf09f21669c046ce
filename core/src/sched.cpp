// core/src/sched.cpp - the KLT scheduler loop, context switches, timers and
// the native half of the park protocol.  Vocabulary, fiber states and the
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
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>

#include "arch/context.hpp"
#include "monitor.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"
#include "signals.hpp"

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

// ---- policy dispatch -------------------------------------------------------

void runtime::on_new(fcb* f, unsigned k) noexcept {
  if (runnext) runnext->on_new(f, k); else fifo->on_new(f, k);
  if ((runnext ? runnext->wants_notify(k) : fifo->wants_notify(k))) idle.notify_one();
}
void runtime::on_yield(fcb* f, unsigned k) noexcept {
  if (runnext) runnext->on_yield(f, k); else fifo->on_yield(f, k);
}
void runtime::on_preempted(fcb* f, unsigned k) noexcept {
  if (knobs.migrate_preempted.load(std::memory_order_relaxed)) {  // test knob: negative control of I3
    on_wake(f, kNoKlt);
    return;
  }
  if (runnext) runnext->on_preempted(f, k); else fifo->on_preempted(f, k);
}
void runtime::on_wake(fcb* f, unsigned k) noexcept {
  if (runnext) runnext->on_wake(f, k); else fifo->on_wake(f, k);
  if ((runnext ? runnext->wants_notify(k) : fifo->wants_notify(k))) idle.notify_one();
}
fcb* runtime::pick_next(unsigned k) noexcept {
  return runnext ? runnext->pick_next(k) : fifo->pick_next(k);
}
bool runtime::has_work() const noexcept {
  return runnext ? runnext->has_work_hint() : fifo->has_work_hint();
}

// ---- timers (I6) -----------------------------------------------------------

static void publish_deadline(runtime& rt) noexcept {
  // relaxed: read as a hint; the idle protocol's fences order it (idle.hpp).
  rt.next_deadline.store(rt.timers.next_deadline(), std::memory_order_relaxed);
}

void timer_add(fcb* f, std::uint64_t deadline) noexcept {
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: pairs with fiber_init's publication
  bool earliest;
  {
    lock_guard<spinlock> g(rt.timer_lock);
    rt.timers.push(f, deadline);
    earliest = rt.timers.next_deadline() == deadline;
    publish_deadline(rt);
  }
  if (earliest) rt.idle.notify_all();  // sleeping KLTs recompute their timeout
}

void timer_cancel(fcb* f) noexcept {
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: as above
  lock_guard<spinlock> g(rt.timer_lock);
  if (rt.timers.remove(f)) publish_deadline(rt);
}

static void process_timers(runtime& rt) noexcept {
  std::uint64_t nd = rt.next_deadline.load(std::memory_order_relaxed);  // relaxed: hint, rechecked under lock
  if (nd == kNoDeadline) return;
  std::uint64_t now = native_seam::now_ns();
  if (now < nd) return;
  lock_guard<spinlock> g(rt.timer_lock);
  while (fcb* t = rt.timers.pop_expired(now)) t->park.unpark();  // under the lock: I6
  publish_deadline(rt);
}

static void finish_exit(runtime& rt, fcb* f) noexcept {
  f->diag.move(fstate::running, fstate::exited);  // before join.exit may free it
  // live first, so a joiner woken below never sees the fiber still counted.
  // A shutdown woken here waits for this KLT to leave its loop before it
  // frees anything, so finishing the join protocol afterwards is safe.
  // seq_cst: the "store live" of a store-buffering pair with fiber_shutdown
  // (store waiter; load live).  One of the two sees the other (I7).
  if (rt.live.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    if (parker* p = rt.shutdown_waiter.load(std::memory_order_seq_cst)) p->unpark();
  }
  if (f->join.exit(f->retval) == join_state<native_seam>::free_by::caller) slot_free(f);
}

[[noreturn]] static void report_canary(const fcb* f) noexcept {
  char msg[128];
  std::snprintf(msg, sizeof msg, "fiber %llu: stack overflow (canary of an unguarded stack overwritten)",
                static_cast<unsigned long long>(f->id));
  fatal(msg);
}

// Acts on what fiber f asked for when it left KLT k.  Runs only once f is off
// its stack (I1): in the scheduler, or in the next fiber right after the switch.
static void act_on(runtime& rt, klt* k, fcb* f, klt_action a) noexcept {
  if (!stack_canary_ok(f)) report_canary(f);
  auto sp = reinterpret_cast<std::uintptr_t>(f->sp);
  if (f->sp_overflowed(sp))  // stack clash (slots.cpp)
    report_stack_overflow(f, "sp", sp, "a frame skipped the guard; seen at a switch");
  switch (a) {
    case klt_action::yield:
      f->diag.move(fstate::running, fstate::runnable);
      rt.on_yield(f, k->index);
      break;
    case klt_action::preempted:
      f->diag.move(fstate::running, fstate::runnable);
      rt.on_preempted(f, k->index);
      break;
    case klt_action::park:
      // I-P5/I1: commit only now that f is off its stack.  A token that
      // arrived meanwhile makes f runnable again at once (I-P1).  The diag
      // state says parked before the commit, so the waker's "runnable"
      // (wake) is always the later store.
      f->diag.move(fstate::running, fstate::parked);
      if (!f->park.try_commit()) {
        f->diag.move(fstate::parked, fstate::runnable);
        rt.on_yield(f, k->index);
      }
      break;
    case klt_action::exit: finish_exit(rt, f); break;
    case klt_action::none: FIBER_ASSERT(false, "fiber switched out without an action"); break;
  }
}

// After landing on a stack: finish the fiber that switched directly to us.
static void finish_prev(klt* k) noexcept {
  fcb* prev = k->prev;
  if (!prev) return;
  k->prev = nullptr;
  int saved = errno;  // I4: the landing fiber's errno is already in place
  act_on(*g_rt.load(std::memory_order_relaxed), k, prev, k->prev_action);  // relaxed: set while KLTs run
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
  if (!next->sp) next->sp = ctx_make(next->stack_hi(), fiber_entry, next);  // first frame (slots.cpp)
  k->current = next;
  k->running.store(next->id, std::memory_order_relaxed);  // relaxed: the id is the whole datum (monitor.cpp)
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
  runtime& rt = *g_rt.load(std::memory_order_relaxed);  // relaxed: set while KLTs run
  // Timers first, so a sleeper that expired during f's quantum queues ahead
  // of f (wake-up lateness is one quantum, not two).
  process_timers(rt);
  fcb* next = rt.pick_next(k->index);
  if (next || a == klt_action::park || a == klt_action::exit) {
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

// First frame of every fiber (arch/context.hpp: entry(arg)).
void fiber_entry(void* arg) {
  san_finish_switch(nullptr);
  finish_prev(this_klt());
  // A new fiber starts with preempt_count 1 (fiber_create), so the window
  // between install() and this point is covered by I5 like every other
  // switch; a tick that landed there is taken now.
  native_seam::preempt_enable();
  fcb* f = static_cast<fcb*>(arg);
  f->retval = f->start(f->arg);
  switch_out(klt_action::exit);
  __builtin_unreachable();
}

// Scheduler side: run f on k until a fiber switches back to the scheduler
// (fibers may have switched among themselves meanwhile), then act on it.
static void run_fibers(runtime& rt, klt* k, fcb* f) noexcept {
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
  process_timers(rt);
  act_on(rt, k, last, a);
}

// ---- the KLT loop ----------------------------------------------------------

static void idle_wait(runtime& rt, klt* k) noexcept {
  std::uint32_t key = rt.idle.prepare_sleep();
  if (rt.has_work() || rt.stopping.load(std::memory_order_relaxed)) {  // relaxed: after the idle fence
    rt.idle.cancel_sleep();
    return;
  }
  std::uint64_t nd = rt.next_deadline.load(std::memory_order_relaxed);  // relaxed: after the idle fence
  if (nd != kNoDeadline && nd <= native_seam::now_ns()) {
    rt.idle.cancel_sleep();
    return;
  }
  rt.stats.idle_sleeps.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  // release: the detector (deadlock.cpp) that sees idle also sees idle_sleeps;
  // the monitor's deep sleep (monitor.cpp) is ordered by its own fences.
  k->idle.store(true, std::memory_order_release);
  klt_timer_idle(*k, true);
  rt.idle.sleep(key, nd);
  k->idle.store(false, std::memory_order_relaxed);  // relaxed: ordered by the fence in monitor_klt_woke
  monitor_klt_woke();
  klt_timer_idle(*k, false);
}

void* klt_main(void* arg) {
  klt* k = static_cast<klt*>(arg);
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: pairs with fiber_init's release
  klt_publish_self(k);
  char name[16];
  std::snprintf(name, sizeof name, "fiber-klt-%u", k->index);
  pthread_setname_np(pthread_self(), name);  // what ps, top and gdb show
  k->eh = reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
  klt_altstack_install(*k);
  signals_klt_start(*k);  // I8
  k->tsan_fiber = san_current_fiber();
  klt_timer_start(*k, rt.cfg);
  process_timers(rt);
  for (;;) {
    count_step(k);
    if (fcb* f = rt.pick_next(k->index)) {
      run_fibers(rt, k, f);
      continue;
    }
    if (rt.stopping.load(std::memory_order_acquire) && !rt.has_work()) break;  // acquire: pairs with shutdown
    idle_wait(rt, k);
    process_timers(rt);
  }
  klt_timer_stop(*k);
  klt_publish_self(nullptr);
  return nullptr;
}

void make_runnable(fcb* f) noexcept {
  klt* k = this_klt();
  // An OS-thread waker holds the runtime's call gate across the queue push and
  // the idle notify: once f is queued it may run, exit, and let a shutdown
  // finish, which must not free the runtime under this notify (L2).  The gate
  // is open here because f is parked, hence live (L4).
  bool gated = !k && os_wake_enter();
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: as above
  rt.on_wake(f, k ? k->index : kNoKlt);
  if (gated) os_wake_leave();
}

// ---- the native seam's out-of-line half --------------------------------------

static long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val,
                  const struct timespec* ts) noexcept {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, ts, nullptr,
                 FUTEX_BITSET_MATCH_ANY);
}

void native_seam::os_wait(native_atomic<std::uint32_t>& w, std::uint32_t expected,
                          std::uint64_t deadline) noexcept {
  struct timespec ts;
  const struct timespec* tsp = nullptr;
  if (deadline != kNoDeadline) {
    ts.tv_sec = static_cast<time_t>(deadline / 1000000000u);
    ts.tv_nsec = static_cast<long>(deadline % 1000000000u);
    tsp = &ts;
  }
  // Absolute CLOCK_MONOTONIC timeout (FUTEX_WAIT_BITSET without CLOCK_REALTIME).
  futex(&w.raw(), FUTEX_WAIT_BITSET_PRIVATE, expected, tsp);
}

void native_seam::os_wake(native_atomic<std::uint32_t>& w, std::uint32_t count) noexcept {
  futex(&w.raw(), FUTEX_WAKE_PRIVATE, count, nullptr);
}

void native_seam::os_yield() noexcept { sched_yield(); }

std::uint64_t native_seam::now_ns() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void native_seam::preempt_disable() noexcept {
  if (fcb* f = current_fiber()) f->gate.disable();
}

void native_seam::preempt_enable() noexcept {
  fcb* f = current_fiber();
  // I5, I-G2: a tick that was refused meanwhile is taken now, at a safe point.
  if (f && f->gate.enable()) switch_out(klt_action::yield);
}

// OS threads' parkers: type-stable (I-P4), recycled through a free list.
namespace {
struct os_parker_node {
  parker p;
  os_parker_node* next = nullptr;  // free list, guarded by g_os_parkers_lock
  // Diagnostics (dump.cpp, deadlock.cpp): written by the owning thread,
  // read racily; the node is never freed, so the registry below is safe.
  std::atomic<os_parker_node*> all_next{nullptr};  // immutable once published
  std::atomic<long> tid{0};
  std::atomic<bool> untimed{false};
  std::atomic<wait_kind> kind{wait_kind::none};
  std::atomic<const void*> obj{nullptr};
};
spinlock g_os_parkers_lock;
os_parker_node* g_os_parkers_free = nullptr;  // guarded by g_os_parkers_lock
std::atomic<os_parker_node*> g_os_parkers_all{nullptr};  // every node ever made (push-only)
std::atomic<std::uint64_t> g_os_blocks{0};               // OS park attempts (detector progress)

void register_node(os_parker_node* n) noexcept {
  os_parker_node* h = g_os_parkers_all.load(std::memory_order_relaxed);  // relaxed: the CAS decides
  do {
    n->all_next.store(h, std::memory_order_relaxed);  // relaxed: published by the CAS below
    // release: a visitor that loads the new head (acquire) sees the node's fields.
  } while (!g_os_parkers_all.compare_exchange_weak(h, n, std::memory_order_release,
                                                   std::memory_order_relaxed));
}

struct os_parker_holder {
  os_parker_node* n = nullptr;
  ~os_parker_holder() {
    if (!n) return;
    lock_guard<spinlock> g(g_os_parkers_lock);
    n->next = g_os_parkers_free;
    g_os_parkers_free = n;
  }
  parker& get() {
    if (!n) {
      {
        lock_guard<spinlock> g(g_os_parkers_lock);
        n = g_os_parkers_free;
        if (n) g_os_parkers_free = n->next;
      }
      if (!n) {
        n = new os_parker_node;  // never freed: I-P4
        register_node(n);
      }
      n->tid.store(static_cast<long>(syscall(SYS_gettid)), std::memory_order_relaxed);  // relaxed: diag
    }
    return n->p;
  }
};
thread_local os_parker_holder tls_os_parker;

// The node of an OS thread's parker; only its owner thread calls this.
os_parker_node* os_node_of(parker& p) noexcept {
  os_parker_node* n = tls_os_parker.n;
  FIBER_ASSERT(n && &n->p == &p, "an OS thread's parker that is not its own");
  (void)p;
  return n;
}
thread_local std::uint64_t tls_os_id = 0;
}  // namespace

native_seam::parker_type& native_seam::current_parker() noexcept {
  if (fcb* f = current_fiber()) return f->park;
  return tls_os_parker.get();
}

void native_seam::note_wait(parker_type& p, wait_kind kind, const void* obj) noexcept {
  if (p.owner) {
    fiber_diag& d = static_cast<fcb*>(p.owner)->diag;
    d.kind_.store(kind, std::memory_order_relaxed);  // relaxed: diagnostics (diag.hpp)
    d.obj_.store(obj, std::memory_order_relaxed);
    d.waits_.store(d.waits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
    return;
  }
  os_parker_node* n = os_node_of(p);
  n->kind.store(kind, std::memory_order_relaxed);  // relaxed: diagnostics
  n->obj.store(obj, std::memory_order_relaxed);
}

void os_waiters_visit(void (*fn)(const os_waiter_info&, void*), void* ctx) noexcept {
  // acquire: pairs with register_node's release CAS.
  for (os_parker_node* n = g_os_parkers_all.load(std::memory_order_acquire); n;
       n = n->all_next.load(std::memory_order_relaxed)) {  // relaxed: immutable once published
    os_waiter_info w;
    w.tid = n->tid.load(std::memory_order_relaxed);  // relaxed: racy snapshot (diag)
    w.parked = n->p.is_parked();                     // acquire inside: pairs with try_commit()
    w.untimed = n->untimed.load(std::memory_order_relaxed);
    w.kind = n->kind.load(std::memory_order_relaxed);
    w.obj = n->obj.load(std::memory_order_relaxed);
    fn(w, ctx);
  }
}

std::uint64_t os_blocks() noexcept {
  return g_os_blocks.load(std::memory_order_acquire);  // acquire: pairs with os_block's release add
}

std::uint64_t native_seam::self_id() noexcept {
  if (fcb* f = current_fiber()) return f->id;
  if (tls_os_id == 0)
    tls_os_id = (std::uint64_t{1} << 63) | static_cast<std::uint64_t>(syscall(SYS_gettid));
  return tls_os_id;
}

static void os_block(parker& p, std::uint64_t deadline) noexcept {
  os_parker_node* n = os_node_of(p);
  n->untimed.store(deadline == kNoDeadline, std::memory_order_relaxed);  // relaxed: ordered by the add
  // release, before the commit: a detector that sees this thread parked
  // (acquire load of its word after the commit) has seen this count move.
  g_os_blocks.fetch_add(1, std::memory_order_release);
  if (!p.try_commit()) return;  // I-P1
  while (p.word().load(mo::acquire) == parker::kParked) {  // acquire: pairs with unpark()
    if (deadline != kNoDeadline && native_seam::now_ns() >= deadline) break;
    native_seam::os_wait(p.word(), parker::kParked, deadline);
  }
  p.finish();
}

void native_seam::block(parker_type& p, std::uint64_t deadline) noexcept {
  fcb* f = current_fiber();
  if (!f || &f->park != &p) {
    FIBER_ASSERT(f == nullptr, "a fiber blocked on a parker that is not its own");
    os_block(p, deadline);
    return;
  }
  if (deadline != kNoDeadline) {
    if (now_ns() >= deadline) return;
    timer_add(f, deadline);  // expiry unparks f (I6)
  }
  switch_out(klt_action::park);  // the scheduler commits (I-P5)
  if (deadline != kNoDeadline) timer_cancel(f);
  p.finish();
}

void native_seam::wake(parker_type& p) noexcept {
  if (p.owner) {
    fiber_diag& d = static_cast<fcb*>(p.owner)->diag;
    d.wakes_.store(d.wakes_.load(std::memory_order_relaxed) + 1,  // one waker at a time (I-P2)
                   std::memory_order_relaxed);                     // relaxed: diagnostics
    d.move(fstate::parked, fstate::runnable);
    make_runnable(static_cast<fcb*>(p.owner));
  } else {
    os_wake(p.word(), 1);
  }
}

}  // namespace fiber::detail
