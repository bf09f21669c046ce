// models/idle.cpp - Relacy model of core/include/fiber/detail/idle.hpp (I-I1),
// driven through the real run_queue: a KLT that found no work announces itself,
// re-checks the queue (whose emptiness test is a relaxed size hint), and sleeps;
// producers push and notify.  The store-buffering shape: with release/acquire
// only, both sides can miss each other and the sleeper never wakes (DEADLOCK).
// The case I-R6-loop drives the same through the shipped KLT loop's decisions
// (klt_loop.hpp: sched_pick, idle, may_sleep, push), as sched.cpp runs them.
#include "fiber/detail/idle.hpp"
#include "fiber/detail/klt_loop.hpp"
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

// The environment of klt_loop.hpp over one run queue and the idle set (one
// KLT, no timers, no fibers leaving): what sched.cpp's native_env does for
// the idle path, nothing else.
struct loop_env {
  using fiber_type = node;
  static constexpr bool nothrow = true;
  queue& q;
  fiber::detail::idle_set<seam>& idle;
  void process_timers(unsigned) noexcept {}
  node* pick_next(unsigned) noexcept { return q.pop_front(); }
  bool push(node* n, unsigned, fiber::detail::push_kind) noexcept {
    q.push_back(n);
    return true;  // the policy's answer for a push a sleeping KLT could take
  }
  void notify_one() noexcept { idle.notify_one(); }
  bool wake_another() noexcept { return false; }
  bool has_work(unsigned) noexcept { return q.size_hint() != 0; }  // the policy's relaxed hint
  bool has_any_work() noexcept { return q.size_hint() != 0; }
  bool stopping() noexcept { return false; }
  std::uint64_t next_deadline() noexcept { return kNoDeadline; }
  std::uint64_t now() noexcept { return 0; }
  std::uint32_t prepare_sleep(unsigned) noexcept { return idle.prepare_sleep(); }
  void cancel_sleep(unsigned) noexcept { idle.cancel_sleep(); }
  void sleep(unsigned, std::uint32_t key, std::uint64_t until) noexcept { idle.sleep(key, until); }
  void left(unsigned, node*, fiber::detail::klt_action) noexcept {}
  bool commit_park(unsigned, node*) noexcept { return true; }
  void exited(unsigned, node*) noexcept {}
  bool drop_live() noexcept { return false; }
  void wake_shutdown() noexcept {}
  void join_exit(unsigned, node*) noexcept {}
};
using loop = fiber::detail::klt_loop<loop_env>;

// Thread 0 is an idle KLT that must take all N-1 nodes; threads 1..N-1 each
// push one node and notify_one().  Loop = false: the idle protocol written
// out against idle.hpp (I-I1 as the primitive states it).  Loop = true: KLT 0
// runs the shipped loop's decisions (sched_pick, idle, may_sleep) and the
// producers push as the runtime does (klt_loop::push: the policy's push,
// then notify_one).
template <unsigned N, bool Loop = false>
struct no_sleep_with_work : rl::test_suite<no_sleep_with_work<N, Loop>, N> {
  fiber::detail::relacy_env_t<> env;
  queue q;
  fiber::detail::idle_set<seam> idle;
  node nodes[N];
  void thread(unsigned t) {
    if constexpr (Loop) {
      loop_env e{q, idle};
      if (t != 0) return loop::push(e, &nodes[t], ~0u, fiber::detail::push_kind::created);  // ~0u: kNoKlt
      bool idled = false;
      for (unsigned got = 0; got < N - 1;) {
        if (loop::sched_pick(e, 0, idled).run) { ++got; continue; }
        loop::idle(e, 0, idled);
      }
    } else {
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
    FIBER_MODEL_CASE(cases, "I-R6-loop", "the shipped KLT loop (klt_loop.hpp) sleeps only with no work it may take",
      {with<no_sleep_with_work<2, true>>(full()), with<no_sleep_with_work<3, true>>(bound(2, false)),
       with<no_sleep_with_work<3, true>>(random(100000))});
    FIBER_MODEL_CASE(cases, "I-I1-all", "notify_all: two sleepers, neither sleeps with work queued",
      {with<two_sleepers>(bound(2, false)), with<two_sleepers>(random(100000)),
       deep<two_sleepers>(bound(3, false))});
    return cases;
  };
  return run_model(argc, argv, "idle", build(0));
}
