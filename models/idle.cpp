// models/idle.cpp - Relacy model of core/include/fiber/detail/idle.hpp (I-I1),
// driven through the real run_queue: a KLT that found no work announces itself,
// re-checks the queue (whose emptiness test is a relaxed size hint), and sleeps;
// producers push and notify.  The store-buffering shape: with release/acquire
// only, both sides can miss each other and the sleeper never wakes (DEADLOCK).
#include "fiber/detail/idle.hpp"
#include "fiber/detail/run_queue.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::kNoDeadline;

struct node {
  seam::var<node*> rq_next{nullptr};
  seam::var<bool> pinned{false};
};
using queue = fiber::detail::run_queue<seam, node>;

// Thread 0 is an idle KLT that must take all N-1 nodes; threads 1..N-1 each
// push one node and notify_one().
template <unsigned N>
struct no_sleep_with_work : rl::test_suite<no_sleep_with_work<N>, N> {
  fiber::detail::relacy_env_t<> env;
  queue q;
  fiber::detail::idle_set<seam> idle;
  node nodes[N];
  void thread(unsigned t) {
    if (t != 0) {
      q.push_back(&nodes[t]);
      idle.notify_one();
      return;
    }
    unsigned got = 0;
    while (got < N - 1) {
      if (q.pop_front()) { ++got; continue; }
      std::uint32_t key = idle.prepare_sleep();
      if (q.pop_front()) {  // the re-check (I-I1)
        idle.cancel_sleep();
        ++got;
        continue;
      }
      idle.sleep(key, kNoDeadline);
    }
  }
};

// Two idle KLTs, one producer that notify_all()s after pushing two nodes:
// nobody sleeps forever while a node is queued.
struct two_sleepers : rl::test_suite<two_sleepers, 3> {
  fiber::detail::relacy_env_t<> env;
  queue q;
  fiber::detail::idle_set<seam> idle;
  node nodes[2];
  seam::atomic<unsigned> taken{0};
  void take() {
    // acq_rel: orders with the other sleeper's take and exit check.
    if (taken.fetch_add(1, fiber::detail::mo::acq_rel) + 1 == 2) idle.notify_all();
  }
  void thread(unsigned t) {
    if (t == 2) {
      q.push_back(&nodes[0]);
      q.push_back(&nodes[1]);
      idle.notify_all();
      return;
    }
    // Each sleeper leaves once both nodes are taken (by anyone); whoever takes
    // the last one wakes the others (as the runtime's shutdown does).
    while (taken.load(fiber::detail::mo::acquire) < 2) {  // pairs with the acq_rel below
      if (q.pop_front()) { take(); continue; }
      std::uint32_t key = idle.prepare_sleep();
      if (q.pop_front()) {
        idle.cancel_sleep();
        take();
        continue;
      }
      if (taken.load(fiber::detail::mo::acquire) >= 2) { idle.cancel_sleep(); break; }
      idle.sleep(key, kNoDeadline);
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
    FIBER_MODEL_CASE(cases, "I-I1", "no KLT sleeps while work is queued (SB shape)",
      {with<no_sleep_with_work<2>>(full()), with<no_sleep_with_work<2>>(random(200000, false)),
       with<no_sleep_with_work<3>>(bound(2, false)), with<no_sleep_with_work<3>>(random(100000)),
       deep<no_sleep_with_work<3>>(bound(3, false)), deep<no_sleep_with_work<3>>(random(1000000, false))});
    FIBER_MODEL_CASE(cases, "I-I1-all", "notify_all: two sleepers, neither sleeps with work queued",
      {with<two_sleepers>(bound(2, false)), with<two_sleepers>(random(100000)),
       deep<two_sleepers>(bound(3, false))});
    return cases;
  };
  return run_model(argc, argv, "idle", build(0));
}
