// core/src/lifecycle.cpp - the C API's lifecycle half: init, shutdown, create,
// join, detach, exit, yield, self, sleep, preemption sections, test knobs.
//
// Every entry point that touches scheduler state runs either in the
// scheduler or with the calling fiber's preempt_count raised (I5), so the
// runtime itself is never preempted.
//
// Shutdown versus every other call (lifecycle_gate.hpp, L1..L4).  A call from
// a fiber needs nothing: its fiber is live, and shutdown waits for live == 0
// and for the KLTs to leave before it frees anything (I7).  A call from an OS
// thread enters a gate first: g_creates for fiber_create, g_calls for the
// others that touch the runtime (join, detach, stats).  fiber_shutdown closes
// and drains g_creates, waits for the fibers, then closes and drains g_calls
// (quiesce), frees, clears g_rt and reopens both.  So an OS-thread call racing
// shutdown either completes against the old runtime or fails: fiber_create
// EAGAIN while the shutdown runs (then, once it returned, it initialises a new
// runtime), fiber_join/fiber_detach ESRCH and fiber_get_stats EINVAL once the
// fibers are gone.  An OS thread blocked in fiber_join keeps its fiber's
// runtime alive until it returns; a join that starts while shutdown waits for
// live fibers still works.
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "arch/context.hpp"
#include "fiber/detail/lifecycle_gate.hpp"
#include "fiber/detail/testing.h"
#include "monitor.hpp"
#include "real_symbol.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"
#include "trace.hpp"

using namespace fiber::detail;

namespace {

pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;  // init/shutdown, OS threads only
int g_policy = FIBER_POLICY_FIFO;

using lifecycle_gate = basic_lifecycle_gate<native_seam>;
using pass = lifecycle_pass<native_seam>;
lifecycle_gate g_creates;  // OS-thread fiber_create calls in flight (L4)
lifecycle_gate g_calls;    // OS-thread join/detach/stats calls in flight (L4)

// The runtime an OS-thread call may use, or nullptr (no runtime, or a
// shutdown closed `g`).  On success the caller holds `g` until *held dies.
runtime* enter_os_call(lifecycle_gate& g, lifecycle_gate** held) noexcept {
  *held = nullptr;
  if (!g.try_enter()) return nullptr;
  runtime* rt = g_rt.load(std::memory_order_acquire);  // acquire: pairs with init's release
  if (!rt) {
    g.leave();
    return nullptr;
  }
  *held = &g;
  return rt;
}

// The runtime a call from a fiber runs on: alive while the fiber is (I7).
runtime* fiber_runtime() noexcept {
  return g_rt.load(std::memory_order_acquire);  // acquire: pairs with init's release
}

// RAII: raise the calling fiber's preempt_count (I5).  No-op on OS threads.
struct no_preempt {
  no_preempt() noexcept { native_seam::preempt_disable(); }
  ~no_preempt() { native_seam::preempt_enable(); }
};

bool config_ok(const fiber_config_t& c) noexcept {
  if (c.klts > FIBER_MAX_KLTS) return false;
  if (c.stack_size != 0 && (c.stack_size < FIBER_MIN_STACK_SIZE || c.stack_size > FIBER_MAX_STACK_SIZE))
    return false;
  if (c.timeslice_us > 10u * 1000 * 1000) return false;  // a quantum over 10 s is a mistake
  // Shorter quanta spend the CPU on ticks (papers/design.md, "Minimum quantum").
  if (c.timeslice_us != 0 && c.timeslice_us < FIBER_MIN_TIMESLICE_US) return false;
  if (c.migrate_preempted > FIBER_MIGRATE_NEVER) return false;
  return true;
}

// FIBER_MIGRATE=scan|1|0 (also always, never) overrides
// fiber_config_t::migrate_preempted (policy.hpp I-R3, tls_scan.cpp); read once
// per fiber_init.  Another value is ignored with one line on stderr, as
// FIBER_WATCHDOG's (an implicit init from fiber_create must not fail).
void migrate_from_env(unsigned* v) noexcept {
  const char* e = std::getenv("FIBER_MIGRATE");
  if (!e || !*e) return;
  if (std::strcmp(e, "scan") == 0) *v = FIBER_MIGRATE_SCAN;
  else if (std::strcmp(e, "1") == 0 || std::strcmp(e, "always") == 0) *v = FIBER_MIGRATE_ALWAYS;
  else if (std::strcmp(e, "0") == 0 || std::strcmp(e, "never") == 0) *v = FIBER_MIGRATE_NEVER;
  else std::fprintf(stderr, "fiber: FIBER_MIGRATE=%s ignored (want scan, 1 or 0)\n", e);
}

void stop_klts(runtime& rt, unsigned n) noexcept {
  rt.stopping.store(true, std::memory_order_seq_cst);  // seq_cst: before the notify's fence
  rt.idle.notify_all();
  for (unsigned i = rt.nklts; i < n; ++i) {  // spares asleep apart (sched.cpp spare_dormant)
    rt.klts[i].spare_gen.fetch_add(1, mo::release);  // release: after stopping, read with acquire
    native_seam::os_wake(rt.klts[i].spare_gen, 1);
  }
  for (unsigned i = 0; i < n; ++i) {
    pthread_join(rt.klts[i].thread, nullptr);
    stack_unmap(rt.klts[i].stack_map, rt.klts[i].stack_map_size);
  }
}

int init_locked(const fiber_config_t* cfg) noexcept {
  if (g_rt.load(std::memory_order_relaxed)) return EBUSY;  // relaxed: under g_init_mu
  fiber_config_t c;
  fiber_config_init(&c);
  if (cfg) c = *cfg;
  if (!config_ok(c)) return EINVAL;
  if (sysconf(_SC_PAGESIZE) != static_cast<long>(fcb::kPage)) {
    fatal("fiber: this build assumes 4 KiB pages");
  }
  if (c.klts == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c.klts = n > 0 ? static_cast<unsigned>(n) : 1u;
    if (c.klts > FIBER_MAX_KLTS) c.klts = FIBER_MAX_KLTS;
  }
  if (c.stack_size == 0) c.stack_size = FIBER_DEFAULT_STACK_SIZE;
  migrate_from_env(&c.migrate_preempted);
  auto* rt = new (std::nothrow) runtime;
  if (!rt) return EAGAIN;
  rt->cfg = c;
  rt->nklts = c.klts;
  rt->nspare = spare_klts_for(c.klts);  // monitor.hpp
  rt->policy_kind = g_policy;
  rt->klts.reset(new (std::nothrow) klt[c.klts + rt->nspare]);
  rt->policy.reset(new (std::nothrow) policy_t(
      c.klts, policy_opts{g_policy == FIBER_POLICY_RUNNEXT,
                            // the test knob (negative control of I3) is the same option
                            c.migrate_preempted == FIBER_MIGRATE_ALWAYS ||
                                knobs.migrate_preempted.load(std::memory_order_relaxed)},
      rt->nspare));
  rt->scan_preempted = c.migrate_preempted == FIBER_MIGRATE_SCAN;
  if (!rt->klts || !rt->policy || !preempt_install(*rt)) {
    preempt_uninstall();  // no-op unless the install got that far
    delete rt;
    return EAGAIN;
  }
  if (!trace_open(*rt)) {  // cfg.trace_path cannot be opened (trace.hpp)
    preempt_uninstall();
    delete rt;
    return EINVAL;
  }
  g_rt.store(rt, std::memory_order_release);  // release: pairs with the KLTs' and API's acquire
  // A failed start undoes everything, handlers and allow-list included, so the
  // next fiber_init starts from scratch.
  auto undo = [rt](unsigned started) {
    stop_klts(*rt, started);
    trace_close(*rt);
    preempt_uninstall();
    g_rt.store(nullptr, std::memory_order_release);  // release: as above
    delete rt;
    return EAGAIN;
  };
  for (unsigned i = 0; i < c.klts; ++i) {
    rt->klts[i].index = i;
    if (!start_klt(rt->klts[i])) return undo(i);
  }
  if (!monitor_start(*rt)) return undo(c.klts);
  diag_start(*rt);         // the diagnostics ticker: clock word + deadlock detector (diag.cpp)
  dump_install_sigquit();  // only if the program has no SIGQUIT handler of its own
  return 0;
}

// I7: returns once no fiber is alive (fiber_shutdown, under g_init_mu).
void wait_no_live(runtime& rt) noexcept {
  parker& me = native_seam::current_parker();
  native_seam::note_wait(me, wait_kind::shutdown, &rt);
  // live_count.hpp LC4 with finish_exit (sched.cpp native_env::drop_live).
  live_wait_none<native_seam>(rt.shutdown_waiter, me, [&rt] { return rt.live_fibers(); });
}

runtime* ensure_runtime() noexcept {
  runtime* rt = g_rt.load(std::memory_order_acquire);  // acquire: pairs with init's release
  if (rt) return rt;
  pthread_mutex_lock(&g_init_mu);
  if (!g_rt.load(std::memory_order_relaxed)) init_locked(nullptr);  // relaxed: under the mutex
  pthread_mutex_unlock(&g_init_mu);
  return g_rt.load(std::memory_order_acquire);
}

// fiber_create from an OS thread: the runtime (initialised if need be) with
// g_creates held, or nullptr (EAGAIN) while a shutdown runs.  A shutdown that
// completed between ensure_runtime() and the gate leaves g_rt null: once more.
runtime* create_enter(lifecycle_gate** held) noexcept {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ensure_runtime()) return nullptr;
    if (runtime* rt = enter_os_call(g_creates, held)) return rt;
    if (g_creates.closed()) return nullptr;
  }
  return nullptr;
}

}  // namespace

namespace fiber::detail {
namespace {
constexpr std::size_t kKltStack = 1024 * 1024;
}  // namespace

// make_runnable() from an OS thread (sched.cpp).  try_enter cannot fail there:
// the fiber being woken is parked, so live > 0 and g_calls is still open (L4);
// a false return is tolerated anyway (nothing to leave).
bool os_wake_enter() noexcept { return g_calls.try_enter(); }
void os_wake_leave() noexcept { g_calls.leave(); }

// A KLT's thread on a stack the runtime maps (fiber_init for the
// configured KLTs, the monitor for a spare).  false: EAGAIN.
bool start_klt(klt& k) noexcept {
  if (!stack_map(kKltStack, &k.stack_map, &k.stack_map_size)) return false;
  pthread_attr_t a;
  pthread_attr_init(&a);
  // glibc puts the TCB and static TLS at the top of a supplied stack and adds
  // no guard: the guard page is ours (platform-facts).  This is clone()
  // underneath; raw clone() breaks glibc's per-thread state.
  pthread_attr_setstack(&a, k.stack_map + fcb::page_size(), k.stack_map_size - fcb::page_size());
  int r = pthread_create(&k.thread, &a, klt_main, &k);
  pthread_attr_destroy(&a);
  if (r != 0) {
    stack_unmap(k.stack_map, k.stack_map_size);
    k.stack_map = nullptr;
    return false;
  }
  return true;
}
}  // namespace fiber::detail

extern "C" {

void fiber_config_init(fiber_config_t* cfg) {
  if (!cfg) return;
  cfg->klts = 0;
  cfg->timeslice_us = FIBER_DEFAULT_TIMESLICE_US;
  cfg->stack_size = 0;
  cfg->watchdog_ms = 0;
  cfg->migrate_preempted = FIBER_MIGRATE_SCAN;
  cfg->trace_path = nullptr;
}

void fiber_attr_init(fiber_attr_t* attr) {
  if (!attr) return;
  attr->stack_size = 0;
  attr->detached = 0;
  attr->name = nullptr;
}

int fiber_init(const fiber_config_t* cfg) {
  if (current_fiber()) return EBUSY;
  interpose_locks_init();  // libc's lock functions, before any fiber can call them
  interpose_futex_init();  // libc's syscall() (real_symbol.hpp); links interpose_futex.cpp
  pthread_mutex_lock(&g_init_mu);
  int r = init_locked(cfg);
  pthread_mutex_unlock(&g_init_mu);
  return r;
}

int fiber_shutdown(void) {
  if (current_fiber()) return EDEADLK;
  pthread_mutex_lock(&g_init_mu);
  runtime* rt = g_rt.load(std::memory_order_acquire);  // acquire: pairs with init
  if (!rt) {
    pthread_mutex_unlock(&g_init_mu);
    return EINVAL;
  }
  quiesce(g_creates, g_calls, [rt] { wait_no_live(*rt); });  // L4
  diag_stop(*rt);
  monitor_stop();  // before the KLTs go: it reads them
  stop_klts(*rt, rt->klts_up());  // the monitor, which starts spares, is gone
  trace_close(*rt);  // after the KLTs: drains their buffers (trace.cpp)
  preempt_uninstall();  // the tick and fault handlers go back to what they were
  g_rt.store(nullptr, std::memory_order_release);  // release: pairs with the API's acquire loads
  slots_reset();
  delete rt;
  g_creates.reopen();  // L3: an OS thread entering now sees g_rt == nullptr
  g_calls.reopen();
  pthread_mutex_unlock(&g_init_mu);
  return 0;
}

int fiber_set_policy(int policy) {
  if (policy != FIBER_POLICY_FIFO && policy != FIBER_POLICY_RUNNEXT) return EINVAL;
  if (current_fiber()) return EBUSY;  // a runtime is running (and g_init_mu may be held long)
  pthread_mutex_lock(&g_init_mu);      // g_policy is read by init_locked
  int r = g_rt.load(std::memory_order_relaxed) ? EBUSY : 0;  // relaxed: under g_init_mu
  if (r == 0) g_policy = policy;
  pthread_mutex_unlock(&g_init_mu);
  return r;
}

int fiber_create(fiber_t* id, const fiber_attr_t* attr, void* (*start)(void*), void* arg) {
  if (!id || !start) return EINVAL;
  std::size_t stack = 0;
  bool detached = false;
  const char* name = nullptr;
  if (attr) {
    if (attr->name && std::strlen(attr->name) >= kNameMax) return ERANGE;
    name = attr->name;
    if (attr->stack_size != 0 &&
        (attr->stack_size < FIBER_MIN_STACK_SIZE || attr->stack_size > FIBER_MAX_STACK_SIZE))
      return EINVAL;
    stack = attr->stack_size;
    detached = attr->detached != 0;
  }
  lifecycle_gate* held = nullptr;
  runtime* rt = current_fiber() ? fiber_runtime() : create_enter(&held);
  pass p(held);
  if (!rt) return EAGAIN;
  no_preempt np;
  fcb* f = slot_alloc(stack ? stack : rt->cfg.stack_size);
  if (!f) return EAGAIN;
  f->start = start;
  f->arg = arg;
  f->retval = nullptr;
  f->saved_errno = 0;
  f->saved_eh = {nullptr, 0};
  signals_init_fiber(f);  // I8: the creator's signal mask (signals.hpp)
  f->asan_fake_stack = nullptr;
  san_fresh_stack(f->stack_lo(), static_cast<std::size_t>(f->stack_hi() - f->stack_lo()));
  f->gate.reset(1);  // not yet published; fiber_entry drops it (I5, I-G1)
  f->locks_held = 0;  // I9
  f->join.reset(f->id, detached);
  f->diag.set_name(name);
  f->diag.move(fstate::free, fstate::runnable);
  klt* k = this_klt();
  const bool on_klt = k && k->current;  // a fiber's call; else an OS thread's
  // I7, before the push publishes f (live_count.hpp LC1, LC2).  From a
  // fiber, preemption is off: k stays its KLT, the only writer of its count.
  (on_klt ? k->live : rt->os_live).created();
  *id = f->id;  // before f can run
  trace_create(f, name, on_klt ? k->index : kNoKlt);  // before f can run (trace.hpp)
  rt->on_new(f, on_klt ? k->index : kNoKlt);
  return 0;
}

int fiber_join(fiber_t id, void** retval) {
  if (id == 0) return ESRCH;
  fcb* self = current_fiber();
  if (self && self->id == id) return EDEADLK;
  lifecycle_gate* held = nullptr;
  runtime* rt = self ? fiber_runtime() : enter_os_call(g_calls, &held);
  pass p(held);  // an OS thread parked below keeps the runtime alive (L2)
  if (!rt) return ESRCH;
  fcb* f = slot_lookup(id);
  if (!f) return ESRCH;
  int r = f->join.join(id, retval);
  if (r == 0) {
    no_preempt np;
    trace_join(f);  // before the slot can be reused (trace.hpp)
    slot_free(f);
  }
  return r;
}

int fiber_detach(fiber_t id) {
  if (id == 0) return ESRCH;
  lifecycle_gate* held = nullptr;
  runtime* rt = current_fiber() ? fiber_runtime() : enter_os_call(g_calls, &held);
  pass p(held);
  if (!rt) return ESRCH;
  fcb* f = slot_lookup(id);
  if (!f) return ESRCH;
  bool must_free = false;
  int r = f->join.detach(id, &must_free);
  if (r == 0 && must_free) {
    no_preempt np;
    slot_free(f);
  }
  return r;
}

int fiber_yield(void) {
  if (!current_fiber()) {
    sched_yield();
    return 0;
  }
  switch_out(klt_action::yield);
  return 0;
}

void fiber_exit(void* retval) {
  fcb* f = current_fiber();
  if (!f) fatal("fiber_exit called outside a fiber");
  f->retval = retval;
  switch_out(klt_action::exit);
  __builtin_unreachable();
}

fiber_t fiber_self(void) {
  fcb* f = current_fiber();
  return f ? f->id : 0;
}

int fiber_sleep_ns(uint64_t ns) {
  std::uint64_t now = native_seam::now_ns();
  std::uint64_t deadline = ns > kNoDeadline - 1 - now ? kNoDeadline - 1 : now + ns;
  if (!current_fiber()) {
    struct timespec ts{static_cast<time_t>(deadline / 1000000000u),
                       static_cast<long>(deadline % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    return 0;
  }
  parker& p = native_seam::current_parker();
  native_seam::note_wait(p, wait_kind::sleep, nullptr);
  while (!p.park_until(deadline)) {  // spurious wake-ups loop (I-P4)
  }
  return 0;
}

void fiber_preempt_disable(void) { native_seam::preempt_disable(); }
void fiber_preempt_enable(void) {
  // Unbalanced enable (no matching disable) is ignored rather than wrapping
  // the count around, which would turn preemption off for good.
  fcb* f = current_fiber();
  if (f && f->gate.in_section()) native_seam::preempt_enable();
}

void fiber_test_set_knob(int knob, int on) {
  bool v = on != 0;
  switch (knob) {
    case FIBER_KNOB_NO_PC_CHECK: knobs.no_pc_check.store(v); break;
    case FIBER_KNOB_NO_COUNT_CHECK: knobs.no_count_check.store(v); break;
    case FIBER_KNOB_NO_ERRNO_SWAP: knobs.no_errno_swap.store(v); break;
    case FIBER_KNOB_NO_EH_SWAP: knobs.no_eh_swap.store(v); break;
    case FIBER_KNOB_NO_STACK_CHECK: knobs.no_stack_check.store(v); break;
    case FIBER_KNOB_MIGRATE_PREEMPTED: knobs.migrate_preempted.store(v); break;
    case FIBER_KNOB_DEADLOCK_NO_THREAD_CHECK: knobs.deadlock_no_thread_check.store(v); break;
    case FIBER_KNOB_NO_IO_INTERPOSE: knobs.no_io_interpose.store(v); break;
    case FIBER_KNOB_NO_LOCK_INTERPOSE: knobs.no_lock_interpose.store(v); break;
    case FIBER_KNOB_NO_LOCK_HOLD: knobs.no_lock_hold.store(v); break;
    case FIBER_KNOB_NO_STACK_CACHE: knobs.no_stack_cache.store(v); break;
    case FIBER_KNOB_UNGUARDED_STACKS: knobs.unguarded_stacks.store(v); break;
    case FIBER_KNOB_TRIM_ALL: knobs.trim_all.store(v); break;
    case FIBER_KNOB_SCHED_STALL: knobs.sched_stall.store(v); break;
    case FIBER_KNOB_NO_SIGNAL_INTERRUPT: knobs.no_signal_interrupt.store(v); break;
    case FIBER_KNOB_NO_FUTEX_INTERPOSE: knobs.no_futex_interpose.store(v); break;
    case FIBER_KNOB_TRACE_LOSE_WAKE:
    case FIBER_KNOB_TRACE_NO_COMMIT: trace_set_knob(knob, v); break;
    case FIBER_KNOB_MUTEX_NO_SPIN: knobs.mutex_no_spin.store(v); break;
    case FIBER_KNOB_NO_OFFLOAD: knobs.no_offload.store(v); break;
    case FIBER_KNOB_NO_MONITOR_HANDOFF: knobs.no_monitor_handoff.store(v); break;
    case FIBER_KNOB_OS_WAKE_LINGER: knobs.os_wake_linger.store(v); break;
    case FIBER_KNOB_NO_IDLE_POLL: knobs.no_idle_poll.store(v); break;
    case FIBER_KNOB_IDLE_POLL_LOSE_KICK: knobs.idle_poll_lose_kick.store(v); break;
    case FIBER_KNOB_NO_SPARE_KLT: knobs.no_spare_klt.store(v); break;
    case FIBER_KNOB_LIN_TRYLOCK_LIES: knobs.lin_trylock_lies.store(v); break;
    case FIBER_KNOB_LIN_SEM_POST_TWICE: knobs.lin_sem_post_twice.store(v); break;
    case FIBER_KNOB_MUTEX_WAKE_TAIL:
    case FIBER_KNOB_MUTEX_NO_STARVATION:
    case FIBER_KNOB_MUTEX_DOUBLE_OWNER: trace_lock_set_knob(knob, v); break;
    default: break;
  }
}

int fiber_get_stats(fiber_stats_t* out) {
  if (!out) return EINVAL;
  lifecycle_gate* held = nullptr;
  runtime* rt = current_fiber() ? fiber_runtime() : enter_os_call(g_calls, &held);
  pass p(held);
  if (!rt) return EINVAL;
  auto& s = rt->stats;
  auto rd = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  out->ticks = rd(s.ticks);
  out->preemptions = rd(s.preemptions);
  out->deferred_count = rd(s.deferred_count);
  out->deferred_pc = rd(s.deferred_pc);
  out->deferred_stack = rd(s.deferred_stack);
  out->switches = 0;
  for (unsigned i = 0, n = rt->klts_up(); i < n; ++i) out->switches += rd(rt->klts[i].switches);
  out->idle_sleeps = rd(s.idle_sleeps);
  out->klts = rt->nklts;
  out->live = rt->live_fibers();
  out->pinned_tls = rd(s.pinned_tls);
  return 0;
}

}  // extern "C"
