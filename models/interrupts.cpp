// models/interrupts.cpp - Relacy model of core/include/fiber/detail/interrupts.hpp
// (I-INT1, I-INT3): a fiber about to park in an interruptible call races a
// program signal's handler.  The production basic_interrupts, spinlock and
// parker; the handler and the poller are one thread (natively the eventfd
// write/read pair between them is a system call each, which orders them).
//
// The call entered before the signal (stamp 0).  An interrupt lost between
// the fiber's check and its park, or a wake-up the handler skipped because it
// did not see the fiber registered while the fiber did not see the stamps, is
// a DEADLOCK (the fiber parks for ever).
#include "fiber/detail/interrupts.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::kNoDeadline;
using interrupts = fiber::detail::basic_interrupts<seam, 3>;

// The fiber's side of io_fiber.cpp's wait_intr: link, check, park until
// pending.  `mask`: the fiber's signal mask (bit s-1 blocks s).
bool wait_interrupted(interrupts& in, std::uint64_t mask, bool restartable) {
  interrupts::guard g(&seam::current_parker());
  bool hit = in.enter(g, 0, mask, restartable);
  while (!hit) {
    seam::current_parker().park_until(kNoDeadline);
    hit = in.pending(0, mask, restartable);
  }
  in.leave(g);
  return hit;
}

// The trampoline and the poller: stamp, and wake the registered if asked to.
void signal_arrives(interrupts& in, int sig, bool restart) {
  if (in.arrived(sig, restart)) in.wake_all();
}

// I-INT1, I-INT3: one fiber, one signal without SA_RESTART: the fiber is
// interrupted whatever the interleaving.
struct park_vs_signal : rl::test_suite<park_vs_signal, 2> {
  fiber::detail::relacy_env_t<> env;
  interrupts in;
  void thread(unsigned t) {
    if (t == 0) RL_ASSERT(wait_interrupted(in, 0, true));
    else signal_arrives(in, 1, false);
  }
};

// Two fibers, two signals: signal 1 with SA_RESTART (interrupts only the
// never-restarted call of fiber 0), signal 2 without (interrupts fiber 1,
// whose call is restartable).  Each fiber is interrupted; the wake-ups of the
// other signal are spurious for it.
struct two_fibers : rl::test_suite<two_fibers, 3> {
  fiber::detail::relacy_env_t<> env;
  interrupts in;
  void thread(unsigned t) {
    if (t == 0) {
      RL_ASSERT(wait_interrupted(in, 0, false));
    } else if (t == 1) {
      RL_ASSERT(wait_interrupted(in, 0, true));
    } else {
      signal_arrives(in, 1, true);
      signal_arrives(in, 2, false);
    }
  }
};

}  // namespace

// Measured (2 vCPUs shared, loaded): I-INT1 full search 23.2 M iterations
// in 272 s (--long only); I-INT3 bound 2: 0.77 M, 18 s; random 100 k: 3 s.
int main(int argc, char** argv) {
  using namespace fiber::models;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-INT1", "a signal racing the park is never lost (link, then check; Dekker on the count)",
      {with<park_vs_signal>(bound(3, false)), with<park_vs_signal>(random(200000)),
       deep<park_vs_signal>(full())});
    FIBER_MODEL_CASE(cases, "I-INT3", "two fibers, two signals with and without SA_RESTART: each fiber interrupted",
      {with<two_fibers>(bound(2, false)), with<two_fibers>(random(100000))});
    return cases;
  };
  return run_model(argc, argv, "interrupts", build(0));
}
