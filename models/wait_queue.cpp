// models/wait_queue.cpp - Relacy model of core/include/fiber/detail/wait_queue.hpp
// (I-W1..I-W3; I-W1 as data-race freedom of the links) with the production spinlock and parker: a timed waiter races a
// waker that pops and grants it.
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::kNoDeadline;
using fiber::detail::mo;
using spinlock = fiber::detail::basic_spinlock<seam>;
using wnode = fiber::detail::wait_node<seam>;

// Thread 0 queues itself (node on its stack), waits with a deadline, and on
// timeout removes itself under the lock; if a waker already took the node it
// must wait for the grant (I-W2).  Threads 1..N-1 each pop and grant, writing
// a plain payload first that the granted waiter reads (I-W3: grant publishes).
template <unsigned N>
struct grant_vs_remove : rl::test_suite<grant_vs_remove<N>, N> {
  fiber::detail::relacy_env_t<> env;
  spinlock lock;
  fiber::detail::wait_queue<seam> q;
  seam::var<int> payload{0};
  seam::atomic<unsigned> grants{0};
  bool removed = false;  // thread 0 only; read in after()
  void thread(unsigned t) {
    if (t == 0) {
      wnode n(&seam::current_parker());
      {
        fiber::detail::lock_guard<spinlock> g(lock);
        q.push_back(&n);
      }
      if (!n.wait(seam::now_ns() + 10)) {
        fiber::detail::lock_guard<spinlock> g(lock);
        removed = q.remove(&n);
      }
      if (!removed) {
        while (!n.wait(kNoDeadline)) {}
        RL_ASSERT(payload.load() == 7);  // I-W3
      }
      return;  // n leaves the stack here
    }
    wnode* n;
    {
      fiber::detail::lock_guard<spinlock> g(lock);
      n = q.pop_front();
    }
    if (n) {
      payload.store(7);
      grants.fetch_add(1, mo::relaxed);  // relaxed: read in after()
      wnode::grant(n);
    }
  }
  void after() {
    // I-W2: exactly one of "removed by its waiter" and "granted by a waker".
    RL_ASSERT((removed ? 1u : 0u) + grants.load(mo::relaxed) == 1);
    RL_ASSERT(q.empty());
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // 3 threads at bound 2 (spurious wake-ups on): 3.26 M iterations, ~20 s;
  // bound 3 ran > 14 min (exhaustive).
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-W2-W3", "timeout/remove races grant: exactly one wins",
      {with<grant_vs_remove<2>>(full()), with<grant_vs_remove<2>>(random(200000)),
       with<grant_vs_remove<3>>(bound(2)), with<grant_vs_remove<3>>(random(100000)),
       deep<grant_vs_remove<3>>(random(2000000)), exhaustive<grant_vs_remove<3>>(bound(3))});
    return cases;
  };
  return run_model(argc, argv, "wait_queue", build(0));
}
