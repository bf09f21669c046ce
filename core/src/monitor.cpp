// core/src/monitor.cpp - the runtime monitor thread: hands a stalled KLT's
// fibers to the others, and the watchdog.  Vocabulary, invariants I-MON1..3
// and the lifecycle are in monitor.hpp; the period and the bounds are argued
// in papers/design.md ("The monitor").
//
// One pass (check_klt, per KLT, every period):
//   idle      -> nothing to watch; the reading restarts.
//   stepped   -> healthy; the reading restarts (and a new incident may be
//                reported later).
//   no step   -> stalled for (now - since), where since is when the monitor
//                first read the current step count, so the stall is never
//                over-estimated (it is under-estimated by at most a period):
//                a watchdog report is never early, hence never a false alarm
//                for a KLT that took a step within the bound.
//     >= kStallNs and fibers queued on it (more than one KLT,
//        or blocked in the kernel: a spare will take them)     -> hand-off;
//     >= the watchdog bound, not yet reported                  -> report.
// Then the spares (I-MON4): as many spare KLTs on as KLTs are stalled in
// the kernel (their CPU time stands still).
//
// Designs rejected:
//   * a timer signal to each KLT to check itself: a KLT blocked in the kernel
//     cannot act, and the signal would interrupt its system call (EINTR).
//   * a spare KLT *instead of* the hand-off to the global queue (Go hands the
//     P to a new M): here KLTs do not own their queues the way Go's Ms own
//     Ps; putting the fibers where every KLT looks (the global queue, I-R2)
//     reaches the busy KLTs too, which never steal.  A spare is started only
//     when every KLT that could take that queue is stalled too (one KLT, or
//     all of them blocked), and it runs only while the stall lasts.
#include "monitor.hpp"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>

#include "fiber/detail/testing.h"
#include "runtime.hpp"
#include "sanitizer.hpp"
#include "sys_write.hpp"

namespace fiber::detail {

namespace {

// What the monitor remembers about one KLT (monitor thread only).
struct klt_watch {
  std::uint64_t steps = 0;     // last reading of klt::steps
  std::uint64_t since = 0;     // when that reading was first taken
  std::uint64_t cpu_at = 0;    // wall time of cpu_since (0: not taken this incident)
  std::uint64_t cpu_since = 0; // the KLT's CPU time at cpu_at
  bool reported = false;       // the watchdog reported this incident
  bool has_clock = false;
  clockid_t clock{};           // the KLT's CPU-time clock
};

struct monitor_state {
  runtime* rt = nullptr;
  std::uint64_t watchdog_ns = 0;  // 0: off
  std::uint64_t period_ns = 0;
  bool handoff = false;           // a stalled KLT's queue goes to the global queue
  bool spares = false;            // spare KLTs are turned on for stalled ones (I-MON4)
  std::unique_ptr<klt_watch[]> watch;  // [slot]: the configured KLTs and the spare slots
  pthread_t thread{};
};

// Only fiber_init/fiber_shutdown (under g_init_mu) and the monitor thread
// touch g_state; the thread is created after it is filled and joined before
// it is cleared, so pthread_create/pthread_join order every access.
monitor_state g_state;
// The periodic sleep: the monitor waits on it with a deadline; stop sets 1.
native_atomic<std::uint32_t> g_stop{0};
// The deep sleep when every KLT is idle (I-MON3).  Static storage, never
// freed: a KLT may call monitor_klt_woke() while the monitor stops.
idle_set<native_seam> g_deep;
// fiber_test_get_spare_counters (testing.h).  relaxed (all): statistics.
std::atomic<std::uint64_t> g_spares_started{0}, g_spares_turned_on{0};

std::uint64_t klt_cpu_ns(const klt_watch& w) noexcept {
  if (!w.has_clock) return 0;
  struct timespec ts;
  if (clock_gettime(w.clock, &ts) != 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Why KLT k took no step, as far as the monitor can tell from outside.
void explain(const monitor_state& m, const klt_watch& w, fcb* f, std::uint64_t now, char* out,
             std::size_t n) noexcept {
  if (!f) {
    std::snprintf(out, n, "it runs no fiber (stuck in the runtime's scheduler)");
    return;
  }
  if (f->gate.in_section()) {  // atomic: read from here is race-free (preempt_gate.hpp)
    std::snprintf(out, n, "the fiber is in a preemption-disabled section (fiber_preempt_disable or a "
                          "runtime lock), so ticks are refused%s",
                  f->gate.pending() ? " and one is owed" : "");
    return;
  }
  std::uint64_t wall = now > w.cpu_at ? now - w.cpu_at : 0;
  std::uint64_t cpu = klt_cpu_ns(w) - w.cpu_since;
  unsigned long long cpu_ms = cpu / 1000000u, wall_ms = wall / 1000000u;
  if (w.has_clock && wall > 0 && cpu * 10 < wall) {
    std::snprintf(out, n, "blocked in the kernel: its CPU time advanced %llu ms in %llu ms (a blocking "
                          "system call or lock in the fiber)", cpu_ms, wall_ms);
    return;
  }
  if (w.has_clock && wall > 0 && cpu * 2 < wall) {
    std::snprintf(out, n, "it ran only %llu ms of CPU in %llu ms without a step (blocking calls, or "
                          "the machine is overloaded)", cpu_ms, wall_ms);
    return;
  }
  if (m.rt->cfg.timeslice_us == 0 || kTsanBuild) {
    std::snprintf(out, n, "it is running (cooperative mode, no ticks): the fiber never yields");
    return;
  }
  std::snprintf(out, n, "it is running but never preempted: ticks are deferred (code outside the "
                        "preemption allow-list, e.g. a library, or too little stack)%s",
                f->gate.pending() ? "; a tick is owed" : "");
}

// The one place a stall is reported (watchdog).
void report_stall(const monitor_state& m, unsigned k, const klt_watch& w, std::uint64_t stalled,
                  std::uint64_t now) noexcept {
  const klt& kl = m.rt->klts[k];
  std::uint64_t id = kl.running.load(std::memory_order_relaxed);  // relaxed: the id is the datum
  fcb* f = id ? slot_lookup(id) : nullptr;  // type-stable while the runtime lives (slots.cpp)
  char why[256];
  explain(m, w, f, now, why, sizeof why);
  char line[512];
  int len = std::snprintf(line, sizeof line,
                          "fiber: watchdog: KLT %u took no scheduling step for %llu.%03llu s "
                          "(bound %llu ms), running fiber %llu: %s\n",
                          k, static_cast<unsigned long long>(stalled / 1000000000u),
                          static_cast<unsigned long long>(stalled / 1000000u % 1000u),
                          static_cast<unsigned long long>(m.watchdog_ns / 1000000u),
                          static_cast<unsigned long long>(id), why);
  if (len > 0) {
    std::size_t n = static_cast<std::size_t>(len);
    if (n >= sizeof line) n = sizeof line - 1;  // truncated by snprintf
    ssize_t r = sys_write(STDERR_FILENO, line, n);  // one write: the line is not interleaved
    (void)r;  // nothing better to do if stderr is gone
  }
  dump_write(STDERR_FILENO);  // the watchdog reports with the dump (issue 17; dump.cpp)
}

std::size_t queued(const runtime& rt, unsigned k) noexcept {
  return rt.policy->queued_hint(k);
}

// I-R5: moves k's unpinned fibers to the global queue and wakes idle KLTs.
void hand_off(runtime& rt, unsigned k) noexcept {
  std::size_t moved = rt.policy->evacuate(k);
  if (moved == 1) rt.idle.notify_one();
  else if (moved > 1) rt.idle.notify_all();
}

void restart(klt_watch& w, std::uint64_t steps, std::uint64_t now) noexcept {
  w.steps = steps;
  w.since = now;
  w.cpu_at = 0;
  w.reported = false;
}

// Spares at this pass: the test knob (the negative controls) is read at
// every pass, so a test may turn them off while the runtime runs.
bool spares_allowed(const monitor_state& m) noexcept {
  return m.spares && !knobs.no_spare_klt.load(std::memory_order_relaxed);  // relaxed: a test knob
}

// Blocked in the kernel since the incident's reference point: its CPU time
// advanced less than a tenth of the wall time (the watchdog's test,
// explain()), or less than half and the thread sleeps in the kernel now
// (state S or D).  The second catches a call that ticks keep interrupting:
// with a quantum under 4 ms the tick is a CPU-independent timer, and a
// blocking call retried on EINTR (a raw syscall loop; its ticks are refused,
// the PC being in libc) spent 21% of the wall time handling them, measured
// with 100 us ticks.  A KLT that runs (a fiber that never yields, or one
// that loops on sched_yield) is over half, or runnable (R): a first version
// asked "in a system call now" instead, and a raw sched_yield loop on a
// loaded CI machine got a spare (below half the CPU, always in a syscall).
bool blocked_in_kernel(const klt_watch& w, long tid, std::uint64_t now) noexcept {
  if (!w.has_clock || w.cpu_at == 0 || now <= w.cpu_at) return false;
  const std::uint64_t cpu = klt_cpu_ns(w) - w.cpu_since, wall = now - w.cpu_at;
  if (cpu * 10 < wall) return true;
  return cpu * 2 < wall && kernel_sleeping(tid);
}

// One KLT, one pass.  Returns true if the KLT is idle; *blocked_out: it has
// taken no step for kStallNs and sleeps in the kernel (a spare may replace
// it, I-MON4; a KLT that runs without a step - a fiber that never yields in
// cooperative mode, ticks deferred - is not replaced: the program would run
// on more CPUs than it asked for).
bool check_klt(monitor_state& m, unsigned k, std::uint64_t now, bool* blocked_out) noexcept {
  *blocked_out = false;
  klt& kl = m.rt->klts[k];
  klt_watch& w = m.watch[k];
  // relaxed (both): readings a period apart; a stale one delays a decision
  // by a period, never makes a wrong one (since is when a value was first
  // seen, so a stall is never over-estimated).
  std::uint64_t steps = kl.steps.load(std::memory_order_relaxed) +
                        kl.switches.load(std::memory_order_relaxed);
  bool idle = kl.idle.load(std::memory_order_relaxed);
  if (idle || steps != w.steps) {
    restart(w, steps, now);
    return idle;
  }
  std::uint64_t stalled = now - w.since;
  const bool blocked = stalled >= kStallNs && spares_allowed(m) &&
                       blocked_in_kernel(w, kl.tid.load(std::memory_order_relaxed), now);  // relaxed: set once
  *blocked_out = blocked;
  // With one KLT only a spare can take the queue: hand off only if one will.
  if (m.handoff && stalled >= kStallNs && queued(*m.rt, k) != 0 && (m.rt->nklts > 1 || blocked))
    hand_off(*m.rt, k);
  if (w.cpu_at == 0) {  // first pass of an incident: the CPU clock's reference point,
    w.cpu_since = klt_cpu_ns(w);  // so a report (a later pass) can tell blocked from running
    w.cpu_at = now;
    return false;
  }
  if (m.watchdog_ns != 0 && stalled >= m.watchdog_ns && !w.reported) {
    report_stall(m, k, w, stalled, now);
    w.reported = true;
  }
  return false;
}

// Spare slot s (policy.hpp I-R7) gets its thread, turned on.  The census
// (spares_up, read by the deadlock detector and the loops over KLTs) counts
// it before the thread exists, as internal_threads does.
void start_spare(monitor_state& m, unsigned s, std::uint64_t now) noexcept {
  runtime& rt = *m.rt;
  klt& k = rt.klts[s];
  k.index = s;
  k.idle.store(true, std::memory_order_relaxed);  // relaxed: published by spares_up's release
  rt.policy->spare_on(s, true);
  rt.spares_up.store(s - rt.nklts + 1, std::memory_order_release);  // release: k's fields above
  // Started from this thread, the spare inherits "every signal blocked";
  // install() gives it each fiber's mask (I8) and signals_klt_start unblocks the tick.
  if (!start_klt(k)) {  // out of memory or threads: the stall goes on, as without spares
    rt.policy->spare_on(s, false);
    rt.spares_up.store(s - rt.nklts, std::memory_order_release);  // release: as above
    return;
  }
  klt_watch& w = m.watch[s];
  w.has_clock = pthread_getcpuclockid(k.thread, &w.clock) == 0;
  restart(w, 0, now);
  g_spares_started.fetch_add(1, std::memory_order_relaxed);    // relaxed: statistics
  g_spares_turned_on.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
}

// I-MON4: `blocked` KLTs took no step for kStallNs and sleep in the kernel.
// Spares 0..want-1 are on (want = blocked, at most the reserve), the others
// off, so that at most nklts KLTs run fibers outside the kernel.  A spare is started (it is a
// thread, kept until shutdown) only when the global queue holds work: a
// stall with nothing queued behind it needs nobody.  Turning one on bumps its
// word (sched.cpp spare_dormant); turning one off moves its unpinned fibers
// to the global queue (I-R5) and wakes the idle set, where the others may
// sleep and where the spare may sleep too, so that it sees it is off (the
// idle set's fences, I-I1, against its may_sleep: klt_loop.hpp).
void adjust_spares(monitor_state& m, unsigned blocked, std::uint64_t now) noexcept {
  runtime& rt = *m.rt;
  const unsigned want = blocked < rt.nspare ? blocked : rt.nspare;
  const unsigned up = rt.spares_up.load(std::memory_order_relaxed);  // relaxed: we are its writer
  bool turned_off = false;
  for (unsigned i = 0; i < rt.nspare; ++i) {
    const unsigned s = rt.nklts + i;
    const bool on = !rt.policy->retiring(s);
    if (i < want) {
      if (i >= up) {
        if (i == up && rt.policy->global_hint() != 0) start_spare(m, s, now);
        break;  // spares start in order, one per pass
      }
      if (on) continue;
      rt.policy->spare_on(s, true);
      rt.klts[s].spare_gen.fetch_add(1, mo::release);  // release: the flag above (spare_dormant)
      native_seam::os_wake(rt.klts[s].spare_gen, 1);
      g_spares_turned_on.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    } else if (i < up && on) {
      rt.policy->spare_on(s, false);
      // Its unpinned fibers go where the others look, and they are woken
      // below (the spare's own pick would move them too, but it notifies
      // nobody: pick_retiring).
      rt.policy->evacuate(s);
      turned_off = true;
    }
  }
  if (turned_off) rt.idle.notify_all();
}

bool stop_requested() noexcept {
  return g_stop.load(mo::acquire) != 0;  // acquire: pairs with monitor_stop's release
}

// I-MON3: every KLT was idle.  Sleep until one leaves its idle sleep (it clears
// klt::idle, then notifies g_deep) or the monitor is stopped.  The SB pair
// of idle.hpp (I-I1): our "announce; re-check idle flags" against the KLT's
// "clear idle; check sleepers".
void deep_sleep(monitor_state& m) noexcept {
  std::uint32_t key = g_deep.prepare_sleep();
  bool all_idle = true;
  for (unsigned k = 0, n = m.rt->klts_up(); k < n && all_idle; ++k)
    all_idle = m.rt->klts[k].idle.load(std::memory_order_relaxed);  // relaxed: after prepare_sleep's fence
  if (!all_idle || stop_requested()) {
    g_deep.cancel_sleep();
    return;
  }
  g_deep.sleep(key, kNoDeadline);
}

void* monitor_main(void*) {
  monitor_state& m = g_state;
  const std::uint64_t start = native_seam::now_ns();
  for (unsigned k = 0; k < m.rt->nklts; ++k) {
    m.watch[k].has_clock = pthread_getcpuclockid(m.rt->klts[k].thread, &m.watch[k].clock) == 0;
    // A KLT that has taken no step yet (steps 0, as the fresh reading) is
    // stalled since now, not since the clock's epoch: without this a slow
    // start was reported as "no scheduling step for <uptime> s".
    m.watch[k].since = start;
  }
  while (!stop_requested()) {
    std::uint64_t now = native_seam::now_ns();
    bool all_idle = true;
    unsigned blocked = 0;
    for (unsigned k = 0, n = m.rt->klts_up(); k < n; ++k) {
      bool b = false;
      all_idle &= check_klt(m, k, now, &b);
      blocked += b;
    }
    if (m.spares) adjust_spares(m, blocked, now);
    if (all_idle) {
      deep_sleep(m);
      continue;
    }
    native_seam::os_wait(g_stop, 0, native_seam::now_ns() + m.period_ns);
  }
  return nullptr;
}

// FIBER_WATCHDOG=seconds (decimal allowed) overrides cfg.watchdog_ms; 0 turns
// it off.  An unparsable value is ignored with one line on stderr.
std::uint64_t resolve_watchdog_ns(const fiber_config_t& cfg) noexcept {
  std::uint64_t ns = static_cast<std::uint64_t>(cfg.watchdog_ms) * 1000000u;
  const char* env = std::getenv("FIBER_WATCHDOG");
  if (!env || !*env) return ns;
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(env, &end);
  if (errno != 0 || end == env || *end != '\0' || !(s >= 0) || s > 1e6) {
    std::fprintf(stderr, "fiber: FIBER_WATCHDOG=%s ignored (want seconds, e.g. 2 or 0.5)\n", env);
    return ns;
  }
  if (s > 0 && s < 0.001) s = 0.001;  // the bound is at least one millisecond
  return static_cast<std::uint64_t>(s * 1e9);
}

}  // namespace

bool monitor_start(runtime& rt) noexcept {
  monitor_state& m = g_state;
  m.rt = &rt;
  m.watchdog_ns = resolve_watchdog_ns(rt.cfg);
  // relaxed (both): test knobs.
  m.spares = rt.nspare > 0 && !knobs.no_spare_klt.load(std::memory_order_relaxed);
  m.handoff = (rt.nklts > 1 || m.spares) && !knobs.no_monitor_handoff.load(std::memory_order_relaxed);
  if (!m.handoff && !m.spares && m.watchdog_ns == 0) return true;  // I-MON2: nothing to watch
  // Hand-off: kMonitorPeriodNs.  Watchdog: a quarter of its bound, so a
  // report comes between 1 and 1.5 bounds after the last step.
  std::uint64_t period = m.handoff || m.spares ? kMonitorPeriodNs : ~std::uint64_t{0};
  if (m.watchdog_ns != 0 && m.watchdog_ns / 4 < period) period = m.watchdog_ns / 4;
  m.period_ns = period < kMinPeriodNs ? kMinPeriodNs : period;
  m.watch.reset(new (std::nothrow) klt_watch[rt.nklts + rt.nspare]);
  if (!m.watch) return false;
  g_stop.store(0, mo::relaxed);  // relaxed: published by pthread_create
  // The monitor takes no signal meant for the program (process-directed
  // signals go to the program's own threads): it starts with all blocked.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  // Counted before it exists: the deadlock detector (deadlock.cpp) requires the
  // process's thread count to equal the threads it knows, so a count ahead of
  // the thread only delays a report, never makes one up.
  rt.internal_threads.fetch_add(1, std::memory_order_relaxed);  // relaxed: a census, see deadlock.cpp
  int r = pthread_create(&m.thread, nullptr, monitor_main, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (r == 0) pthread_setname_np(m.thread, "fiber-monitor");  // for gdb, top, and the tests
  if (r != 0) {
    rt.internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: no monitor
    m.watch.reset();
    m.rt = nullptr;
    return false;
  }
  return true;
}

void monitor_stop() noexcept {
  monitor_state& m = g_state;
  if (!m.watch) {
    m.rt = nullptr;
    return;
  }
  g_stop.store(1, mo::release);  // release: pairs with stop_requested()'s acquire
  native_seam::os_wake(g_stop, 1);
  g_deep.notify_all();  // its fence orders g_stop before the sleepers_ check (I-I1)
  pthread_join(m.thread, nullptr);
  m.rt->internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: the monitor is gone
  m.watch.reset();
  m.rt = nullptr;
}

void monitor_klt_woke() noexcept { g_deep.notify_one(); }

unsigned spare_klts_for(unsigned nklts) noexcept {
  unsigned want = nklts < kMinSpares ? kMinSpares : nklts;
  unsigned room = FIBER_MAX_KLTS - nklts;  // slot indices index per-KLT tables of that size
  return want < room ? want : room;
}

}  // namespace fiber::detail

extern "C" void fiber_test_get_spare_counters(fiber_test_spare_counters_t* out) {
  using namespace fiber::detail;
  if (!out) return;
  out->started = g_spares_started.load(std::memory_order_relaxed);  // relaxed: statistics
  out->turned_on = g_spares_turned_on.load(std::memory_order_relaxed);
  out->on_now = 0;
  runtime* rt = g_rt.load(std::memory_order_acquire);  // acquire: pairs with fiber_init's release
  if (!rt) return;
  for (unsigned s = rt->nklts, n = rt->klts_up(); s < n; ++s) out->on_now += !rt->policy->retiring(s);
}

namespace fiber::detail {

// The KLT takes no step and runs no fiber (klt::running is 0 between picks,
// klt::idle false): what the watchdog calls "stuck in the runtime's
// scheduler".  The runtime itself never waits there except in its idle sleep
// (flagged idle); foreign code can: a program's signal handler that blocks
// when it lands on a KLT between two fibers, or a debugger holding the
// thread.  Raw nanosleep: libc's is interposed (interpose_sleep.cpp).
void knob_sched_stall(runtime& rt) noexcept {
  while (knobs.sched_stall.load(std::memory_order_relaxed) &&   // relaxed: a test knob
         !rt.stopping.load(std::memory_order_relaxed)) {        // relaxed: re-read every ms
    struct timespec ts{0, 1000000};
    syscall(SYS_nanosleep, &ts, nullptr);
  }
}

}  // namespace fiber::detail
