// proptests/sim_driver.hpp - the simulator proper (included by sim.hpp; see
// its header for the vocabulary and the checks).  The scheduling decisions
// are the runtime's own: sim is the environment of klt_loop.hpp, as
// core/src/sched.cpp's native_env is, and calls the loop where sched.cpp does
// (switch_out: plan_leave, act_on; the scheduler context: sched_pick, idle,
// after_idle, landed_in_scheduler).
#pragma once

namespace fiber_sim {

using fiber::detail::klt_action;
using fiber::detail::kNoDeadline;
using fiber::detail::push_kind;

using fifo = fiber::detail::fifo_policy<sim_seam, sim_fiber>;
using runnext = fiber::detail::runnext_policy<sim_seam, sim_fiber>;
using migrate = fiber::detail::migrate_policy<sim_seam, sim_fiber>;
using run_queue_t = fiber::detail::run_queue<sim_seam, sim_fiber>;
using local_queue_t = fiber::detail::local_queue<sim_seam, sim_fiber>;
using heap_t = fiber::detail::timer_heap<sim_fiber>;

// Reads fifo_policy's protected queues through pointers to members (legal:
// named through a derived class; no object of this type is ever made).
struct fifo_access : fifo {
  static auto local() { return &fifo_access::local_; }
  static auto global() { return &fifo_access::global_; }
};

// A queue's nodes in order, leaving it as it was (pop all, push back).
inline std::vector<sim_fiber*> contents(run_queue_t& q) {
  std::vector<sim_fiber*> v;
  while (sim_fiber* n = q.pop_locked()) v.push_back(n);
  for (sim_fiber* n : v) q.push_locked(n);
  return v;
}
// A KLT's queue likewise (its owner's pops and pushes: the sim is one thread;
// a pinned node keeps its flag, so it goes back to the pinned part in order).
template <std::size_t kCap>
std::vector<sim_fiber*> contents(fiber::detail::local_queue<sim_seam, sim_fiber, kCap>& q) {
  std::vector<sim_fiber*> v;
  while (sim_fiber* n = q.pop_front()) v.push_back(n);
  for (sim_fiber* n : v) q.push_back(n);
  return v;
}

inline const char* name(fstate s) {
  switch (s) {
    case fstate::runnable: return "runnable";
    case fstate::running: return "running";
    case fstate::sleeping: return "sleeping";
    case fstate::blocked: return "blocked";
    case fstate::done: return "done";
  }
  return "?";
}

// Policy: fifo, runnext or a test's subclass of fifo.  Heap: timer_heap or a
// test's stand-in with the same members.  Loop: klt_loop, or a control's
// subclass of it with one decision planted wrong (planted.hpp).
template <class Policy, class Heap = heap_t, template <class> class Loop = fiber::detail::klt_loop>
class sim {
  static_assert(std::is_base_of<fifo, Policy>::value, "policies are inspected as fifo_policy");

 public:
  static constexpr bool kRunnext = std::is_base_of<runnext, Policy>::value;
  static constexpr int kNowhere = -2, kGlobal = -1;

  sim(const scenario& sc, unsigned checks)
      : sc_(sc), checks_(checks), nklts_(sc.nklts), policy_(sc.nklts), cur_(sc.nklts, nullptr),
        asleep_(sc.nklts, 0), woke_(sc.nklts, 0), to_idle_(sc.nklts, 0), sleep_until_(sc.nklts, kNoDeadline),
        idled_(new bool[sc.nklts]()) {
    pending_assert().clear();
    sim_record& r = sim_trace::get().cur;  // sim_trace.hpp: this run's events
    if (r.nklts < nklts_) r.nklts = nklts_;
  }
  // One step given by the caller (a property that builds its own schedule).
  void step_once(const step& s) {
    ++sim_trace::get().cur.schedule_steps;
    do_step(s);
    audit();
  }
  // Quanta each fiber ended by a tick (its CPU time in a run of ticks only).
  const std::vector<unsigned>& service() const { return service_; }

  void run_schedule() {
    for (step_ = 0; step_ < sc_.steps.size(); ++step_) {
      ++sim_trace::get().cur.schedule_steps;
      do_step(sc_.steps[step_]);
      audit();
    }
  }
  void drain();
  void run_all() { run_schedule(); drain(); }
  // kFairness: allow this many quanta beyond the round-robin bound.
  void set_fairness_slack(unsigned q) { slack_ = q; }
  // FIBER_MIGRATE_SCAN (policy I-R3): the stack scan is on, and fiber i's
  // preemptions find a TLS address iff bit i of holders is set (ids >= 64: never).
  void set_scan(std::uint64_t holders) {
    scan_ = true;
    holders_ = holders;
  }

  // The monitor's hand-off (policy I-R5): KLT k stalls (it takes no more
  // steps: its fiber is blocked in a system call) and the monitor calls
  // evacuate(k).  Afterwards only fibers pinned to k may be left in k's
  // queue (checked unless !strict, so that a control can show the liveness
  // check below catching a missing hand-off by itself).  Returns the fibers
  // that were queued on k unpinned.
  std::vector<unsigned> stall_and_evacuate(unsigned k, bool strict = true);
  // After stall_and_evacuate(k): the other KLTs stay busy for `rounds`
  // rounds (each round, every KLT but k takes a tick: its fiber is preempted
  // and it picks).  Fails unless every fiber of `stranded` ran meanwhile.
  void expect_run_elsewhere(unsigned k, const std::vector<unsigned>& stranded, unsigned rounds);

  // (klt, fiber id) of every pick, in order.
  const std::vector<std::pair<unsigned, unsigned>>& picks() const { return picks_; }
  std::size_t fibers() const { return fibers_.size(); }

 private:
  using loop = Loop<sim>;

  [[noreturn]] void fail(const std::string& what) const {
    std::ostringstream os;
    os << what << " (";
    if (step_ < sc_.steps.size()) os << "at step " << step_ + 1 << " of " << sc_.steps.size();
    else os << "in the drain after " << sc_.steps.size() << " steps";
    os << ", t=" << now_ << ")";
    throw violation(os.str());
  }
  void require(bool ok, unsigned check, const std::string& what) const {
    if (!ok && (checks_ & check)) fail(what);
  }
  void raise_asserts() const {
    if (!pending_assert().empty()) fail(pending_assert());
  }
  static std::string fib(const sim_fiber& f) { return "f" + std::to_string(f.id); }
  static std::string kl(unsigned k) { return "k" + std::to_string(k); }

  void do_step(const step& s) {
    switch (s.o) {
      case op::spawn: {
        unsigned k = s.klt < nklts_ ? s.klt : kNoKlt;
        // kIdle: code runs on a KLT only in its running fiber; a spawn "on"
        // an idle or sleeping KLT is an OS thread's.
        if ((checks_ & kIdle) && k != kNoKlt && cur_[k] == nullptr) k = kNoKlt;
        spawn(s.arg, k);
        break;
      }
      case op::tick: tick(s.klt % nklts_); break;
      case op::run: run_klt(s.klt % nklts_); break;
      case op::clock: advance(now_ + s.arg + 1); break;
    }
  }

  void spawn(unsigned scr, unsigned k) {
    if (fibers_.size() >= kMaxFibers || sc_.scripts.empty()) return;
    fibers_.emplace_back();
    sim_fiber& f = fibers_.back();
    f.id = static_cast<unsigned>(fibers_.size() - 1);
    f.script = static_cast<unsigned>(scr % sc_.scripts.size());
    ++live_;
    loop::push(*this, &f, k, push_kind::created);
  }

  unsigned not_exited() const {  // what the live count must say (I7)
    unsigned n = 0;
    for (const sim_fiber& g : fibers_) n += g.state != fstate::done;
    return n;
  }
  unsigned others_runnable(const sim_fiber& f) const {
    unsigned n = 0;
    for (const sim_fiber& g : fibers_)
      n += &g != &f && (g.state == fstate::runnable || g.state == fstate::running);
    return n;
  }

  // ---- the environment of klt_loop.hpp (sched.cpp's native_env) ----------
  // Public, as native_env's members are: the loop and the controls'
  // subclasses of it (planted.hpp) call them.
 public:
  using fiber_type = sim_fiber;
  static constexpr bool nothrow = false;  // a violation throws out of the loop

  // Expires every timer due by now on KLT k's behalf, woken there (as
  // timers_expire's make_runnable is).  I-T1: nothing early, and in
  // (deadline, sleep order).
  void process_timers(unsigned k) {
    while (sim_fiber* f = heap_.pop_expired(now_)) {
      const std::uint64_t due = f->wake_at;
      require(due <= now_, kTimers,
              "I-T1: " + fib(*f) + " due at t=" + std::to_string(due) + " woke at t=" + std::to_string(now_));
      if (f->state == fstate::running && f == parking_) {
        // Expired before its park committed (only early, so only under a
        // planted heap): the parker's token, as in the runtime (I-P1).
        token_ = true;
        continue;
      }
      if (f->state != fstate::sleeping)
        fail("I-T2: the timer heap returned " + fib(*f) + ", which is " + name(f->state));
      const std::pair<std::uint64_t, std::uint64_t> key{due, f->sleep_order};
      require(key >= last_fired_, kTimers,
              "I-T1: " + fib(*f) + " (due " + std::to_string(due) + ", slept #" +
                  std::to_string(f->sleep_order) + ") woke after a later sleeper (due " +
                  std::to_string(last_fired_.first) + ", slept #" + std::to_string(last_fired_.second) + ")");
      last_fired_ = key;
      loop::push(*this, f, k, push_kind::woken);
    }
  }
  // The policy's pick, and what the simulator checks of it: the fiber is
  // runnable (I-R4), a pinned one stays on its KLT (I-R3), the others waiting
  // count a quantum (I-R1), and at the pick that ends a quantum every sleeper
  // due by now is awake (wake-up lateness: one quantum).
  sim_fiber* pick_next(unsigned k) {
    if (leaving_ && (checks_ & kTimers))
      for (const sim_fiber& g : fibers_)
        if (g.state == fstate::sleeping && g.wake_at <= now_)
          fail("I-T1: " + fib(g) + " due at t=" + std::to_string(g.wake_at) + " is still asleep when " +
               kl(k) + " ends a quantum at t=" + std::to_string(now_));
    sim_fiber* f = policy_.pick_next(k);
    raise_asserts();
    if (!f) return nullptr;
    // Always on: the simulation cannot go on with a fiber in two places.
    if (f->state != fstate::runnable)
      fail("I-R4: pick_next(" + kl(k) + ") returned " + fib(*f) + ", which is " + name(f->state));
    require(f->pinned_to == kNoKlt || f->pinned_to == k, kPinned,
            "I-R3: " + fib(*f) + " preempted on " + kl(f->pinned_to) + " migrated to " + kl(k));
    count_waits(*f);
    return f;
  }
  bool push(sim_fiber* f, unsigned k, push_kind why) {
    f->state = fstate::runnable;
    f->klt = kNoKlt;
    f->waited = 0;
    f->bound = others_runnable(*f);
    f->new_klt = why == push_kind::created ? k : kNoKlt;
    // FIBER_MIGRATE_SCAN (set_scan): a preempted fiber is movable unless its
    // preemptions find a TLS address (core/src/tls_scan.cpp).
    const bool movable = why == push_kind::preempted && scan_ && !(f->id < 64 && (holders_ >> f->id & 1));
    f->pinned_to = why == push_kind::preempted && !policy_.opts().migrate_preempted && !movable ? k : kNoKlt;
    static constexpr sim_event::kind kEvent[] = {sim_event::create, sim_event::yield, sim_event::preempt,
                                                 sim_event::wake};
    sim_trace::get().add(kEvent[static_cast<int>(why)], k, f->id);
    bool notify = false;
    switch (why) {
      case push_kind::created: notify = policy_.on_new(f, k); break;
      case push_kind::yielded: notify = policy_.on_yield(f, k); break;
      case push_kind::preempted: notify = policy_.on_preempted(f, k, movable); break;
      case push_kind::woken: notify = policy_.on_wake(f, k); break;
    }
    raise_asserts();
    return notify;
  }
  // I-R6: idle_set::notify_one, the lowest-numbered sleeper (kIdle only:
  // otherwise no KLT sleeps).
  void notify_one() {
    for (unsigned j = 0; j < nklts_; ++j)
      if (asleep_[j]) return wake_klt(j);
  }
  bool wake_another() const { return policy_.wake_another(); }
  bool has_work(unsigned k) const { return policy_.has_work(k); }
  bool has_any_work() const { return policy_.has_work_hint(); }
  bool retiring(unsigned k) const { return policy_.retiring(k); }  // no spares simulated: false
  bool stopping() const { return false; }  // the simulated runtime never shuts down
  // The idle protocol's announcement has no window of its own here: a push
  // between the check and the sleep cannot happen within one step.
  std::uint32_t prepare_sleep(unsigned) { return 0; }
  // k refused to sleep: has_work must agree with the queues, true only if
  // there is work k may take (it may have come since k's empty pick).
  void cancel_sleep(unsigned k) {
    std::string where;
    if ((checks_ & kIdle) && policy_.has_work(k) && takeable(k, &where) == nullptr)
      fail("I-R6: " + kl(k) + " found no work it may take, but has_work(" + kl(k) +
           ") keeps it awake (it would spin)");
  }
  // Without kIdle a KLT never sleeps: it looks again at its next step.  A
  // sleeping KLT takes no steps until notify_one or its deadline wakes it.
  void sleep(unsigned k, std::uint32_t, std::uint64_t until) {
    if (!(checks_ & kIdle)) return;
    asleep_[k] = 1;
    sleep_until_[k] = until;
    sim_trace::get().add(sim_event::idle_sleep, k);
  }
  std::uint64_t next_deadline() const { return heap_.empty() ? kNoDeadline : heap_.next_deadline(); }
  std::uint64_t now() const { return now_; }
  void left(unsigned, sim_fiber*, klt_action) {}
  // Sequential: only the leaving KLT's own timer expiry (process_timers in
  // plan_leave) comes between the decision to park and the commit; a
  // committed fiber takes the state its action chose (sleeping or blocked).
  bool commit_park(unsigned, sim_fiber* f) {
    parking_ = nullptr;
    if (std::exchange(token_, false)) return false;  // a wake-up came first (I-P1)
    f->state = f->parking_as;
    return true;
  }
  void exited(unsigned, sim_fiber* f) {
    f->state = fstate::done;
    ++f->exits;
  }
  bool drop_live() {
    if (live_ == 0) fail("I7: the live count dropped below zero");
    return --live_ == 0;
  }
  void wake_shutdown() {}
  // The joiners of f resume (woken on k, as the join protocol's unpark
  // makes them runnable there).  Join returns only after the exit (the
  // fiber is done) and after the live count dropped (I7).
  void join_exit(unsigned k, sim_fiber* f) {
    std::vector<sim_fiber*> js;
    js.swap(joiners_[f->id]);
    for (sim_fiber* j : js) {
      if (checks_ & kAccounting) {
        if (f->state != fstate::done)
          fail("join: " + fib(*j) + " resumes from joining " + fib(*f) + ", which is " + name(f->state));
        if (live_ != not_exited())
          fail("I7: " + fib(*j) + " resumes from joining " + fib(*f) + " while the live count is " +
               std::to_string(live_) + " with " + std::to_string(not_exited()) + " fibers not exited");
      }
      loop::push(*this, j, k, push_kind::woken);
    }
  }
 private:


  // ---- the KLTs (sched.cpp's switch_out, run_fibers, klt_main) -----------

  void wake_klt(unsigned j) {
    asleep_[j] = 0;
    woke_[j] = 1;  // its next step continues after the sleep (after_idle)
    sim_trace::get().add(sim_event::idle_wake, j);
  }
  void check_sleepers();

  // Makes f the running fiber of KLT k (sched.cpp: install).
  void install(unsigned k, sim_fiber* f) {
    f->state = fstate::running;
    f->klt = k;
    f->pinned_to = kNoKlt;
    f->new_klt = kNoKlt;
    cur_[k] = f;
    sim_trace::get().add(sim_event::run, k, f->id);
    picks_.emplace_back(k, f->id);
  }
  // k's running fiber leaves asking for `a` (sched.cpp: switch_out).  With a
  // next fiber the switch is direct and the next one acts on the leaver;
  // with none a yield or preemption continues, a park or exit lands in the
  // scheduler context, which acts on it and then looks for work at once.
  void switch_out(unsigned k, klt_action a) {
    sim_fiber* f = cur_[k];
    leaving_ = true;
    const typename loop::leave_plan to = loop::plan_leave(*this, k, a);
    leaving_ = false;
    if (to.stays()) return;
    cur_[k] = nullptr;
    f->klt = kNoKlt;
    if (to.next) {
      install(k, to.next);
      loop::act_on(*this, k, f, a);  // finish_prev: once f is off its stack
      return;
    }
    loop::landed_in_scheduler(*this, k, f, a);
    sched_step(k);
  }
  // One iteration of k's scheduler loop (klt_main): pick, or idle.
  void sched_step(unsigned k) {
    if (woke_[k]) {
      woke_[k] = 0;
      loop::after_idle(*this, k, idled_[k]);
    }
    if (std::exchange(to_idle_[k], 0)) return loop::idle(*this, k, idled_[k]);
    const typename loop::sched_choice c = loop::sched_pick(*this, k, idled_[k]);
    if (c.run) return install(k, c.run);
    check_idle(k);
    if (c.stop) fail("the simulated runtime stopped");
    // kIdle: the sleep is the KLT's next step, so pushes by other KLTs and
    // OS threads can land between its empty pick and its idle protocol (the
    // window the has_work check in may_sleep closes).
    if (checks_ & kIdle) to_idle_[k] = 1;
    else loop::idle(*this, k, idled_[k]);
  }
  void count_waits(const sim_fiber& picked);
  void tick(unsigned k) {
    if (asleep_[k]) return;  // a sleeping KLT takes no steps (kIdle)
    sim_fiber* f = cur_[k];
    if (!f) return sched_step(k);
    if (service_.size() <= f->id) service_.resize(f->id + 1, 0);
    ++service_[f->id];
    switch_out(k, klt_action::preempted);
  }
  void run_klt(unsigned k) {
    if (asleep_[k]) return;  // kIdle
    if (sim_fiber* f = cur_[k]) exec(*f, k); else sched_step(k);
  }
  void leave(sim_fiber& f, unsigned k, fstate s, unsigned long long obj = 0) {
    sim_trace::get().add(s == fstate::blocked ? sim_event::park
                         : s == fstate::sleeping ? sim_event::sleep : sim_event::exit, k, f.id, obj);
    f.parking_as = s;
    if (s != fstate::done) parking_ = &f;
    switch_out(k, s == fstate::done ? klt_action::exit : klt_action::park);
  }
  void exec(sim_fiber& f, unsigned k);
  void advance(std::uint64_t t);
  std::vector<int> locate();
  void audit();
  void check_idle(unsigned k);
  const sim_fiber* takeable(unsigned k, std::string* where);
  bool wake_one_blocked();

  const scenario& sc_;
  unsigned checks_;
  unsigned nklts_;
  Policy policy_;
  Heap heap_;
  std::deque<sim_fiber> fibers_;  // stable addresses
  std::vector<sim_fiber*> cur_;   // running fiber per KLT
  std::vector<char> asleep_;      // kIdle: sleeping in its idle sleep (klt_loop::idle)
  std::vector<char> woke_;        // woken from its idle sleep, not yet stepped since
  std::vector<char> to_idle_;     // found nothing to run; its idle protocol is its next step
  std::vector<std::uint64_t> sleep_until_;  // the deadline an asleep KLT wakes at by itself
  std::unique_ptr<bool[]> idled_;  // klt_main's idled: found no work since it last ran a fiber
  bool leaving_ = false;           // inside switch_out's plan_leave (pick_next's lateness check)
  sim_fiber* parking_ = nullptr;   // decided to park, not yet committed
  bool token_ = false;             // its wake-up came first (the parker's token, I-P1)
  unsigned live_ = 0;              // the runtime's live count (I7): created, not yet exited
  std::vector<unsigned> service_;  // per fiber id: quanta ended by ticks
  std::deque<sim_fiber*> waiters_[kNoObj];
  std::vector<sim_fiber*> joiners_[kMaxFibers];  // per fiber id: who joins it
  static constexpr unsigned long long kJoinObj = 0x100;  // a join's park object: kJoinObj + target id
  unsigned permits_[kNoObj] = {};
  std::uint64_t now_ = 0;
  std::uint64_t sleep_seq_ = 0;
  std::pair<std::uint64_t, std::uint64_t> last_fired_{0, 0};
  std::size_t step_ = 0;
  unsigned slack_ = 0;
  bool scan_ = false;
  std::uint64_t holders_ = 0;
  std::vector<std::pair<unsigned, unsigned>> picks_;
};

// I-R1 (one KLT): each pick is a quantum for every fiber still waiting.
template <class P, class H, template <class> class L>
void sim<P, H, L>::count_waits(const sim_fiber& picked) {
  if (!(checks_ & kFairness)) return;
  for (sim_fiber& g : fibers_) {
    if (&g == &picked || g.state != fstate::runnable) continue;
    if (++g.waited > g.bound + slack_)
      fail("I-R1: " + fib(g) + " waited " + std::to_string(g.waited) + " quanta, but only " +
           std::to_string(g.bound) + " fibers were runnable when it became runnable (slack " +
           std::to_string(slack_) + "); " + fib(picked) + " ran instead");
  }
}

template <class P, class H, template <class> class L>
void sim<P, H, L>::exec(sim_fiber& f, unsigned k) {
  const script& s = sc_.scripts[f.script];
  if (f.pc >= s.size()) return leave(f, k, fstate::done);
  const action a = s[f.pc];
  const unsigned o = a.arg % kNoObj;
  if (a.a == act::cpu) {
    if (++f.cpu_done >= a.arg + 1u) f.cpu_done = 0, ++f.pc;
    return;
  }
  ++f.pc;
  switch (a.a) {
    case act::cpu: break;
    case act::yield: switch_out(k, klt_action::yield); break;
    case act::sleep:
      f.sleep_order = sleep_seq_++;
      f.wake_at = now_ + a.arg + 1;  // the sim's own copy: the heap's fields are under test
      heap_.push(&f, f.wake_at);
      leave(f, k, fstate::sleeping);
      break;
    case act::spawn: spawn(a.arg, k); break;
    case act::wait:
      if (permits_[o] != 0) { --permits_[o]; break; }
      waiters_[o].push_back(&f);
      leave(f, k, fstate::blocked, o);
      break;
    case act::join: {
      if (f.id == 0) break;
      sim_fiber& t = fibers_[f.id - 1 - a.arg % f.id];
      if (t.state == fstate::done) break;
      joiners_[t.id].push_back(&f);
      leave(f, k, fstate::blocked, kJoinObj + t.id);
      break;
    }
    case act::wake:
      if (waiters_[o].empty()) { ++permits_[o]; break; }
      sim_fiber* w = waiters_[o].front();
      waiters_[o].pop_front();
      loop::push(*this, w, k, push_kind::woken);
      break;
  }
}

// The clock moves: an idle KLT whose sleep reaches its deadline wakes (the
// futex wait times out).  Timers expire at the KLTs' next scheduling
// decisions (process_timers), not here.
template <class P, class H, template <class> class L>
void sim<P, H, L>::advance(std::uint64_t t) {
  now_ = t;
  sim_trace::get().add(sim_event::clock, kNoKlt, 0, t);
  for (unsigned k = 0; k < nklts_; ++k)
    if (asleep_[k] && sleep_until_[k] <= now_) wake_klt(k);
}

// Where each fiber is queued: kGlobal, a KLT index, or kNowhere.  Checks
// I-Q4 (exact sizes) and I-R4 (at most one queue, only runnable fibers).
template <class P, class H, template <class> class L>
std::vector<int> sim<P, H, L>::locate() {
  std::vector<int> where(fibers_.size(), kNowhere);
  fifo& base = policy_;
  auto visit = [&](auto& q, int tag) {
    const std::vector<sim_fiber*> v = contents(q);
    require(q.size_hint() == v.size(), kAccounting,
            "I-Q4: size_hint " + std::to_string(q.size_hint()) + " but " + std::to_string(v.size()) +
                " queued on " + (tag == kGlobal ? "global" : "k" + std::to_string(tag)));
    for (sim_fiber* f : v) {
      if (where[f->id] != kNowhere) fail("I-R4: " + fib(*f) + " is queued twice");
      where[f->id] = tag;
      if (f->state != fstate::runnable) fail("I-R4: " + fib(*f) + " is queued but " + name(f->state));
    }
  };
  visit(base.*fifo_access::global(), kGlobal);
  for (unsigned k = 0; k < nklts_; ++k) visit((base.*fifo_access::local())[k], static_cast<int>(k));
  return where;
}

// After every step: each runnable fiber is in exactly one place (I-R4), and
// a pinned one is in its own KLT's queue (I-R3).
template <class P, class H, template <class> class L>
void sim<P, H, L>::audit() {
  const std::vector<int> where = locate();
  std::vector<unsigned> slot(nklts_, 0);
  for (const sim_fiber& f : fibers_) {
    if (f.state != fstate::runnable) continue;
    const int w = where[f.id];
    const bool in_slot = kRunnext && w == kNowhere && f.new_klt != kNoKlt && ++slot[f.new_klt] == 1;
    require(w != kNowhere || in_slot, kAccounting, "I-R4: runnable " + fib(f) + " is in no queue (lost)");
    if (f.pinned_to != kNoKlt)
      require(w == static_cast<int>(f.pinned_to), kPinned,
              "I-R3: " + fib(f) + " preempted on k" + std::to_string(f.pinned_to) + " is queued on " +
                  (w == kGlobal ? std::string("global") : "k" + std::to_string(w)));
  }
  if ((checks_ & kAccounting) && live_ != not_exited())
    fail("I7: the live count is " + std::to_string(live_) + " but " + std::to_string(not_exited()) +
         " fibers have not exited");
  if (checks_ & kIdle) check_sleepers();
}

// I-R6 after every step: no KLT sleeps while work it could take exists,
// except the one fiber an awake KLT runs next from its own queue, unless an
// awake KLT is looking for work.
template <class P, class H, template <class> class L>
void sim<P, H, L>::check_sleepers() {
  const std::vector<int> where = locate();
  std::vector<unsigned> queued(nklts_, 0), unpinned(nklts_, 0);
  unsigned global = 0;
  for (const sim_fiber& f : fibers_) {
    if (f.state != fstate::runnable) continue;
    const int w = where[f.id];
    if (w == kGlobal) ++global;
    if (w >= 0) ++queued[w], unpinned[w] += f.pinned_to == kNoKlt;
    if (w == kNowhere && f.new_klt != kNoKlt) ++queued[f.new_klt];  // a runnext slot
  }
  // An awake KLT with no fiber is looking for work: it takes what it finds
  // and then wakes another sleeper if work remains (wake_another), so
  // sleepers are fine meanwhile (Go's "a spinning M exists").
  for (unsigned i = 0; i < nklts_; ++i)
    if (!asleep_[i] && cur_[i] == nullptr) return;
  for (unsigned j = 0; j < nklts_; ++j) {
    if (!asleep_[j]) continue;
    std::string why;
    if (global) why = "the global queue holds " + std::to_string(global);
    if (queued[j]) why = "its own queue holds " + std::to_string(queued[j]);
    for (unsigned i = 0; i < nklts_ && why.empty(); ++i)
      if (i != j && unpinned[i] != 0 && (asleep_[i] || queued[i] > 1))
        why = "k" + std::to_string(i) + (asleep_[i] ? " (asleep)" : " (awake)") + " has " +
              std::to_string(unpinned[i]) + " unpinned of " + std::to_string(queued[i]) + " queued";
    if (!why.empty()) fail("I-R6: k" + std::to_string(j) + " sleeps while " + why);
  }
}

// pick_next(k) returned nullptr: nothing k may take may exist (work conservation).
template <class P, class H, template <class> class L>
void sim<P, H, L>::check_idle(unsigned k) {
  if (!(checks_ & kAccounting)) return;
  std::string where;
  if (const sim_fiber* f = takeable(k, &where))
    fail("I-R2: k" + std::to_string(k) + " found no work, but " + fib(*f) + " is runnable on " + where);
}

// A runnable fiber KLT k may take (computed from the queues' contents, not
// from the policy's hints), and where it is; nullptr if none.
template <class P, class H, template <class> class L>
const sim_fiber* sim<P, H, L>::takeable(unsigned k, std::string* where) {
  const std::vector<int> at = locate();
  const int kk = static_cast<int>(k);
  for (const sim_fiber& f : fibers_) {
    if (f.state != fstate::runnable) continue;
    const int w = at[f.id];
    if (w == kGlobal || w == kk || (w >= 0 && f.pinned_to == kNoKlt) || (w == kNowhere && f.new_klt == k)) {
      *where = w == kGlobal ? std::string("global") : w == kNowhere ? std::string("a runnext slot") : kl(w);
      return &f;
    }
  }
  return nullptr;
}

template <class P, class H, template <class> class L>
std::vector<unsigned> sim<P, H, L>::stall_and_evacuate(unsigned k, bool strict) {
  fifo& base = policy_;
  local_queue_t& q = (base.*fifo_access::local())[k];
  std::vector<unsigned> stranded;
  for (sim_fiber* f : contents(q))
    if (!f->pinned.load()) stranded.push_back(f->id);
  const std::size_t moved = policy_.evacuate(k);
  raise_asserts();
  audit();
  if (!strict) return stranded;
  require(moved == stranded.size(), kAccounting,
          "I-R5: evacuate(k" + std::to_string(k) + ") moved " + std::to_string(moved) + " of " +
              std::to_string(stranded.size()) + " unpinned fibers");
  for (sim_fiber* f : contents(q))
    require(f->pinned.load() && f->pinned_to == k, kAccounting,
            "I-R5: " + fib(*f) + " is still queued on stalled k" + std::to_string(k) + " unpinned");
  return stranded;
}

template <class P, class H, template <class> class L>
void sim<P, H, L>::expect_run_elsewhere(unsigned k, const std::vector<unsigned>& stranded, unsigned rounds) {
  const std::size_t mark = picks_.size();
  for (unsigned r = 0; r < rounds; ++r)
    for (unsigned j = 0; j < nklts_; ++j) {
      if (j == k) continue;
      tick(j);
      audit();
    }
  std::vector<bool> ran(fibers_.size(), false);
  for (std::size_t i = mark; i < picks_.size(); ++i) ran[picks_[i].second] = true;
  for (unsigned id : stranded)
    require(ran[id], kAccounting,
            "I-R5: f" + std::to_string(id) + ", queued behind stalled k" + std::to_string(k) +
                ", did not run in " + std::to_string(rounds) + " rounds of the other KLTs");
}

template <class P, class H, template <class> class L>
bool sim<P, H, L>::wake_one_blocked() {
  for (auto& q : waiters_) {
    if (q.empty()) continue;
    sim_fiber* w = q.front();
    q.pop_front();
    loop::push(*this, w, kNoKlt, push_kind::woken);  // an OS thread posts the semaphore
    return true;
  }
  return false;
}

// Runs every KLT round robin until all fibers exit; then each exited once.
template <class P, class H, template <class> class L>
void sim<P, H, L>::drain() {
  step_ = sc_.steps.size();
  for (unsigned round = 0; round < 100000; ++round) {
    bool busy = false;
    for (unsigned k = 0; k < nklts_; ++k) {
      busy |= cur_[k] != nullptr;
      ++sim_trace::get().cur.drain_steps;
      run_klt(k);
      busy |= cur_[k] != nullptr;
      audit();
    }
    // Work queued (a sleeper expired by the last steps, a woken waiter): the
    // KLTs go on.
    for (const sim_fiber& f : fibers_) busy |= f.state == fstate::runnable;
    if (busy) continue;
    if (!heap_.empty()) advance(std::max(now_, heap_.next_deadline()));
    else if (!wake_one_blocked()) break;
    audit();
  }
  for (const sim_fiber& f : fibers_)
    require(f.state == fstate::done && f.exits == 1, kAccounting,
            "I-Q1: " + fib(f) + " never ran to exit: it is " + name(f.state) + " after the drain");
}

}  // namespace fiber_sim
