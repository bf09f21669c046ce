// proptests/prop_deadlock.cpp - properties of the deadlock detector's rules
// (fiber/detail/deadlock_rules.hpp: the code core/src/deadlock.cpp runs),
// checked on random programs of fibers that lock mutexes in random orders,
// join each other, sleep and use semaphores, under random schedules of the
// simulator in deadlock_sim.hpp, where the ground truth is known: a copy of
// the world run on to its end says whether anybody ever runs again.
//
// Properties (each a violation thrown, shrunk by RapidCheck):
//   no false positive, rule 1: at an "all asleep" verdict, nobody (fiber,
//     main, the foreign thread) ever acts again, and main has not returned.
//   no false positive, rule 2: the members of a reported cycle never act
//     again; no cycle is reported twice.
//   completeness, rule 1: once nobody can ever act and every KLT has gone
//     to sleep, the verdict comes at that check or the next one.
//   completeness, rule 2: a waits-for cycle (computed from the exact state,
//     independently of the rules) present at the start of check c is
//     reported by the end of check c + kCycleEvery - 1 (or at the verdict).
// After the schedule the world is drained; if main has not returned, the
// program hangs and checks go on (readings back to back) until the verdict,
// so every hanging program must be reported.
//
// Controls (planted.hpp style: the control passes only if RapidCheck finds
// a counterexample): the same rules over readings that lie the way a buggy
// detector would: armed timers ignored, the thread count ignored, stale
// mutex owners (an ownership change ignored), the progress counters ignored.
#include <algorithm>
#include <set>

#include "deadlock_sim.hpp"
#include "prop_util.hpp"

namespace fiber_sim::dl {
namespace {

enum plant : unsigned {
  kNone = 0,
  kIgnoreTimers = 1,      // timer_armed() always false
  kIgnoreThreads = 2,     // the thread count check skipped
  kStaleOwners = 4,       // a mutex wait's owner is the one first read for that wait
  kIgnoreProgress = 8,    // progress() constant
  kOnePass = 16,          // each fiber read once per check: a graph built in one pass and trusted
};

class runner;

// The detector's source of readings over the simulated world.  Every
// reading after a check's first lets `gap` schedule steps run first.
struct sim_src {
  runner* r;
  unsigned gap;
  unsigned plants;
  int reads = 0;
  std::vector<std::pair<dl_member<int>, int>> memo;  // kOnePass: (first read, its blocker) per fiber
  using handle = int;
  static handle none() noexcept { return -1; }

  void between() noexcept;
  const world& w() const noexcept;

  dl_progress progress() noexcept {
    between();
    return plants & kIgnoreProgress ? dl_progress{} : w().progress();
  }
  unsigned nklts() const noexcept { return w().nklts(); }
  bool klt_idle(unsigned k) noexcept { between(); return w().klt_idle(k); }
  bool has_work() noexcept { between(); return w().has_work(); }
  bool io_waiting() noexcept { return false; }  // the simulated programs do no I/O
  bool timer_armed() noexcept { between(); return !(plants & kIgnoreTimers) && w().sleeping(); }
  void os_waiters(long* untimed, bool* timed) noexcept {
    between();
    *untimed = w().untimed_os_waiters();
    *timed = false;
  }
  std::uint64_t live() noexcept { between(); return w().live(); }
  long internal_threads() noexcept { return kInternalThreads; }
  long process_threads() noexcept { between(); return w().process_threads(); }
  bool skip_thread_check() noexcept { return plants & kIgnoreThreads; }
  void each_fiber(void (*fn)(int, void*), void* ctx) noexcept {
    for (int i = 0; i < static_cast<int>(w().nfibers()); ++i) fn(i, ctx);
  }
  bool read(int i, dl_member<int>* m) noexcept {
    if (plants & kOnePass)
      for (const auto& e : memo)
        if (e.first.f == i) return *m = e.first, e.first.kind != wait_kind::none;
    between();
    const fib& f = w().fiber(i);
    if (f.st != fs::blocked && f.st != fs::sleeping) {
      if (plants & kOnePass) memo.emplace_back(dl_member<int>{i, 0, wait_kind::none, nullptr}, -1);
      return false;
    }
    m->f = i;
    m->stamp = f.stamp();
    m->kind = f.kind;
    m->obj = w().obj_of(f);
    if (plants & kOnePass) memo.emplace_back(*m, w().blocker(m->kind, m->obj));
    return true;
  }
  int blocker(const dl_member<int>& m) noexcept;
  std::uint64_t id(int i) noexcept { return static_cast<std::uint64_t>(i) + 1; }
  void report_cycle(const dl_member<int>* ms, int n) noexcept;
};

// Runs one program: its schedule with the detector's checks, then the drain
// and the checks of a hanging program.  Throws violation.
class runner {
 public:
  runner(const program& p, unsigned plants) : p_(p), w_(p), plants_(plants) { w_.record(); }

  void run() {
    while (next_ < p_.steps.size() && !over()) do_step(p_.steps[next_++]);
    if (over()) return;
    w_.drain();
    for (unsigned i = 0; i < 2 + kCycleEvery && !over(); ++i) check(0);
    if (!over()) fail("the program hangs, but no verdict after " + std::to_string(2 + kCycleEvery) + " checks");
  }

  // How the run ended, for the property's statistics.
  std::string outcome() const {
    std::string o = w_.main_done() ? "finished" : verdict_ ? "hung: all asleep" : "?";
    if (!reported_.empty()) o += reported_.size() > 1 ? ", cycles" : ", a cycle";
    if (verdict_ && checks_ > 0 && next_ < p_.steps.size()) o += ", within the schedule";
    return o;
  }

  // For sim_src.
  const world& w() const noexcept { return w_; }
  void interleave(unsigned gap) noexcept {
    for (unsigned i = 0; i < gap && next_ < p_.steps.size(); ++i) {
      const step s = p_.steps[next_++];
      if (s.o != op::check) w_.step(s);  // a check inside a check: the ticker is busy
    }
  }
  void on_cycle(const dl_member<int>* ms, int n) noexcept {
    std::vector<int> members;
    for (int i = 0; i < n; ++i) members.push_back(ms[i].f);
    std::sort(members.begin(), members.end());
    if (std::find(reported_.begin(), reported_.end(), members) != reported_.end())
      pending_error_ = "rule 2 reported cycle " + show(members) + " twice";
    reported_.push_back(members);
    world after = w_.unrecorded_copy();
    after.drain();
    for (int i : members)
      if (after.fiber(i).acts != w_.fiber(i).acts && pending_error_.empty())
        pending_error_ = "rule 2 false positive: reported cycle " + show(members) + ", but f" +
                         std::to_string(i) + " runs again";
  }
  std::vector<dl_member<int>>& first_reads() noexcept { return first_reads_; }

 private:
  bool over() const { return w_.main_done() || verdict_; }

  [[noreturn]] void fail(const std::string& what) const {
    std::ostringstream os;
    os << what << " (check #" << checks_ << ", step " << next_ << " of " << p_.steps.size() << ")";
    throw violation(os.str());
  }

  void do_step(const step& s) {
    ++sim_trace::get().cur.schedule_steps;
    if (s.o == op::check) check(s.arg); else w_.step(s);
  }

  void check(unsigned gap) {
    if (w_.main_done()) return;
    // Ground truth at the start of the check.
    if (first_dead_ < 0 && w_.settled() && w_.stuck_forever()) first_dead_ = checks_;
    for (const auto& c : w_.cycles())
      if (std::find(reported_.begin(), reported_.end(), c) == reported_.end() &&
          std::none_of(due_.begin(), due_.end(), [&](const auto& d) { return d.first == c; }))
        due_.emplace_back(c, checks_ + kCycleEvery - 1);
    sim_src s{this, gap, plants_, 0, {}};
    const bool asleep = det_.check(s) == dl_detector::verdict::asleep;
    if (!pending_error_.empty()) fail(pending_error_);
    if (asleep) {
      if (w_.main_done() || !w_.stuck_forever())
        fail("rule 1 false positive: \"all fibers are asleep\", but the program goes on");
      verdict_ = true;
    } else if (first_dead_ >= 0 && checks_ >= first_dead_ + 1) {
      fail("rule 1 incomplete: nobody can act since check #" + std::to_string(first_dead_) +
           ", every KLT asleep, and no verdict");
    }
    for (const auto& d : due_) {
      const bool done = std::find(reported_.begin(), reported_.end(), d.first) != reported_.end();
      if (!done && (asleep || checks_ >= d.second))
        fail("rule 2 incomplete: cycle " + show(d.first) + " present at check #" +
             std::to_string(d.second - (kCycleEvery - 1)) + " not reported");
    }
    ++checks_;
  }

  const program& p_;
  world w_;
  unsigned plants_;
  dl_detector det_;
  std::size_t next_ = 0;
  unsigned checks_ = 0;
  long first_dead_ = -1;
  bool verdict_ = false;
  std::vector<std::vector<int>> reported_;
  std::vector<std::pair<std::vector<int>, unsigned>> due_;
  std::string pending_error_;  // found inside a noexcept callback, thrown after it
  std::vector<dl_member<int>> first_reads_;  // kStaleOwners: (fiber, stamp) -> first owner read
};

const world& sim_src::w() const noexcept { return r->w(); }
void sim_src::between() noexcept {
  if (reads++ > 0) r->interleave(gap);
}
int sim_src::blocker(const dl_member<int>& m) noexcept {
  if (plants & kOnePass)
    for (const auto& e : memo)
      if (e.first.f == m.f) return e.second;
  between();
  int b = w().blocker(m.kind, m.obj);
  if (plants & kStaleOwners && m.kind == wait_kind::mutex) {
    for (const dl_member<int>& s : r->first_reads())  // obj holds the owner first read
      if (s.f == m.f && s.stamp == m.stamp) return static_cast<int>(reinterpret_cast<std::intptr_t>(s.obj));
    dl_member<int> rec = m;
    rec.obj = reinterpret_cast<const void*>(static_cast<std::intptr_t>(b));
    r->first_reads().push_back(rec);
  }
  return b;
}
void sim_src::report_cycle(const dl_member<int>* ms, int n) noexcept { r->on_cycle(ms, n); }

// ----------------------------------------------------------- generators
rc::Gen<action> gen_fiber_action(unsigned nfibers) {
  static const std::vector<act> kActs{act::lock, act::unlock, act::lock, act::unlock, act::join,
                                      act::cpu,  act::yield,  act::sleep, act::wait,  act::post};
  return rc::gen::map(rc::gen::tuple(one_of(kActs), small(0, 6)), [nfibers](const std::tuple<act, unsigned>& t) {
    action a{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t))};
    if (a.a == act::join) a.arg = static_cast<std::uint8_t>(a.arg % nfibers);
    if (a.a == act::cpu || a.a == act::sleep) a.arg %= 3;
    return a;
  });
}

// A fiber's script: blocks of nested locking (two mutexes in a random order,
// the pattern that deadlocks), joins, and single random actions.
rc::Gen<script> gen_fiber_script(unsigned nfibers) {
  const auto block = rc::gen::mapcat(small(0, 3), [nfibers](unsigned kind) -> rc::Gen<script> {
    if (kind == 0)
      return rc::gen::map(rc::gen::tuple(small(0, kMutexes), small(1, kMutexes), gen_fiber_action(nfibers)),
                          [](const std::tuple<unsigned, unsigned, action>& t) {
                            const auto a = static_cast<std::uint8_t>(std::get<0>(t));
                            const auto b = static_cast<std::uint8_t>((std::get<0>(t) + std::get<1>(t)) % kMutexes);
                            return script{{act::lock, a}, std::get<2>(t), {act::lock, b}, {act::unlock, b}, {act::unlock, a}};
                          });
    if (kind == 1)
      return rc::gen::map(small(0, nfibers), [](unsigned f) { return script{{act::join, static_cast<std::uint8_t>(f)}}; });
    return rc::gen::map(gen_fiber_action(nfibers), [](action a) { return script{a}; });
  });
  return rc::gen::map(rc::gen::resize(4, rc::gen::container<std::vector<script>>(block)), [](const std::vector<script>& bs) {
    script out;
    for (const script& b : bs) out.insert(out.end(), b.begin(), b.end());
    return out;
  });
}

// What a run may draw.  The controls draw long gaps: a planted reading only
// shows when the world moves between two readings of one check.
struct gen_cfg {
  unsigned min_gap = 0, max_gap = 4;  // schedule steps between two readings of a check
  bool ext_posts = false;             // the foreign thread always has posts to make
};

rc::Gen<step> gen_step(unsigned nklts, gen_cfg c) {
  static const std::vector<op> kOps{op::run, op::run, op::run, op::run, op::tick, op::clock,
                                    op::main, op::ext, op::check, op::check};
  return rc::gen::map(rc::gen::tuple(one_of(kOps), small(0, 4), small(c.min_gap, c.max_gap + 1)),
                      [nklts](const std::tuple<op, unsigned, unsigned>& t) {
    step s{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t))};
    if (s.o == op::run || s.o == op::tick) s.arg = static_cast<std::uint8_t>(s.arg % nklts);
    if (s.o == op::main || s.o == op::ext) s.arg = 0;
    if (s.o == op::check) s.arg = static_cast<std::uint8_t>(std::get<2>(t));
    return s;
  });
}

rc::Gen<program> gen_program(gen_cfg c) {
  return rc::gen::exec([c] {
    program p;
    p.nklts = *small(1, 3);
    const unsigned nf = *small(2, 5);
    for (unsigned i = 0; i < nf; ++i)
      p.fibers.push_back(*gen_fiber_script(nf));
    const auto main_act = rc::gen::map(rc::gen::tuple(one_of(std::vector<act>{act::join, act::wait, act::post}), small(0, 5)),
                                       [nf](const std::tuple<act, unsigned>& t) {
                                         action a{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t))};
                                         if (a.a == act::join) a.arg = static_cast<std::uint8_t>(a.arg % nf);
                                         return a;
                                       });
    p.main = *rc::gen::resize(4, rc::gen::container<script>(main_act));
    const auto ext_act = rc::gen::map(rc::gen::tuple(one_of(std::vector<act>{act::post, act::cpu}), small(0, 2)),
                                      [](const std::tuple<act, unsigned>& t) {
                                        return action{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t))};
                                      });
    p.ext = *rc::gen::resize(3, rc::gen::container<script>(ext_act));
    if (c.ext_posts) p.ext.push_back(action{act::post, static_cast<std::uint8_t>(*small(0, kSems))});
    p.steps = *rc::gen::resize(120, rc::gen::container<std::vector<step>>(gen_step(p.nklts, c)));
    return p;
  });
}

void run_program(unsigned plants, gen_cfg c = {}) {
  const program p = *gen_program(c);
  note_scenario(p);
  runner r(p, plants);
  r.run();
  if (plants == kNone) RC_TAG(r.outcome());
}

// ----------------------------------------------------------- properties
FIBER_PROP(Deadlock, RulesSoundAndCompleteOnSimulatedPrograms, 3000, ()) { run_program(kNone); }

// A control's property on a given program: its counterexample is reduced
// further and the shortest of several searches kept (prop_util.hpp).
auto rerun_planted(unsigned plants) {
  return rerun_as<program>([plants](const program& p) {
    runner r(p, plants);
    r.run();
  });
}

// Controls: each planted reading must be caught.
TEST(Deadlock, ControlIgnoringArmedTimersIsCaught) {
  expect_counterexample("Deadlock/ControlIgnoringArmedTimers", 20000, [] { run_program(kIgnoreTimers); },
                        rerun_planted(kIgnoreTimers));
}
TEST(Deadlock, ControlIgnoringTheThreadCountIsCaught) {
  expect_counterexample("Deadlock/ControlIgnoringTheThreadCount", 20000, [] { run_program(kIgnoreThreads); },
                        rerun_planted(kIgnoreThreads));
}
TEST(Deadlock, ControlStaleMutexOwnersIsCaught) {
  expect_counterexample("Deadlock/ControlStaleMutexOwners", 20000, [] { run_program(kStaleOwners); },
                        rerun_planted(kStaleOwners));
}
TEST(Deadlock, ControlOnePassGraphIsCaught) {
  expect_counterexample("Deadlock/ControlOnePassGraph", 100000, [] { run_program(kOnePass, gen_cfg{2, 8, false}); },
                        rerun_planted(kOnePass));
}
TEST(Deadlock, ControlIgnoringProgressIsCaught) {
  expect_counterexample("Deadlock/ControlIgnoringProgress", 300000,
                        [] { run_program(kIgnoreProgress, gen_cfg{2, 8, true}); },
                        rerun_planted(kIgnoreProgress));
}

}  // namespace
}  // namespace fiber_sim::dl
