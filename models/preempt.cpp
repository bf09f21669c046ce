// models/preempt.cpp - Relacy model of core/include/fiber/detail/preempt_gate.hpp
// (I-G1..I-G3): the preempt count and the preempt-pending flag of a fiber,
// against the tick handler that interrupts the fiber's own thread and the
// fiber's voluntary switches.
//
// How an asynchronous signal is represented.  Relacy threads are concurrent,
// but a tick handler is not a second thread: it interrupts the fiber between
// two instructions, runs to completion, and the fiber resumes (or, when the
// handler preempts, the fiber's thread runs the switch the handler redirected
// it into).  So the model has two Relacy threads:
//   thread 0  the KLT running fiber F: F's code, and the handler run inline
//             at every interrupt point of thread 0 (relacy_irq_point(): before
//             each seam atomic/var operation, including those inside the
//             production gate and run queue);
//   thread 1  the kernel's timer: it raises the signal (a pending bit) Ticks
//             times; standard signals coalesce, so a tick raised while one is
//             still pending is lost, as on Linux.
// Relacy's scheduler then explores every placement of every tick among the
// interrupt points of F - full search for 2 threads covers all of them.
//
// What is production code and what is harness: the gate (disable, enable,
// enter_switch, leave_switch, tick_refused) and the run queue are the
// production headers.  The handler's decision is preempt.cpp's on_tick
// reduced to the count check (the PC and stack checks only defer, which
// tick_refused already does); the switch is switch_out reduced to its queue
// traffic: F is handed to the run queue and taken back (the only runnable
// fiber), inside the gate's switch bracket, as sched.cpp does.
//
// Properties:
//   I-G1 F is never handed to the run queue while it is already queued (a
//        preemption inside a switch would enqueue it twice).
//   I-G2 When F's outermost section ends, every tick refused in it (outside a
//        switch) has been honoured by a switch.
//   I-G3 A switch forced by enable() is owed to a tick refused since the last
//        forced switch (a stale pending flag would yield for nothing).
#include "fiber/detail/preempt_gate.hpp"
#include "fiber/detail/run_queue.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using gate_t = fiber::detail::basic_preempt_gate<seam>;

struct node {
  seam::var<node*> rq_next{nullptr};
  seam::var<bool> pinned{false};
};
using queue = fiber::detail::run_queue<seam, node>;

template <unsigned Ticks>
struct gate_vs_ticks : rl::test_suite<gate_vs_ticks<Ticks>, 2> {
  fiber::detail::relacy_env_t<> env;
  gate_t gate;
  queue rq;
  node self;
  seam::var<int> work{0};        // F's own code between runtime calls
  rl::atomic<int> signal{0};     // the kernel's pending bit for the tick signal
  // Harness bookkeeping, touched only by thread 0 (plain: no interrupt points).
  bool queued = false;
  bool switching = false;        // inside the gate's switch bracket
  bool owed = false;             // a tick refused outside a switch, not yet honoured
  unsigned refused = 0;          // refusals since the last forced switch (I-G3)
  unsigned depth = 0;            // F's own count of open sections
  unsigned switches = 0;

  // ---- the handler (runs on thread 0 at an interrupt point) ----
  static bool on_tick(void* ctx) {
    auto* t = static_cast<gate_vs_ticks*>(ctx);
    if (t->signal.load(rl::mo_seq_cst, RL_INFO) == 0) return false;  // nothing pending
    t->signal.exchange(0, rl::mo_seq_cst, RL_INFO);                     // delivered
    if (t->gate.tick_refused()) {                              // preempt.cpp on_tick
      ++t->refused;
      if (!t->switching) t->owed = true;
      return false;
    }
    return true;  // redirect into the trampoline: switch_out(preempted)
  }
  static void trampoline(void* ctx) { static_cast<gate_vs_ticks*>(ctx)->do_switch(); }

  // ---- switch_out, reduced to its queue traffic ----
  void do_switch() {
    gate.enter_switch();
    const bool outer = !switching;
    switching = true;
    owed = false;  // any switch honours the ticks refused before it
    RL_ASSERT(!queued && "I-G1: fiber handed to the run queue twice (preempted inside a switch)");
    queued = true;
    rq.push_back(&self);
    node* n = rq.pop_front();
    RL_ASSERT(n == &self);
    queued = false;
    ++switches;
    gate.leave_switch();
    if (outer) switching = false;
  }

  void section_begin() {
    gate.disable();
    ++depth;
  }
  void section_end() {
    --depth;
    if (gate.enable()) {  // a refused tick is taken now (I-G2)
      RL_ASSERT(refused > 0 && "I-G3: enable() forced a switch no tick asked for");
      refused = 0;
      do_switch();
    }
    if (depth == 0) RL_ASSERT(!owed && "I-G2: a refused tick was never honoured");
  }
  void user_code() { work.store(work.load() + 1); }

  void thread(unsigned t) {
    if (t == 1) {  // the timer
      for (unsigned i = 0; i < Ticks; ++i) signal.store(1, rl::mo_seq_cst, RL_INFO);
      return;
    }
    fiber::detail::relacy_set_irq(0, &on_tick, &trampoline, this);
    user_code();
    // A runtime entry point (a section), e.g. fiber_mutex_lock's fast path.
    section_begin();
    user_code();
    section_end();
    // fiber_yield(): a voluntary switch, racing a pending flag.
    do_switch();
    user_code();
    // fiber_preempt_disable(); nested runtime call; fiber_yield(); enable.
    section_begin();
    section_begin();
    user_code();
    section_end();
    do_switch();
    section_end();
    user_code();
    fiber::detail::relacy_set_irq(0, nullptr, nullptr, nullptr);
  }
  void after() {
    RL_ASSERT(!queued && rq.pop_front() == nullptr);
    RL_ASSERT(!gate.in_section());
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // Two threads: full search is exhaustive over tick placements.  There are no
  // blocking waits here, so spurious wake-ups change nothing; the random
  // search runs with them on like every other model's.
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-G1-G3", "preempt-pending vs voluntary yield: never queued twice, ticks honoured",
      {with<gate_vs_ticks<2>>(full()), with<gate_vs_ticks<2>>(random(100000)),
       with<gate_vs_ticks<3>>(bound(3)), deep<gate_vs_ticks<3>>(full()),
       deep<gate_vs_ticks<4>>(random(2000000))});
    return cases;
  };
  return run_model(argc, argv, "preempt", build(0));
}
