// models/idle.cpp - Relacy model of core/include/fiber/detail/idle.hpp (I-I1),
// driven through the real run_queue: a KLT that found no work announces itself,
// re-checks the queue (whose emptiness test is a relaxed size hint), and sleeps;
// producers push and notify.  The store-buffering shape: with release/acquire
// only, both sides can miss each other and the sleeper never wakes (DEADLOCK).
// The case I-R6-loop drives the same through the shipped KLT loop's decisions
// (klt_loop.hpp: sched_pick, idle, may_sleep, push), as sched.cpp runs them.
// The cases I-I3* put the I/O poller in (idle_set's Poll, I-I3/I-I4): a
// sleeper that claims the poll role sleeps on a kick word that only kick()
// sets (natively an eventfd edge on epoll's ready list, which stays there
// until an epoll_wait takes it: sticky), so a futex wake cannot reach it.
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
template <class Idle>
struct loop_env {
  using fiber_type = node;
  static constexpr bool nothrow = true;
  queue& q;
  Idle& idle;
  void process_timers(unsigned) noexcept {}
  node* pick_next(unsigned) noexcept { return q.pop_front(); }
  bool push(node* n, unsigned, fiber::detail::push_kind) noexcept {
    q.push_back(n);
    return true;  // the policy's answer for a push a sleeping KLT could take
  }
  void notify_one() noexcept { idle.notify_one(); }
  bool wake_another() noexcept { return false; }
  bool has_work(unsigned) noexcept { return q.size_hint() != 0; }  // the policy's relaxed hint
  bool retiring(unsigned) noexcept { return false; }  // no spare KLTs here (policy.hpp I-R7)
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

// The poller for the model: the kick is a word, set (sticky) by kick() and
// taken by the sleep it ends.  Consuming it after the wait, not at its
// return, lets a later kick be eaten too: more than the native poller
// allows, never less, so a lost wake-up cannot hide behind it.
struct model_poll {
  seam::atomic<std::uint32_t> role_{0};
  seam::atomic<std::uint32_t> kicked_{0};
  bool available() noexcept { return true; }
  seam::atomic<std::uint32_t>& role() noexcept { return role_; }
  void wait(std::uint64_t deadline) noexcept {
    seam::os_wait(kicked_, 0, deadline);
    kicked_.exchange(0, fiber::detail::mo::acq_rel);  // acq_rel: the kicker's work before, the next kick after
  }
  void kick() noexcept {
    kicked_.store(1, fiber::detail::mo::release);  // release: the kicker's work is visible to the woken sleeper
    seam::os_wake(kicked_, 1);
  }
};

// Thread 0 is an idle KLT that must take all N-1 nodes; threads 1..N-1 each
// push one node and notify_one().  Loop = false: the idle protocol written
// out against idle.hpp (I-I1 as the primitive states it).  Loop = true: KLT 0
// runs the shipped loop's decisions (sched_pick, idle, may_sleep) and the
// producers push as the runtime does (klt_loop::push: the policy's push,
// then notify_one).
// Poll = model_poll: thread 0 always claims the poll role, so every futex
// wake finds nobody and only the kick can end its sleep (I-I3).
template <unsigned N, bool Loop = false, class Poll = fiber::detail::no_poll<seam>>
struct no_sleep_with_work : rl::test_suite<no_sleep_with_work<N, Loop, Poll>, N> {
  fiber::detail::relacy_env_t<> env;
  queue q;
  fiber::detail::idle_set<seam, Poll> idle;
  node nodes[N];
  void thread(unsigned t) {
    if constexpr (Loop) {
      using env_t = loop_env<decltype(idle)>;
      using loop = fiber::detail::klt_loop<env_t>;
      env_t e{q, idle};
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
// nobody sleeps forever while a node is queued.  Poll = model_poll: the two
// race for the poll role (I-I4); the loser sleeps on the futex, so a
// notify_one's futex wake may reach it and leave the poll sleeper asleep.
template <class Poll = fiber::detail::no_poll<seam>>
struct two_sleepers : rl::test_suite<two_sleepers<Poll>, 3> {
  fiber::detail::relacy_env_t<> env;
  queue q;
  fiber::detail::idle_set<seam, Poll> idle;
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

// notify_all wakes every sleeper (each recomputes its deadline: timers.cpp),
// the one in the poller included: two sleepers wait for a flag, the producer
// sets it and notify_all()s once.  The futex wake reaches only the sleeper
// on the futex; the kick must reach the other (I-I3, count > woken).
struct all_wake : rl::test_suite<all_wake, 3> {
  fiber::detail::relacy_env_t<> env;
  fiber::detail::idle_set<seam, model_poll> idle;
  seam::atomic<bool> go{false};
  void thread(unsigned t) {
    if (t == 2) {
      go.store(true, fiber::detail::mo::relaxed);  // relaxed: notify's fence orders it (I-I1)
      idle.notify_all();
      return;
    }
    while (!go.load(fiber::detail::mo::relaxed)) {  // relaxed: the idle protocol orders the re-check
      std::uint32_t key = idle.prepare_sleep();
      if (go.load(fiber::detail::mo::relaxed)) { idle.cancel_sleep(); break; }
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
      {with<two_sleepers<>>(bound(2, false)), with<two_sleepers<>>(random(100000)),
       deep<two_sleepers<>>(bound(3, false))});
    using poll_one = no_sleep_with_work<3, false, model_poll>;
    FIBER_MODEL_CASE(cases, "I-I3", "a KLT asleep in the poller is kicked for new work (no lost wake-up)",
      {with<no_sleep_with_work<2, false, model_poll>>(full()), with<poll_one>(bound(2, false)),
       with<poll_one>(random(100000)), deep<poll_one>(bound(3, false))});
    FIBER_MODEL_CASE(cases, "I-I3-loop", "the shipped KLT loop with the poller: it sleeps only with no work",
      {with<no_sleep_with_work<2, true, model_poll>>(full()),
       with<no_sleep_with_work<3, true, model_poll>>(bound(2, false)),
       with<no_sleep_with_work<3, true, model_poll>>(random(100000))});
    FIBER_MODEL_CASE(cases, "I-I4", "two sleepers, one in the poller: neither sleeps with work queued",
      {with<two_sleepers<model_poll>>(bound(2, false)), with<two_sleepers<model_poll>>(random(100000)),
       deep<two_sleepers<model_poll>>(bound(3, false))});
    FIBER_MODEL_CASE(cases, "I-I3-all", "notify_all wakes both sleepers, the one in the poller by a kick",
      {with<all_wake>(bound(2, false)), with<all_wake>(random(100000)), deep<all_wake>(bound(3, false))});
    return cases;
  };
  return run_model(argc, argv, "idle", build(0));
}
