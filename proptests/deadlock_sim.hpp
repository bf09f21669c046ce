// proptests/deadlock_sim.hpp - a deterministic simulator of small fiber
// programs that lock mutexes, join each other, sleep and use semaphores,
// for the property test of the deadlock detector (prop_deadlock.cpp).
//
// Why not sim.hpp: that simulator drives the real run queues (intrusive
// nodes, so a run cannot be copied) and knows no mutex or join.  Here the
// subject is the detector's decision (fiber/detail/deadlock_rules.hpp), and
// the ground truth needs a *copy* of the world run on to its end: a world is
// a plain value (indices, no pointers between its parts), so "does anybody
// ever run again?" is answered by copying it and draining the copy.
//
// A program: F fibers (each a script), all created by main at the start;
// main, an OS thread in the runtime, runs its own script (join, wait, post);
// optionally ext, an OS thread the runtime does not know (post, or nap
// outside the runtime), which is what rule 1's thread count is about.
//   script actions: cpuN (N run-steps), yield, lock(mI), unlock(mI),
//     join(fJ), sleepN (virtual ns), wait(oI) / post(oI) on a semaphore.
//   mutexes are FIFO hand-off with the runtime's owner hint (I-M4): the
//     unlocker clears the hint and the grantee writes its id at its first
//     step; an exiting fiber keeps what it holds (as a real one does).
//   join(self), a join of a fiber already joined or being joined: no-ops
//     (EDEADLK / ESRCH / EINVAL); an exited fiber's join returns at once.
// A schedule (data, shrinkable): run(kK) (KLT K runs one action of its
// fiber, or picks), tick(kK) (preemption), clock(+D), main, ext, and
// check(gG): one detector check whose readings are G schedule steps apart
// (the runtime runs on while the detector reads).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fiber/detail/deadlock_rules.hpp"
#include "sim_trace.hpp"

namespace fiber_sim::dl {

using fiber::detail::dl_detector;
using fiber::detail::kCycleEvery;
using fiber::detail::dl_member;
using fiber::detail::dl_progress;
using fiber::detail::wait_kind;

inline constexpr unsigned kMutexes = 3, kSems = 2;
inline constexpr long kInternalThreads = 2;  // the monitor and the diag ticker
inline constexpr int kMain = -2;             // main, as a waiter or a joiner

enum class act : std::uint8_t { cpu, yield, lock, unlock, join, sleep, wait, post };
struct action {
  act a = act::cpu;
  std::uint8_t arg = 0;
};
using script = std::vector<action>;

enum class op : std::uint8_t { run, tick, clock, main, ext, check };
struct step {
  op o = op::run;
  std::uint8_t arg = 0;  // run/tick: KLT (mod nklts); clock: +arg+1 ns; check: the gap
};

struct program {
  unsigned nklts = 1;
  std::vector<script> fibers;  // fiber i runs fibers[i]
  script main;                 // join / wait / post
  script ext;                  // post / cpu (a nap outside the runtime); empty: no ext thread
  std::vector<step> steps;
};

// The scripts of a program, for the counterexample reduction (prop_util.hpp):
// each fiber's, main's, ext's.
inline std::size_t script_count(const program& p) { return p.fibers.size() + 2; }
inline script& script_at(program& p, std::size_t k) {
  return k < p.fibers.size() ? p.fibers[k] : k == p.fibers.size() ? p.main : p.ext;
}

struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::ostream& operator<<(std::ostream& os, const action& a) {
  switch (a.a) {
    case act::cpu: return os << "cpu" << unsigned(a.arg) + 1;
    case act::yield: return os << "yield";
    case act::lock: return os << "lock(m" << unsigned(a.arg) % kMutexes << ")";
    case act::unlock: return os << "unlock(m" << unsigned(a.arg) % kMutexes << ")";
    case act::join: return os << "join(f" << unsigned(a.arg) << ")";
    case act::sleep: return os << "sleep" << unsigned(a.arg) + 1;
    case act::wait: return os << "wait(o" << unsigned(a.arg) % kSems << ")";
    case act::post: return os << "post(o" << unsigned(a.arg) % kSems << ")";
  }
  return os;
}
inline std::ostream& operator<<(std::ostream& os, const step& s) {
  switch (s.o) {
    case op::run: return os << "run(k" << unsigned(s.arg) << ")";
    case op::tick: return os << "tick(k" << unsigned(s.arg) << ")";
    case op::clock: return os << "clock(+" << unsigned(s.arg) + 1 << ")";
    case op::main: return os << "main";
    case op::ext: return os << "ext";
    case op::check: return os << "check(g" << unsigned(s.arg) << ")";
  }
  return os;
}
template <class T>
std::string show(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}
inline std::ostream& operator<<(std::ostream& os, const program& p) {
  os << "{klts=" << p.nklts << ", fibers=[";
  for (std::size_t i = 0; i < p.fibers.size(); ++i) os << (i ? ", " : "") << "f" << i << "=" << show(p.fibers[i]);
  return os << "], main=" << show(p.main) << ", ext=" << show(p.ext) << ", steps=" << show(p.steps) << "}";
}

enum class fs : std::uint8_t { runnable, running, blocked, sleeping, exited, reclaimed };

struct fib {
  fs st = fs::runnable;
  std::size_t pc = 0;
  unsigned cpu_done = 0;
  wait_kind kind = wait_kind::none;  // the last wait (diag's kind_/obj_)
  int obj = -1;                      // its object's index (mutex, semaphore, fiber)
  std::uint32_t waits = 0, wakes = 0;
  // The runtime's state word changes at every transition (diag.hpp); here
  // every wait and every wake changes this, which is what the rules read.
  std::uint64_t stamp() const noexcept { return (std::uint64_t{waits} << 32) | wakes; }
  int joiner = -1;         // fiber index, kMain, or -1
  int pending_owner = -1;  // a mutex granted to it: it writes the hint at its next step
  std::uint64_t wake_at = 0;
  std::uint64_t acts = 0;  // actions executed (the ground truth's measure of progress)
};
struct mutex_s {
  int holder = -1;          // the true owner (fiber index)
  std::uint64_t hint = 0;   // owner_hint(): the owner's id, 0 while a grant is in flight
  std::deque<int> q;
};
struct sem_s {
  unsigned permits = 0;
  std::deque<int> q;  // fiber indices or kMain
};
struct klt_s {
  int cur = -1;
  bool idle = false;
  std::uint64_t switches = 0;
};
struct thread_s {  // main or ext
  std::size_t pc = 0;
  bool parked = false;
  bool woken = false;  // unparked, not yet run since: its return from the park counts as progress
  bool done = false;
  std::uint64_t acts = 0;
};

// The simulated process.  A plain value: copy it to ask about its future.
class world {
 public:
  explicit world(const program& p)
      : p_(&p), f_(p.fibers.size()), m_(kMutexes), s_(kSems), k_(p.nklts) {
    for (std::size_t i = 0; i < f_.size(); ++i) runq_.push_back(static_cast<int>(i));
    ext_.done = p.ext.empty();
  }
  // The runner's world records its run (sim_trace.hpp; a control's case);
  // the copies that answer "does anybody run again?" never do.
  void record() {
    rec_ = true;
    sim_trace::get().cur.nklts = nklts();
    for (std::size_t i = 0; i < f_.size(); ++i) ev(sim_event::create, ~0u, static_cast<int>(i));
  }
  world unrecorded_copy() const {
    world w = *this;
    w.rec_ = false;
    return w;
  }

  void step(const step& s) {
    switch (s.o) {
      case op::run: run(s.arg % nklts()); break;
      case op::tick: tick(s.arg % nklts()); break;
      case op::clock: advance(now_ + s.arg + 1u); break;
      case op::main: main_step(); break;
      case op::ext: ext_step(); break;
      case op::check: break;  // the runner's
    }
  }

  // Every party runs, fairly, until nobody can: the program's future.
  void drain() {
    for (unsigned round = 0; round < 100000; ++round) {
      if (rec_) ++sim_trace::get().cur.drain_steps;
      const std::uint64_t before = events_;
      for (unsigned k = 0; k < nklts(); ++k) run(k);
      main_step();
      ext_step();
      if (events_ != before) continue;
      if (!sleeping()) return;
      std::uint64_t t = ~std::uint64_t{0};
      for (const fib& f : f_)
        if (f.st == fs::sleeping) t = std::min(t, f.wake_at);
      advance(t);
    }
    throw violation("simulator: the drain did not end");
  }

  // Ground truth: nobody (fiber, main, ext) ever acts again.
  bool stuck_forever() const {
    world w = unrecorded_copy();
    const std::uint64_t before = w.total_acts();
    w.drain();
    return w.total_acts() == before;
  }
  bool settled() const {  // every KLT has gone to sleep
    for (const klt_s& k : k_)
      if (!k.idle) return false;
    return true;
  }

  // Reference waits-for cycles (exact state; independent of the rules):
  // each as its sorted member indices.
  std::vector<std::vector<int>> cycles() const {
    std::vector<std::vector<int>> out;
    for (int i = 0; i < static_cast<int>(f_.size()); ++i) {
      std::vector<int> path{i};
      for (int n = edge(i); n >= 0 && path.size() <= f_.size(); n = edge(n)) {
        if (n == i) {
          std::sort(path.begin(), path.end());
          if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
          break;
        }
        if (std::find(path.begin(), path.end(), n) != path.end()) break;
        path.push_back(n);
      }
    }
    return out;
  }

  // ---- readings, as the detector's source asks for them ----------------
  unsigned nklts() const { return static_cast<unsigned>(k_.size()); }
  bool klt_idle(unsigned k) const { return k_[k].idle; }
  bool has_work() const { return !runq_.empty(); }
  bool sleeping() const {
    for (const fib& f : f_)
      if (f.st == fs::sleeping) return true;
    return false;
  }
  std::uint64_t live() const {
    std::uint64_t n = 0;
    for (const fib& f : f_) n += f.st != fs::exited && f.st != fs::reclaimed;
    return n;
  }
  long untimed_os_waiters() const { return main_.parked ? 1 : 0; }
  long process_threads() const {
    return static_cast<long>(nklts()) + kInternalThreads + (main_.done ? 0 : 1) + (ext_.done ? 0 : 1);
  }
  dl_progress progress() const {
    dl_progress p;
    for (const klt_s& k : k_) p.switches += k.switches;
    p.idle_sleeps = idle_sleeps_;
    p.os_blocks = os_blocks_;
    p.live = live();
    return p;
  }
  std::size_t nfibers() const { return f_.size(); }
  const fib& fiber(int i) const { return f_[static_cast<std::size_t>(i)]; }
  // The address diag's obj_ would hold (an index, so a copy stays valid).
  const void* obj_of(const fib& f) const {
    if (f.obj < 0) return nullptr;
    const auto i = static_cast<std::size_t>(f.obj);
    if (f.kind == wait_kind::mutex) return &m_[i];
    if (f.kind == wait_kind::semaphore) return &s_[i];
    if (f.kind == wait_kind::join) return &f_[i];
    return nullptr;
  }
  // The fiber a wait on obj of kind k waits for (via the owner hint), or -1.
  int blocker(wait_kind k, const void* obj) const {
    if (!obj) return -1;
    if (k == wait_kind::join) return static_cast<int>(static_cast<const fib*>(obj) - f_.data());
    if (k != wait_kind::mutex) return -1;
    const std::uint64_t id = static_cast<const mutex_s*>(obj)->hint;
    return id == 0 ? -1 : static_cast<int>(id - 1);
  }
  bool main_done() const { return main_.done; }
  std::uint64_t total_acts() const {
    std::uint64_t n = main_.acts + ext_.acts;
    for (const fib& f : f_) n += f.acts;
    return n;
  }

 private:
  static std::uint64_t id_of(int i) { return static_cast<std::uint64_t>(i) + 1; }
  // The exact waits-for edge of fiber i (true holder / join target), or -1.
  int edge(int i) const {
    const fib& f = f_[static_cast<std::size_t>(i)];
    if (f.st != fs::blocked) return -1;
    if (f.kind == wait_kind::join) return f.obj;
    if (f.kind == wait_kind::mutex) return m_[static_cast<std::size_t>(f.obj)].holder;
    return -1;
  }

  void ev(sim_event::kind what, unsigned k, int fiber = 0, unsigned long long arg = 0) const {
    if (rec_) sim_trace::get().add(what, k, static_cast<unsigned>(fiber), arg);
  }
  void pick(unsigned k) {
    klt_s& kl = k_[k];
    if (runq_.empty()) {
      if (!kl.idle) kl.idle = true, ++idle_sleeps_, ev(sim_event::idle_sleep, k);
      return;
    }
    const int i = runq_.front();
    runq_.pop_front();
    f_[static_cast<std::size_t>(i)].st = fs::running;
    if (kl.idle) ev(sim_event::idle_wake, k);
    ev(sim_event::run, k, i);
    kl.cur = i;
    kl.idle = false;
    ++kl.switches;
    ++events_;
  }
  void run(unsigned k) {
    if (k_[k].cur >= 0) exec(k_[k].cur, k); else pick(k);
  }
  void tick(unsigned k) {
    if (k_[k].cur >= 0) {
      ev(sim_event::preempt, k, k_[k].cur);
      make_runnable(k_[k].cur);
      k_[k].cur = -1;
    }
    pick(k);
  }
  void make_runnable(int i) {
    f_[static_cast<std::size_t>(i)].st = fs::runnable;
    runq_.push_back(i);
    ++events_;
  }
  void wake(int i) {
    if (i == kMain) {
      main_.parked = false;
      main_.woken = true;
      ++events_;
      return;
    }
    ev(sim_event::wake, ~0u, i);
    ++f_[static_cast<std::size_t>(i)].wakes;
    make_runnable(i);
  }
  void block(int i, unsigned k, fs st, wait_kind kind, int obj) {
    fib& f = f_[static_cast<std::size_t>(i)];
    ev(st == fs::sleeping ? sim_event::sleep : sim_event::park, k, i, static_cast<unsigned long long>(obj + 1));
    f.st = st;
    f.kind = kind;
    f.obj = obj;
    ++f.waits;
    k_[k].cur = -1;
  }
  void advance(std::uint64_t t) {
    if (t > now_) ev(sim_event::clock, ~0u, 0, t);
    now_ = std::max(now_, t);
    std::vector<std::pair<std::uint64_t, int>> due;  // in deadline order (ties: index order)
    for (std::size_t i = 0; i < f_.size(); ++i)
      if (f_[i].st == fs::sleeping && f_[i].wake_at <= now_) due.emplace_back(f_[i].wake_at, static_cast<int>(i));
    std::sort(due.begin(), due.end());
    for (const auto& d : due) wake(d.second);
  }
  void post(unsigned o) {
    sem_s& s = s_[o];
    if (s.q.empty()) { ++s.permits; return; }
    const int w = s.q.front();
    s.q.pop_front();
    wake(w);
  }
  // join(t) by `me` (a fiber index or kMain): true if it must block.
  bool join(int me, unsigned t) {
    if (t >= f_.size() || static_cast<int>(t) == me) return false;
    fib& g = f_[t];
    if (g.st == fs::reclaimed || g.joiner != -1) return false;
    if (g.st == fs::exited) { g.st = fs::reclaimed; return false; }
    g.joiner = me;
    return true;
  }
  void exit_fiber(int i, unsigned k) {
    fib& f = f_[static_cast<std::size_t>(i)];
    ev(sim_event::exit, k, i);
    f.st = fs::exited;
    k_[k].cur = -1;
    if (f.joiner != -1) {
      f.st = fs::reclaimed;  // the joiner reclaims it as it returns
      wake(f.joiner);
    }
  }
  void exec(int i, unsigned k);
  void main_step();
  void ext_step();

  const program* p_;
  std::vector<fib> f_;  // sized once: wait objects point into it
  std::vector<mutex_s> m_;
  std::vector<sem_s> s_;
  std::vector<klt_s> k_;
  std::deque<int> runq_;
  thread_s main_, ext_;
  std::uint64_t now_ = 0, idle_sleeps_ = 0, os_blocks_ = 0, events_ = 0;
  bool rec_ = false;  // record(): this world's run is the trace
};

inline void world::exec(int i, unsigned k) {
  fib& f = f_[static_cast<std::size_t>(i)];
  ++f.acts;
  ++events_;
  if (f.pending_owner >= 0) {  // the grantee's first step (I-M4)
    m_[static_cast<std::size_t>(f.pending_owner)].hint = id_of(i);
    f.pending_owner = -1;
    return;
  }
  const script& s = p_->fibers[static_cast<std::size_t>(i)];
  if (f.pc >= s.size()) return exit_fiber(i, k);
  const action a = s[f.pc];
  if (a.a == act::cpu) {
    if (++f.cpu_done >= a.arg + 1u) f.cpu_done = 0, ++f.pc;
    return;
  }
  ++f.pc;
  switch (a.a) {
    case act::cpu: break;
    case act::yield:
      ev(sim_event::yield, k, i);
      k_[k].cur = -1;
      make_runnable(i);
      pick(k);
      break;
    case act::lock: {
      mutex_s& m = m_[a.arg % kMutexes];
      if (m.holder == -1) {
        m.holder = i;
        m.hint = id_of(i);
      } else if (m.holder != i) {
        m.q.push_back(i);
        block(i, k, fs::blocked, wait_kind::mutex, a.arg % kMutexes);
      }
      break;
    }
    case act::unlock: {
      mutex_s& m = m_[a.arg % kMutexes];
      if (m.holder != i) break;  // EPERM
      m.hint = 0;
      if (m.q.empty()) {
        m.holder = -1;
        break;
      }
      const int w = m.q.front();  // FIFO hand-off (I-M3)
      m.q.pop_front();
      m.holder = w;
      f_[static_cast<std::size_t>(w)].pending_owner = a.arg % kMutexes;
      wake(w);
      break;
    }
    case act::join:
      if (join(i, a.arg)) block(i, k, fs::blocked, wait_kind::join, a.arg);
      break;
    case act::sleep:
      f.wake_at = now_ + a.arg + 1u;
      block(i, k, fs::sleeping, wait_kind::sleep, -1);
      break;
    case act::wait: {
      sem_s& sm = s_[a.arg % kSems];
      if (sm.permits != 0) { --sm.permits; break; }
      sm.q.push_back(i);
      block(i, k, fs::blocked, wait_kind::semaphore, a.arg % kSems);
      break;
    }
    case act::post: post(a.arg % kSems); break;
  }
}

inline void world::main_step() {
  if (main_.done || main_.parked) return;
  ++main_.acts;
  ++events_;
  if (std::exchange(main_.woken, false)) ++os_blocks_;  // it returns from its park (native_seam.cpp os_block)
  if (main_.pc >= p_->main.size()) {
    main_.done = true;  // main returns: the process exits
    return;
  }
  const action a = p_->main[main_.pc++];
  bool park = false;
  if (a.a == act::join) {
    park = join(kMain, a.arg);
  } else if (a.a == act::wait) {
    sem_s& sm = s_[a.arg % kSems];
    if (sm.permits != 0) --sm.permits; else sm.q.push_back(kMain), park = true;
  } else if (a.a == act::post) {
    post(a.arg % kSems);
  }
  if (park) {
    ++os_blocks_;
    main_.parked = true;
  }
}

inline void world::ext_step() {
  if (ext_.done) return;
  ++ext_.acts;
  ++events_;
  const action a = p_->ext[ext_.pc++];
  if (a.a == act::post) post(a.arg % kSems);
  if (ext_.pc >= p_->ext.size()) ext_.done = true;  // the thread exits
}

}  // namespace fiber_sim::dl
