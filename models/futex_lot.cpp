// models/futex_lot.cpp - Relacy model of core/include/fiber/detail/futex_lot.hpp
// (I-FX1..I-FX3): the production futex lot, parking lot, spinlock, wait queue
// and parker, over a futex word the way libstdc++ uses one (std::future,
// std::atomic::wait): waiters loop `while (word == 0) wait(&word, 0)`, the
// waker stores 1 (release) then wakes.  A lost wake-up is a DEADLOCK (every
// thread parked); a store that does not publish `data` is a DATA RACE.
#include "fiber/detail/futex_lot.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::kNoDeadline;
using fiber::detail::mo;
// One bucket: every key collides, as two words that hash alike do natively.
using lot_t = fiber::detail::basic_futex_lot<seam, 1>;

// I-FX1 (I-FX3): thread 0 publishes data, stores the word and wakes - all
// waiters at once (All) or one wake(1) per waiter (a wake(1) may find nobody
// yet: that waiter must see the word at its re-check).  Every waiter must
// return and see data.  Recheck != 0 (I-FX2): the waits are also bounded by
// re-check periods that race the grants.
template <unsigned N, bool All, unsigned Recheck = 0>
struct wake_waiters : rl::test_suite<wake_waiters<N, All, Recheck>, N> {
  fiber::detail::relacy_env_t<> env;
  lot_t lot;
  seam::atomic<std::uint32_t> word{0};
  seam::var<unsigned> data{0};
  void thread(unsigned t) {
    if (t == 0) {
      data.store(1);
      word.store(1, mo::release);  // release: pairs with the waiters' acquire load
      if (All) {
        lot.wake(&word, lot_t::kAll);
      } else {
        for (unsigned i = 1; i < N; ++i) lot.wake(&word, 1);
      }
      return;
    }
    while (word.load(mo::acquire) == 0) {  // acquire: pairs with the store above
      // relaxed: ordered by the lot's fences (I-FX1).
      const int r = lot.wait(&word, [this] { return word.load(mo::relaxed) != 0; }, kNoDeadline, Recheck);
      RL_ASSERT(r == 0 || r == EAGAIN);  // untimed: never ETIMEDOUT
    }
    RL_ASSERT(data.load() == 1);
  }
};

// I-FX2/I-FX3: a timed waiter and an untimed one race the store and two
// wake(1)s (timeout, cancel, and a grant landing after the timeout).  The
// untimed waiter always returns; the count of woken fibers never exceeds the
// waiters; results are 0, EAGAIN or (the timed one) ETIMEDOUT.
struct timed_waiter : rl::test_suite<timed_waiter, 3> {
  fiber::detail::relacy_env_t<> env;
  lot_t lot;
  seam::atomic<std::uint32_t> word{0};
  void thread(unsigned t) {
    if (t == 0) {
      word.store(1, mo::release);  // release: pairs with the waiters' acquire load
      unsigned woken = lot.wake(&word, 1);
      woken += lot.wake(&word, 1);
      RL_ASSERT(woken <= 2);
      return;
    }
    const std::uint64_t deadline = t == 1 ? seam::now_ns() + 10 : kNoDeadline;
    while (word.load(mo::acquire) == 0) {  // acquire: pairs with the store above
      // relaxed: ordered by the lot's fences (I-FX1).
      const int r = lot.wait(&word, [this] { return word.load(mo::relaxed) != 0; }, deadline, 0);
      RL_ASSERT(r == 0 || r == EAGAIN || (t == 1 && r == ETIMEDOUT));
      if (r == ETIMEDOUT) return;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // Measured on the shared 2-core VM (load ~12): wake_waiters<2, false> full
  // search 8.9 M iterations, 115 s wall (41 s CPU): a long variant; CI runs
  // random searches (about 1.5 s each).
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-FX1", "a store and its wake racing register/re-check/park: never a lost wake-up",
      {with<wake_waiters<2, false>>(random(200000)), with<wake_waiters<3, true>>(random(100000)),
       with<wake_waiters<3, false>>(random(100000)), deep<wake_waiters<2, false>>(full()),
       deep<wake_waiters<3, false>>(bound(1))});
    FIBER_MODEL_CASE(cases, "I-FX2", "re-check periods racing grants: an untimed wait never times out",
      {with<wake_waiters<2, false, 5>>(random(200000)), with<wake_waiters<3, true, 5>>(random(100000))});
    FIBER_MODEL_CASE(cases, "I-FX3", "a timed waiter's timeout and cancel race the wake and the grant",
      {with<timed_waiter>(random(100000)), deep<timed_waiter>(bound(1))});
    return cases;
  };
  return run_model(argc, argv, "futex_lot", build(0));
}
