// models/spinlock.cpp - Relacy model of core/include/fiber/detail/spinlock.hpp (I-S1).
// Mutual exclusion is checked through a plain rl::var: two holders at once, or
// a critical section not ordered before the next, is a DATA RACE.
#include "fiber/detail/spinlock.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using spinlock = fiber::detail::basic_spinlock<seam>;

// N threads, each K critical sections incrementing a plain counter.
template <unsigned N, unsigned K>
struct mutual_exclusion : rl::test_suite<mutual_exclusion<N, K>, N> {
  fiber::detail::relacy_env_t<> env;
  spinlock lock;
  seam::var<unsigned> counter{0};
  void thread(unsigned) {
    for (unsigned i = 0; i < K; ++i) {
      {
        fiber::detail::lock_guard<spinlock> g(lock);
        RL_ASSERT(seam::preempt_depth() == 1);  // I-S1: never preempted while holding it
        counter.store(counter.load() + 1);
      }
      RL_ASSERT(seam::preempt_depth() == 0);
    }
  }
  void after() { RL_ASSERT(counter.load() == N * K); }
};

// try_lock never admits a second holder and leaves the lock free when it fails.
template <unsigned N>
struct try_lock_excl : rl::test_suite<try_lock_excl<N>, N> {
  fiber::detail::relacy_env_t<> env;
  spinlock lock;
  seam::var<unsigned> counter{0};
  seam::atomic<unsigned> wins{0};
  void thread(unsigned) {
    if (lock.try_lock()) {
      RL_ASSERT(seam::preempt_depth() == 1);  // I-S1
      counter.store(counter.load() + 1);
      wins.fetch_add(1, fiber::detail::mo::relaxed);  // relaxed: read after join
      lock.unlock();
    } else {
      RL_ASSERT(seam::preempt_depth() == 0);  // a failed try_lock re-enabled preemption
      fiber::detail::lock_guard<spinlock> g(lock);
      counter.store(counter.load() + 1);
    }
  }
  void after() {
    RL_ASSERT(counter.load() == N);
    RL_ASSERT(wins.load(fiber::detail::mo::relaxed) >= 1);  // someone's try_lock won
    RL_ASSERT(!lock.is_locked());
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-S1", "mutual exclusion (plain var); preemption off while held",
      {with<mutual_exclusion<2, 2>>(full()), with<mutual_exclusion<3, 1>>(bound(2)),
       with<mutual_exclusion<4, 1>>(bound(2)), with<mutual_exclusion<3, 2>>(random(200000)),
       deep<mutual_exclusion<3, 1>>(bound(3)), deep<mutual_exclusion<4, 1>>(bound(3)),
       deep<mutual_exclusion<4, 2>>(random(2000000))});
    FIBER_MODEL_CASE(cases, "I-S1-try", "try_lock: one holder; a failure leaves it free",
      {with<try_lock_excl<2>>(full()), with<try_lock_excl<3>>(bound(2)),
       with<try_lock_excl<3>>(random(100000))});
    return cases;
  };
  return run_model(argc, argv, "spinlock", build(0));
}
