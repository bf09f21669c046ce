// models/live_count.cpp - Relacy model of core/include/fiber/detail/live_count.hpp
// (LC3, LC4): fiber_shutdown waiting for no live fiber while fibers are
// created on one KLT and exit on another, with the production counts, sum,
// exit and wait (over the production parker).
//
//   thread 0  fiber_shutdown's wait (live_wait_none), then the check: every
//             fiber counted so far has finished its body (a plain variable
//             each, written before its exit is counted).  A wait that returns
//             while one is alive reads it unordered: a DATA RACE, or the
//             assertion; a wake-up lost between the two sides is a DEADLOCK.
//   thread 1  KLT 0: runs fiber A (created by an OS thread before the race,
//             counted in the OS threads' count), which creates fiber B on
//             KLT 0 (counted there, then queued for KLT 1), then exits on
//             KLT 0.
//   thread 2  KLT 1: runs B once it is queued; B exits there.
// With kChain, B creates C on KLT 1 before it exits, and C runs and exits on
// KLT 0 after A: the counts of both KLTs move both ways while the sum reads
// them.  A full search is out of reach (the KLTs' spin on the queues:
// `--estimate` gives about 1.7e12 paths); context bounds 4 and 3 run in CI,
// 6 and 5 in the long tier (about 6e6 and 2e6 paths).
#include "fiber/detail/live_count.hpp"
#include "fiber/detail/parker.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::mo;
using count = fiber::detail::live_count<seam>;
using waiter = fiber::detail::live_waiter<seam>;

template <bool kChain>
struct shutdown_waits : rl::test_suite<shutdown_waits<kChain>, 3> {
  fiber::detail::relacy_env_t<> env;
  count klt[2];
  count os;
  waiter w{nullptr};
  seam::atomic<unsigned> queued_b{0}, queued_c{0};  // the run queues: release on push, acquire on pick
  seam::var<int> done_a{0}, done_b{0}, done_c{0};  // each fiber's body, before its exit is counted

  void before() { os.created(); }  // A, created by an OS thread before the race (LC2)

  std::uint64_t sum() {
    return fiber::detail::live_sum<seam>(2, [this](unsigned i) -> const count& { return klt[i]; }, os);
  }
  // klt_loop::finish_exit: count the exit, wake a waiting shutdown (LC4).
  void exit_on(unsigned k) {
    if (fiber::detail::live_exit<seam>(klt[k], w)) fiber::detail::live_wake<seam>(w);
  }

  void thread(unsigned t) {
    if (t == 0) {
      fiber::detail::live_wait_none<seam>(w, env.parker(0), [this] { return sum(); });
      RL_ASSERT(done_a.load() == 1);  // none alive: every fiber ran to its exit
      RL_ASSERT(done_b.load() == 1);
      if (kChain) RL_ASSERT(done_c.load() == 1);
      return;
    }
    if (t == 1) {
      klt[0].created();                 // A creates B on KLT 0 (LC2: before the push)
      queued_b.store(1, mo::release);   // release: the push publishes B
      done_a.store(1);
      exit_on(0);                       // A exits on KLT 0
      if (kChain) {
        for (unsigned i = 0; queued_c.load(mo::acquire) == 0; ++i) seam::spin_hint(i);  // acquire: the pick
        done_c.store(1);
        exit_on(0);                     // C exits on KLT 0
      }
      return;
    }
    for (unsigned i = 0; queued_b.load(mo::acquire) == 0; ++i) seam::spin_hint(i);  // acquire: the pick
    if (kChain) {
      klt[1].created();                 // B creates C on KLT 1
      queued_c.store(1, mo::release);   // release: the push (C runs on KLT 0)
    }
    done_b.store(1);
    exit_on(1);                         // B exits on KLT 1
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "LC3-LC4", "shutdown waits until no fiber is alive, never less, never forever",
      {with<shutdown_waits<false>>(bound(4, false)), with<shutdown_waits<false>>(random(200000)),
       with<shutdown_waits<true>>(bound(3, false)), with<shutdown_waits<true>>(random(200000)),
       deep<shutdown_waits<false>>(bound(6, false)), deep<shutdown_waits<true>>(bound(5, false))});
    return cases;
  };
  return run_model(argc, argv, "live_count", build(0));
}
