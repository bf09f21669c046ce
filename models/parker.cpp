// models/parker.cpp - Relacy model of core/include/fiber/detail/parker.hpp (I-P1..I-P4).
// The production basic_parker<relacy_seam>; threads are KLTs / OS threads.
#include "fiber/detail/parker.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using parker = seam::parker_type;

// I-P1 (and the token's happens-before): the waker writes a plain variable,
// then unparks; the waiter parks once (no spurious wake-ups in this case, so
// park returns only with the token) and reads the variable.  A lost wake-up
// is a DEADLOCK; an unpark that does not publish is a DATA RACE.
struct wake_publishes : rl::test_suite<wake_publishes, 2> {
  fiber::detail::relacy_env_t<> env;
  seam::var<int> data{0};
  void thread(unsigned t) {
    if (t == 0) {
      env.parker(0).park();
      RL_ASSERT(data.load() == 42);
    } else {
      data.store(42);
      env.parker(0).unpark();
    }
  }
};

// I-P1 with spurious wake-ups and a timeout racing the wake: the waiter loops
// on its own condition (I-P4), first with a deadline.  Never a lost wake-up.
template <unsigned N>
struct wake_vs_timeout : rl::test_suite<wake_vs_timeout<N>, N> {
  fiber::detail::relacy_env_t<> env;
  seam::atomic<unsigned> done{0};
  void thread(unsigned t) {
    if (t == 0) {
      parker& p = env.parker(0);
      const std::uint64_t deadline = seam::now_ns() + 100;
      bool timed = true;
      while (done.load(fiber::detail::mo::acquire) != N - 1) {  // pairs with the wakers' release
        if (!timed) p.park();
        else if (p.park_until(deadline)) timed = false;  // timed out: RL moved our clock
      }
    } else {
      done.fetch_add(1, fiber::detail::mo::release);  // pairs with the waiter's acquire
      env.parker(0).unpark();
    }
  }
};

// I-P2/I-P3: two unparks (from two wakers, or one waker twice) while the owner
// parks repeatedly: tokens do not accumulate, nothing asserts in try_commit,
// the owner always gets out.  The owner counts the wakers that finished.
template <unsigned N>
struct double_unpark : rl::test_suite<double_unpark<N>, N> {
  fiber::detail::relacy_env_t<> env;
  seam::atomic<unsigned> done{0};
  void thread(unsigned t) {
    if (t == 0) {
      while (done.load(fiber::detail::mo::acquire) != N - 1) env.parker(0).park();  // pairs with release below
      // A stale token may remain: the next park returns at once (I-P4).
    } else {
      env.parker(0).unpark();
      done.fetch_add(1, fiber::detail::mo::release);  // pairs with the owner's acquire
      env.parker(0).unpark();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-P1", "unpark racing park is never lost, and publishes",
      {with<wake_publishes>(full()), with<wake_publishes>(random(200000, false))});
    FIBER_MODEL_CASE(cases, "I-P4", "timeout racing unpark; spurious wake-ups tolerated",
      {with<wake_vs_timeout<2>>(full()), with<wake_vs_timeout<2>>(random(200000)),
       with<wake_vs_timeout<3>>(bound(2)), with<wake_vs_timeout<3>>(random(100000)),
       deep<wake_vs_timeout<3>>(bound(3)), deep<wake_vs_timeout<3>>(random(2000000))});
    FIBER_MODEL_CASE(cases, "I-P3", "double unpark is harmless; one token at most",
      {with<double_unpark<2>>(full()), with<double_unpark<3>>(bound(2)),
       with<double_unpark<3>>(random(200000)), deep<double_unpark<3>>(bound(3))});
    return cases;
  };
  return run_model(argc, argv, "parker", build(0));
}
