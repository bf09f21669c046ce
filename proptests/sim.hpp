// proptests/sim.hpp - a deterministic, single-threaded driver for the
// scheduler core: N virtual KLTs, virtual fibers running tiny scripts,
// virtual time, and a schedule given AS DATA (which KLT steps next, where
// ticks land, when the clock moves) so that RapidCheck can shrink a failing
// run to a minimal schedule.  A seed cannot be shrunk; a vector of steps can
// (papers/platform.md, "RapidCheck").
//
// What it drives: the runtime's own KLT loop (fiber/detail/klt_loop.hpp: when
// timers expire relative to a pick, what happens to the fiber that left,
// committing a park, finishing an exit, when a KLT may sleep) over the real
// fiber::detail::fifo_policy / runnext_policy and timer_heap from
// core/include, instantiated with sim_seam below (a sequential seam: atomics
// are plain values, spin hints and preemption control are no-ops); the
// simulator is the loop's environment, as sched.cpp's native_env is.
//
// Vocabulary of a run:
//   script  a fiber's program: cpu k (k run-steps of work), yield, sleep d,
//           spawn s (child runs script s), wait o / wake o (a counting
//           semaphore o: wait takes a permit or blocks FIFO, wake hands a
//           permit to the oldest waiter or banks it), join -n (waits for
//           the fiber created n before it, modulo its own number: only
//           older fibers, so joins never form a cycle; no-op for f0 and
//           for a fiber already exited), and exit at the end.
//   step    spawn(s@k) a fiber created by code on KLT k (s@ext: by an OS
//           thread, kNoKlt); run(k) KLT k executes one action of its current
//           fiber, or looks for work when idle; tick(k) a preemption tick on
//           KLT k; clock(+d) virtual time advances (an idle KLT asleep until
//           a deadline now passed wakes).  Timers expire where the runtime
//           expires them: at every scheduling decision of a KLT (the fiber
//           woken there, as timers_expire does), before its pick.
//   drain   after the schedule, every KLT runs until all fibers exit; when
//           nothing is runnable the clock jumps to the next deadline, or an
//           OS thread wakes the oldest blocked fiber (kNoKlt).
//
// Checks (each property enables the ones it is about; a violation throws
// fiber_sim::violation, which RapidCheck reports and shrinks):
//   kAccounting  I-R4/I-Q1/I-Q4: after every step each runnable fiber is in
//                exactly one queue (or, runnext_policy, its creator's runnext
//                slot), queue sizes are exact, pick_next never returns a
//                fiber that is running, blocked, sleeping or done, an idle KLT
//                does not return empty-handed while work it may take exists,
//                and after the drain every fiber exited exactly once.
//   kPinned      I-R3: a preempted fiber next runs on the KLT it was
//                preempted on, and while queued it sits in that KLT's queue.
//   kTimers      I-T1: a sleeper wakes no earlier than its deadline, wake
//                order is (deadline, sleep order), and wake-up lateness is at
//                most one quantum: when a KLT's fiber leaves (tick, yield,
//                park, exit), every sleeper due by now is awake before the
//                KLT picks what runs next.
//   (I-R5, with kAccounting: stall_and_evacuate / expect_run_elsewhere, the
//    monitor's hand-off of a stalled KLT's fibers; see prop_policy.cpp.)
//   kFairness    I-R1 (one KLT): a fiber that becomes runnable while R other
//                fibers are runnable waits at most R quanta (picks of other
//                fibers) before it runs; fibers still waiting count too.
//   kIdle        I-R6, work conservation: a KLT whose pick finds nothing
//                asks has_work(k); true there is a spin on work it cannot
//                take (a violation); false puts it to sleep, and a sleeping
//                KLT takes no steps until a push or a wake_another() after a
//                pick wakes it (notify_one: the lowest-numbered sleeper).
//                After every step, unless some awake KLT without a fiber is
//                looking for work, no KLT sleeps while work it could take
//                exists (global, its own queue, or an unpinned fiber of a
//                queue whose KLT sleeps too or that holds more than the one
//                fiber its awake KLT runs next), computed from the queues'
//                contents, not from the policy's hints.
//   kAccounting also checks the live count (I7): created fibers not yet exited.
//   Order (klt_loop.hpp, the shipped decisions): a leaving fiber's KLT
//   expires timers, then picks, then requeues the leaver (yield, tick); with
//   nothing else runnable the leaver continues.  A park or exit with nothing
//   to run lands in the scheduler context, which looks for work in the same
//   step (pick, else sleep or look again).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fiber/detail/assert.hpp"

namespace fiber_sim {

// FIBER_ASSERT inside core code runs in noexcept functions, so it cannot
// throw; it records the failure and the simulator raises it after the call
// (the Relacy seam redefines the macro the same way, as RL_ASSERT).
inline std::string& pending_assert() {
  static std::string s;
  return s;
}
inline void note_assert(const char* cond, const char* msg, const char* file, int line) noexcept {
  std::string& s = pending_assert();
  if (!s.empty()) return;
  s = std::string("FIBER_ASSERT: ") + msg + " (" + cond + ") at " + file + ":" +
      std::to_string(line);
}

}  // namespace fiber_sim

#undef FIBER_ASSERT
#define FIBER_ASSERT(cond, msg) \
  ((cond) ? (void)0 : ::fiber_sim::note_assert(#cond, (msg), __FILE__, __LINE__))

#include "fiber/detail/klt_loop.hpp"
#include "fiber/detail/policy.hpp"
#include "fiber/detail/timer_heap.hpp"
#include "sim_trace.hpp"

namespace fiber_sim {

using fiber::detail::kNoKlt;
using fiber::detail::mo;

// ---------------------------------------------------------------- the seam
// Sequential stand-ins with the signatures of seam.hpp.  One OS thread runs
// everything, so no order matters; the orders are accepted and ignored.
struct sim_seam {
  template <class T>
  class atomic {
   public:
    constexpr atomic() noexcept : v_{} {}
    constexpr explicit atomic(T v) noexcept : v_(v) {}
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;
    T load(mo) const noexcept { return v_; }
    void store(T v, mo) noexcept { v_ = v; }
    T exchange(T v, mo) noexcept { return std::exchange(v_, v); }
    bool compare_exchange_strong(T& e, T d, mo, mo) noexcept {
      if (v_ != e) { e = v_; return false; }
      v_ = d;
      return true;
    }
    bool compare_exchange_weak(T& e, T d, mo a, mo b) noexcept {
      return compare_exchange_strong(e, d, a, b);
    }
    T fetch_add(T v, mo) noexcept { T o = v_; v_ = static_cast<T>(v_ + v); return o; }
    T fetch_sub(T v, mo) noexcept { T o = v_; v_ = static_cast<T>(v_ - v); return o; }
    T fetch_or(T v, mo) noexcept { T o = v_; v_ = static_cast<T>(v_ | v); return o; }
    T fetch_and(T v, mo) noexcept { T o = v_; v_ = static_cast<T>(v_ & v); return o; }

   private:
    T v_;
  };
  template <class T>
  class var {
   public:
    constexpr var() noexcept : v_{} {}
    constexpr explicit var(T v) noexcept : v_(v) {}
    T load() const noexcept { return v_; }
    void store(T v) noexcept { v_ = v; }

   private:
    T v_;
  };
  static void fence(mo) noexcept {}
  // Sequential: a spinner would spin forever, so a spin is a left-held lock.
  static void spin_hint(unsigned) noexcept { note_assert("!spin", "spin in the simulator", __FILE__, __LINE__); }
  static void preempt_disable() noexcept {}
  static void preempt_enable() noexcept {}
};

// ------------------------------------------------------------- the scripts
enum class act : std::uint8_t { cpu, yield, sleep, spawn, wait, wake, join };
struct action {
  act a = act::cpu;
  std::uint8_t arg = 0;
};
using script = std::vector<action>;

enum class op : std::uint8_t { spawn, tick, run, clock };
struct step {
  op o = op::spawn;
  std::uint8_t klt = 0;  // spawn: kExt means an OS thread (kNoKlt)
  std::uint8_t arg = 0;  // spawn: script index; clock: +arg+1 ns
};

struct scenario {
  unsigned nklts = 1;
  std::vector<script> scripts;  // spawn arguments index this (mod size)
  std::vector<step> steps;
};

inline constexpr std::uint8_t kExt = 0xff;
inline constexpr unsigned kNoObj = 2;       // wait objects o0, o1
inline constexpr std::size_t kMaxFibers = 40;

inline std::ostream& operator<<(std::ostream& os, const action& a) {
  switch (a.a) {
    case act::cpu: return os << "cpu" << unsigned(a.arg) + 1;
    case act::yield: return os << "yield";
    case act::sleep: return os << "sleep" << unsigned(a.arg) + 1;
    case act::spawn: return os << "spawn(s" << unsigned(a.arg) << ")";
    case act::wait: return os << "wait(o" << unsigned(a.arg) % kNoObj << ")";
    case act::wake: return os << "wake(o" << unsigned(a.arg) % kNoObj << ")";
    case act::join: return os << "join(-" << unsigned(a.arg) + 1 << ")";
  }
  return os;
}
inline std::ostream& operator<<(std::ostream& os, const step& s) {
  switch (s.o) {
    case op::spawn:
      os << "spawn(s" << unsigned(s.arg) << "@";
      return s.klt == kExt ? os << "ext)" : os << "k" << unsigned(s.klt) << ")";
    case op::tick: return os << "tick(k" << unsigned(s.klt) << ")";
    case op::run: return os << "run(k" << unsigned(s.klt) << ")";
    case op::clock: return os << "clock(+" << unsigned(s.arg) + 1 << ")";
  }
  return os;
}
template <class T>
std::string show_list(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}
inline std::ostream& operator<<(std::ostream& os, const scenario& sc) {
  os << "{klts=" << sc.nklts << ", scripts=[";
  for (std::size_t i = 0; i < sc.scripts.size(); ++i)
    os << (i ? ", " : "") << "s" << i << "=" << show_list(sc.scripts[i]);
  return os << "], steps=" << show_list(sc.steps) << "}";
}

// -------------------------------------------------------------- the fibers
enum class fstate : std::uint8_t { runnable, running, sleeping, blocked, done };

struct sim_fiber {
  // Node requirements of run_queue and timer_heap.
  sim_seam::var<sim_fiber*> rq_next{nullptr};
  sim_seam::var<bool> pinned{false};
  sim_seam::var<std::size_t> rq_stamp{0};
  std::uint64_t timer_deadline = 0;
  std::uint64_t timer_seq = 0;
  std::size_t timer_index = ~std::size_t{0};
  // Simulator bookkeeping (the runtime's view of the fiber, not the policy's).
  unsigned id = 0;
  unsigned script = 0;
  std::size_t pc = 0;
  unsigned cpu_done = 0;        // run-steps spent in the current cpu action
  fstate state = fstate::runnable;
  unsigned klt = kNoKlt;        // running on
  unsigned pinned_to = kNoKlt;  // set by a preemption until it runs again
  unsigned new_klt = kNoKlt;    // on_new's klt if that was the last enqueue
  std::uint64_t sleep_order = 0;
  std::uint64_t wake_at = 0;    // deadline of the current sleep
  fstate parking_as = fstate::blocked;  // the state its park commits to (sleeping, blocked)
  unsigned exits = 0;
  unsigned waited = 0;  // quanta given to others since it became runnable
  unsigned bound = 0;   // runnable others when it became runnable
};

enum check : unsigned { kAccounting = 1, kPinned = 2, kTimers = 4, kFairness = 8, kIdle = 16 };

struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace fiber_sim

#include "sim_driver.hpp"
