// core/tests/sync_test.cpp - the C API of mutex and condition variable
// (fiber.h), run over OS threads, fibers, and both at once (sync_harness.hpp).
//
// Negative controls (DISABLED_ by default; run with
// --gtest_also_run_disabled_tests --gtest_filter='*NegativeControl*'): the
// mutual-exclusion and lost-wake-up bodies below are templates over the lock /
// condvar, and the controls run the same bodies over a planted bug (a
// check-then-set "mutex"; a condvar wait that releases the mutex before it
// queues itself).  Both must FAIL; see the report in each control.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "fiber/detail/condvar.hpp"
#include "fiber/detail/mutex.hpp"
#include "fiber/fiber.h"
#include "sync_harness.hpp"

namespace {

using namespace fiber_test;
using mutex_impl = fiber::detail::basic_mutex<fiber::detail::seam>;

// --- lock adaptors for the templated bodies ---------------------------------
struct c_mutex {
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  void lock() { ASSERT_EQ(fiber_mutex_lock(&m), 0); }
  void unlock() { ASSERT_EQ(fiber_mutex_unlock(&m), 0); }
};

// Planted bug: test, then set, not atomically (two lockers both see "free").
struct broken_mutex {
  std::atomic<int> held{0};
  void lock() {
    while (held.load(std::memory_order_acquire) != 0) yield_now();  // acquire: pairs with unlock
    yield_now();                                                     // widen the window
    held.store(1, std::memory_order_relaxed);                        // relaxed: the bug is the race
  }
  void unlock() { held.store(0, std::memory_order_release); }  // release: pairs with lock's load
};

// Mutual exclusion (I-M1, I-M5): a non-atomic read-modify-write under the
// lock, with a yield inside the critical section now and then so that
// preemption and migration land there, plus an occupancy check.
template <class Lock>
void mutual_exclusion_body(exec e, int workers, int iters) {
  Lock lock;
  long counter = 0;  // guarded by lock
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  {
    group g(e);
    for (int w = 0; w < workers; ++w) {
      g.spawn([&] {
        for (int i = 0; i < iters; ++i) {
          lock.lock();
          // relaxed: a counter of violations, read after join
          if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlaps.fetch_add(1, std::memory_order_relaxed);
          const long v = counter;
          if (i % 32 == 0) yield_now();
          counter = v + 1;
          inside.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see above
          lock.unlock();
        }
      });
    }
  }
  EXPECT_EQ(overlaps.load(), 0) << "two parties inside the critical section";
  EXPECT_EQ(counter, static_cast<long>(workers) * iters) << "lost updates";
}

using MutexTest = SyncTest;

TEST_P(MutexTest, MutualExclusionCounter) { mutual_exclusion_body<c_mutex>(kind(), workers(), 20000); }

TEST(MutexNegativeControl, DISABLED_BrokenMutexLosesUpdates) {
  // Expected: FAILS (lost updates and overlaps) - proves the body can fail.
  mutual_exclusion_body<broken_mutex>(exec::os_thread, 4, 20000);
}

TEST_P(MutexTest, StaticInitializerUnderContention) {
  static fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;  // never passed to fiber_mutex_init
  long counter = 0;
  {
    group g(kind());
    for (int w = 0; w < workers(); ++w)
      g.spawn([&] {
        for (int i = 0; i < 5000; ++i) {
          ASSERT_EQ(fiber_mutex_lock(&m), 0);
          ++counter;
          ASSERT_EQ(fiber_mutex_unlock(&m), 0);
        }
      });
  }
  EXPECT_EQ(counter, 5000L * workers());
  EXPECT_EQ(fiber_mutex_destroy(&m), 0);
}

// The contract's error codes, from a worker of the parameter's kind.
TEST_P(MutexTest, ErrorCodes) {
  EXPECT_EQ(fiber_mutex_init(nullptr, nullptr), EINVAL);
  fiber_mutex_t m;
  int attr = 0;
  EXPECT_EQ(fiber_mutex_init(&m, &attr), EINVAL);
  ASSERT_EQ(fiber_mutex_init(&m, nullptr), 0);
  EXPECT_EQ(fiber_mutex_lock(nullptr), EINVAL);
  EXPECT_EQ(fiber_mutex_trylock(nullptr), EINVAL);
  EXPECT_EQ(fiber_mutex_unlock(nullptr), EINVAL);
  EXPECT_EQ(fiber_mutex_destroy(nullptr), EINVAL);
  std::atomic<int> step{0};
  group g(kind());
  g.spawn([&] {
    EXPECT_EQ(fiber_mutex_unlock(&m), EPERM);  // unlocked: nobody owns it
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    EXPECT_EQ(fiber_mutex_lock(&m), EDEADLK);   // relock by the owner
    EXPECT_EQ(fiber_mutex_trylock(&m), EBUSY);  // also for the owner
    step.store(1, std::memory_order_release);   // release: pairs with the checker's acquire
    ASSERT_TRUE(eventually([&] { return step.load(std::memory_order_acquire) == 2; }));  // acquire: pairs with the checker
    EXPECT_EQ(fiber_mutex_unlock(&m), 0);
  });
  g.spawn([&] {
    ASSERT_TRUE(eventually([&] { return step.load(std::memory_order_acquire) == 1; }));  // acquire: pairs with the owner
    EXPECT_EQ(fiber_mutex_trylock(&m), EBUSY);
    EXPECT_EQ(fiber_mutex_unlock(&m), EPERM);    // not the owner
    EXPECT_EQ(fiber_mutex_destroy(&m), EBUSY);   // locked
    step.store(2, std::memory_order_release);    // release: pairs with the owner's acquire
  });
  g.join();
  EXPECT_EQ(fiber_mutex_destroy(&m), 0);
}

// I-M3 (a): with the owner not re-locking, queued waiters are served in
// arrival order (each unlock wakes the head, which finds the mutex free).
TEST_P(MutexTest, WaitersServedInArrivalOrder) {
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  auto* impl = reinterpret_cast<mutex_impl*>(m.opaque_);
  std::vector<int> order;  // guarded by m
  group g(kind());
  std::atomic<int> blocker_ready{0};
  std::atomic<int> release{0};
  g.spawn([&] {  // the owner
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    blocker_ready.store(1, std::memory_order_release);  // release: pairs with the acquire below
    ASSERT_TRUE(eventually([&] { return release.load(std::memory_order_acquire) == 1; }));  // pairs with the store below
    ASSERT_EQ(fiber_mutex_unlock(&m), 0);
  });
  ASSERT_TRUE(eventually([&] { return blocker_ready.load(std::memory_order_acquire) == 1; }));  // pairs with the owner
  std::atomic<int> arrived{0};
  for (int w = 0; w < 3; ++w) {
    g.spawn([&, w] {
      arrived.store(w + 1, std::memory_order_release);  // release: pairs with the spawner's acquire
      ASSERT_EQ(fiber_mutex_lock(&m), 0);
      order.push_back(w);
      ASSERT_EQ(fiber_mutex_unlock(&m), 0);
    });
    // About to lock, and (after the first) the queue is non-empty; a pause
    // lets it finish queueing (timing: a loaded machine can exceed it).
    ASSERT_TRUE(eventually([&] { return arrived.load(std::memory_order_acquire) == w + 1; }));  // pairs with the waiter
    ASSERT_TRUE(eventually([&] { return (impl->state_hint() & mutex_impl::kQueued) != 0; }));
    sleep_ms(50);
  }
  release.store(1, std::memory_order_release);  // release: pairs with the owner's acquire
  g.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

// I-M3 (b): an owner that unlocks and re-locks (try_lock) while a waiter
// waits barges at most K times in a row; then starvation mode refuses it
// (EBUSY) and the waiter owns the mutex next.  Fewer than K when the woken
// waiter wins a race first (it may run on another KLT or thread).
TEST_P(MutexTest, AtMostKBargesPastAWaiter) {
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  auto* impl = reinterpret_cast<mutex_impl*>(m.opaque_);
  std::atomic<int> stage{0};
  std::atomic<int> waiter_done{0};
  unsigned barges = 0;
  group g(kind());
  g.spawn([&] {
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    stage.store(1, std::memory_order_release);  // release: pairs with the waiter's acquire
    ASSERT_TRUE(eventually([&] { return (impl->state_hint() & mutex_impl::kQueued) != 0; }));
    sleep_ms(20);  // the waiter parks
    for (;;) {
      ASSERT_EQ(fiber_mutex_unlock(&m), 0);
      if (fiber_mutex_trylock(&m) != 0) break;
      // relaxed: written under the mutex, which we own now
      if (waiter_done.load(std::memory_order_relaxed) != 0) {  // the waiter won a race: no waiter now
        ASSERT_EQ(fiber_mutex_unlock(&m), 0);
        break;
      }
      ++barges;
      ASSERT_LE(barges, mutex_impl::kBargeLimit + 1) << "starvation mode never taken";
    }
  });
  g.spawn([&] {
    ASSERT_TRUE(eventually([&] { return stage.load(std::memory_order_acquire) == 1; }));  // pairs with the owner
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    waiter_done.store(1, std::memory_order_relaxed);  // relaxed: the mutex orders it
    ASSERT_EQ(fiber_mutex_unlock(&m), 0);
  });
  g.join();
  EXPECT_EQ(waiter_done.load(), 1);
  EXPECT_LE(barges, mutex_impl::kBargeLimit);
  EXPECT_EQ(fiber_mutex_destroy(&m), 0);
}

// The same on one KLT, owner and waiter both fibers: after the owner yields
// once the waiter is parked in the queue (one KLT: no spinning), and since the
// owner never yields again the woken waiter cannot run, so the owner barges
// exactly K times (I-M3 b): the first try_lock after a normal-mode unlock
// succeeds (barging, not FIFO hand-off) and the K+1-th is refused.  The loop
// runs with preemption disabled, so no tick lets the waiter in.
template <class Mutex>
struct barge_run {
  Mutex m;
  std::atomic<bool> waiter_done{false};
  unsigned barges = 0;
};
template <class Mutex>
void* barge_waiter(void* a) {
  auto* r = static_cast<barge_run<Mutex>*>(a);
  EXPECT_EQ(r->m.lock(), 0);
  r->waiter_done.store(true, std::memory_order_relaxed);  // relaxed: the mutex orders it
  EXPECT_EQ(r->m.unlock(), 0);
  return nullptr;
}
template <class Mutex>
void* barge_owner(void* a) {
  auto* r = static_cast<barge_run<Mutex>*>(a);
  EXPECT_EQ(r->m.lock(), 0);
  fiber_t w = 0;
  EXPECT_EQ(fiber_create(&w, nullptr, barge_waiter<Mutex>, r), 0);
  while ((r->m.state_hint() & Mutex::kQueued) == 0) fiber_yield();
  fiber_preempt_disable();
  for (;;) {
    EXPECT_EQ(r->m.unlock(), 0);
    if (r->m.try_lock() != 0) break;
    if (++r->barges > mutex_impl::kBargeLimit + 1) {  // starvation mode never taken
      EXPECT_EQ(r->m.unlock(), 0);
      break;
    }
  }
  fiber_preempt_enable();
  EXPECT_EQ(fiber_join(w, nullptr), 0);
  return nullptr;
}
template <class Mutex>
void exactly_k_barges_body() {
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = 1;
  ASSERT_EQ(fiber_init(&cfg), 0);
  barge_run<Mutex> r;
  fiber_t o = 0;
  ASSERT_EQ(fiber_create(&o, nullptr, barge_owner<Mutex>, &r), 0);
  ASSERT_EQ(fiber_join(o, nullptr), 0);
  EXPECT_TRUE(r.waiter_done.load());
  std::printf("barges before the hand-off: %u (K = %u)\n", r.barges, mutex_impl::kBargeLimit);
  EXPECT_EQ(r.barges, mutex_impl::kBargeLimit);
  EXPECT_EQ(r.m.check_destroy(), 0);
  EXPECT_EQ(fiber_shutdown(), 0);
}
TEST(MutexBarging, ExactlyKBargesThenHandOffOnOneKlt) { exactly_k_barges_body<mutex_impl>(); }

// Planted unfair (the starvation switch is never reached): the owner barges
// on past K.  Expected: FAILS (barges K + 2).
TEST(MutexNegativeControl, DISABLED_NeverStarvingBargesPastK) {
  exactly_k_barges_body<fiber::detail::basic_mutex<fiber::detail::seam, (1u << 26)>>();
}

// Fairness (I-M3): `hogs` workers re-acquire in a tight loop while a victim
// locks `trials` times; for each of its acquisitions we count how many
// acquisitions the hogs made between the victim's lock() call and its entry
// (overtakes).  I-M3: a victim queued behind p <= hogs waiters is overtaken
// at most p + (p + 1) * K times; a barging lock without the starvation
// switch lets a releasing hog win again and again.  Per-worker totals
// are not used: on a 2-core machine they measure the kernel's time slicing.
template <class Lock, unsigned BargeLimit = mutex_impl::kBargeLimit>
void overtake_body(exec e, int hogs, int trials) {
  Lock lock;
  std::atomic<long> acq{0};  // acquisitions so far; written under lock
  std::atomic<bool> stop{false};
  std::vector<long> overtakes;  // victim only
  {
    group g(e);
    for (int h = 0; h < hogs; ++h)
      g.spawn([&] {
        while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a stop flag; join orders the rest
          lock.lock();
          acq.fetch_add(1, std::memory_order_relaxed);  // relaxed: the lock orders it
          for (volatile int spin = 0; spin < 200; spin = spin + 1) {
          }
          lock.unlock();
        }
      });
    g.spawn([&] {
      while (acq.load(std::memory_order_relaxed) < 10 * hogs) yield_now();  // relaxed: a start gate
      for (int t = 0; t < trials; ++t) {
        const long before = acq.load(std::memory_order_relaxed);  // relaxed: see the hogs' increment
        lock.lock();
        overtakes.push_back(acq.load(std::memory_order_relaxed) - before);
        acq.fetch_add(1, std::memory_order_relaxed);
        lock.unlock();
        for (volatile int spin = 0; spin < 2000; spin = spin + 1) {
        }
      }
      stop.store(true, std::memory_order_relaxed);
    });
  }
  std::sort(overtakes.begin(), overtakes.end());
  ASSERT_EQ(overtakes.size(), static_cast<std::size_t>(trials));
  // +1: the hog that held the lock when the victim read `before`.
  const long bound = hogs + (hogs + 1) * static_cast<long>(BargeLimit) + 1;
  const auto starved = std::count_if(overtakes.begin(), overtakes.end(), [&](long o) { return o > bound; });
  std::printf("overtakes per victim acquisition (%d hogs): median %ld max %ld; %ld of %d above %ld\n", hogs,
              overtakes[overtakes.size() / 2], overtakes.back(), static_cast<long>(starved), trials, bound);
  // Allow 1%: the victim may be descheduled by the kernel between reading
  // `before` and queueing, which no lock can help.
  EXPECT_LE(starved * 100, trials) << "a waiter was overtaken more than I-M3 allows";
}

struct std_mutex_lock {
  std::mutex m;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

TEST_P(MutexTest, NoWaiterStarves) { overtake_body<c_mutex>(kind(), workers() - 1, 300); }

// Planted unfair, as a comparison rather than a reliable control (like the
// std::mutex one below): the production algorithm with a barge limit so large
// that the starvation switch is never taken.  Seen: max 148958 overtakes
// where the production mutex stays within its bound, but only 2 of 300 trials
// above it, so the 1% allowance let it pass.  The deterministic control is
// DISABLED_NeverStarvingBargesPastK; the exact one is models/mutex.cpp I-M3.
struct never_starving_mutex {
  fiber::detail::basic_mutex<fiber::detail::seam, (1u << 26)> m;
  void lock() { ASSERT_EQ(m.lock(), 0); }
  void unlock() { ASSERT_EQ(m.unlock(), 0); }
};
TEST(MutexNegativeControl, DISABLED_NeverStarvingMutexOvertakesComparison) {
  runtime_scope rt(exec::fiber);
  overtake_body<never_starving_mutex>(exec::fiber, 3, 300);
}

TEST(MutexNegativeControl, DISABLED_BargingStdMutexComparison) {
  // A comparison rather than a reliable control: glibc's barging mutex shows
  // victims overtaken up to ~30000 times (max) where FIFO hand-off stays at
  // <= hogs, but how many trials exceed the bound varies from run to run
  // (1..86 of 300 here), so this fails in some runs only.
  overtake_body<std_mutex_lock>(exec::os_thread, 3, 300);
}

FIBER_SYNC_INSTANTIATE(MutexTest);

}  // namespace
