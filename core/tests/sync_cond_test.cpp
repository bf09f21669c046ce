// core/tests/sync_cond_test.cpp - fiber_cond_* over OS threads, fibers and both.
//
// The lost-wake-up body is a template over the condvar; its negative control
// (DISABLED_ by default) runs it over a planted bug - a wait that releases the
// mutex *before* queueing itself (I-C1 broken) - and must FAIL with time-outs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "fiber/detail/condvar.hpp"
#include "fiber/detail/mutex.hpp"
#include "fiber/fiber.h"
#include "sync_harness.hpp"
#include "test_util.hpp"  // rescuer

namespace {

using namespace fiber_test;
using seam = fiber::detail::seam;

struct c_cond {
  fiber_cond_t c = FIBER_COND_INITIALIZER;
  int timedwait(fiber_mutex_t* m, const timespec* ts) { return fiber_cond_timedwait(&c, m, ts); }
  void signal() { EXPECT_EQ(fiber_cond_signal(&c), 0); }
};

// Planted bug: unlock first, then queue (the window I-C1 closes).
struct broken_cond {
  fiber::detail::basic_condvar<seam> c;
  int timedwait(fiber_mutex_t* m, const timespec* ts) {
    fiber::detail::wait_node<seam> node(&seam::current_parker());
    EXPECT_EQ(fiber_mutex_unlock(m), 0);
    yield_now();  // widen the window
    c.enqueue(node);
    const int rc = c.await(node, to_ns(*ts));
    EXPECT_EQ(fiber_mutex_lock(m), 0);
    return rc;
  }
  void signal() { c.notify_one(); }
};

// Ping-pong (I-C1, I-C2): two parties hand a turn back and forth; a lost
// wake-up leaves one waiting for a notify that already happened, which shows
// as ETIMEDOUT here instead of a hang.  Signals alternate between inside and
// outside the mutex.  `pairs` independent pairs run at once.
template <class Cond>
void ping_pong_body(exec e, int pairs, int rounds, unsigned timeout_ms) {
  struct pair_state {
    fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
    Cond cv;
    int turn = 0;  // guarded by m
  };
  std::vector<pair_state> st(static_cast<std::size_t>(pairs));
  std::atomic<int> lost{0};
  {
    group g(e);
    for (int p = 0; p < pairs; ++p)
      for (int me = 0; me < 2; ++me)
        g.spawn([&, p, me] {
          pair_state& s = st[static_cast<std::size_t>(p)];
          for (int r = 0; r < rounds; ++r) {
            ASSERT_EQ(fiber_mutex_lock(&s.m), 0);
            while (s.turn != me) {
              const timespec dl = mono_after_ms(timeout_ms);
              if (s.cv.timedwait(&s.m, &dl) == ETIMEDOUT && s.turn != me) {
                // Stalled: our turn never came.  Give up this pair; the
                // partner, waiting for a turn we will not pass, times out too.
                lost.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
                ASSERT_EQ(fiber_mutex_unlock(&s.m), 0);
                return;
              }
            }
            s.turn = 1 - me;
            if (r % 2 == 0) s.cv.signal();
            ASSERT_EQ(fiber_mutex_unlock(&s.m), 0);
            if (r % 2 == 1) s.cv.signal();
          }
        });
  }
  EXPECT_EQ(lost.load(), 0) << "lost wake-ups (a waiter timed out although its turn had come)";
}

using CondTest = SyncTest;

TEST_P(CondTest, NoLostWakeupPingPong) { ping_pong_body<c_cond>(kind(), workers() / 2, 5000, 5000); }

TEST(CondNegativeControl, DISABLED_UnlockBeforeEnqueueLosesWakeups) {
  // Expected: FAILS with lost wake-ups - proves the ping-pong body can fail.
  ping_pong_body<broken_cond>(exec::os_thread, 2, 2000, 200);
}

// Bounded buffer with two condition variables: every item is consumed
// exactly once, nothing is lost or duplicated, capacity is never exceeded.
TEST_P(CondTest, BoundedBufferEveryItemOnce) {
  constexpr std::size_t kCap = 8;
  const int producers = std::max(1, workers() / 2);
  const int consumers = producers;
  const int per_producer = 4000;
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  fiber_cond_t not_full = FIBER_COND_INITIALIZER;
  fiber_cond_t not_empty = FIBER_COND_INITIALIZER;
  std::vector<int> buf;  // guarded by m
  std::vector<int> seen(static_cast<std::size_t>(producers * per_producer), 0);  // guarded by m
  bool over_capacity = false;                                                    // guarded by m
  {
    group g(kind());
    for (int p = 0; p < producers; ++p)
      g.spawn([&, p] {
        for (int i = 0; i < per_producer; ++i) {
          ASSERT_EQ(fiber_mutex_lock(&m), 0);
          while (buf.size() == kCap) ASSERT_EQ(fiber_cond_wait(&not_full, &m), 0);
          buf.push_back(p * per_producer + i);
          over_capacity = over_capacity || buf.size() > kCap;
          ASSERT_EQ(fiber_cond_signal(&not_empty), 0);
          ASSERT_EQ(fiber_mutex_unlock(&m), 0);
        }
      });
    for (int c = 0; c < consumers; ++c)
      g.spawn([&] {
        for (int i = 0; i < per_producer; ++i) {  // consumers == producers
          ASSERT_EQ(fiber_mutex_lock(&m), 0);
          while (buf.empty()) ASSERT_EQ(fiber_cond_wait(&not_empty, &m), 0);
          const int item = buf.back();
          buf.pop_back();
          ++seen[static_cast<std::size_t>(item)];
          ASSERT_EQ(fiber_mutex_unlock(&m), 0);
          ASSERT_EQ(fiber_cond_signal(&not_full), 0);
        }
      });
  }
  EXPECT_FALSE(over_capacity);
  EXPECT_TRUE(buf.empty());
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "item " << i;
  EXPECT_EQ(fiber_cond_destroy(&not_full), 0);
  EXPECT_EQ(fiber_cond_destroy(&not_empty), 0);
}

// I-C2: a signal wakes exactly one of the queued waiters (this implementation
// has no spurious wake-ups), a broadcast all the rest.
TEST_P(CondTest, SignalWakesOneBroadcastWakesAll) {
  const int n = workers();
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  fiber_cond_t cv = FIBER_COND_INITIALIZER;
  int waiting = 0;  // guarded by m
  std::atomic<int> woke{0};
  std::atomic<int> timeouts{0};
  group g(kind());
  for (int w = 0; w < n; ++w)
    g.spawn([&] {
      ASSERT_EQ(fiber_mutex_lock(&m), 0);
      ++waiting;
      const timespec dl = mono_after_ms(10000);
      if (fiber_cond_timedwait(&cv, &m, &dl) != 0) timeouts.fetch_add(1, std::memory_order_relaxed);
      woke.fetch_add(1, std::memory_order_release);  // release: pairs with the checker's acquire
      ASSERT_EQ(fiber_mutex_unlock(&m), 0);
    });
  // All queued: each incremented under m and queued before releasing m (I-C1).
  ASSERT_TRUE(eventually([&] {
    EXPECT_EQ(fiber_mutex_lock(&m), 0);
    const bool all = waiting == n;
    EXPECT_EQ(fiber_mutex_unlock(&m), 0);
    return all;
  }));
  ASSERT_EQ(fiber_cond_signal(&cv), 0);
  ASSERT_TRUE(eventually([&] { return woke.load(std::memory_order_acquire) >= 1; }));  // pairs with the waiters
  sleep_ms(30);
  EXPECT_EQ(woke.load(std::memory_order_acquire), 1) << "one signal woke several waiters";
  EXPECT_EQ(fiber_cond_destroy(&cv), EBUSY);
  ASSERT_EQ(fiber_cond_broadcast(&cv), 0);
  g.join();
  EXPECT_EQ(woke.load(), n);
  EXPECT_EQ(timeouts.load(), 0) << "broadcast missed a waiter";
  EXPECT_EQ(fiber_cond_destroy(&cv), 0);
}

// I-C3: a timed wait never returns before its deadline and not much after it.
TEST_P(CondTest, TimeoutsHonoured) {
  constexpr int kSamples = 9;
  std::vector<std::int64_t> late_ns;
  fiber_cond_t cv = FIBER_COND_INITIALIZER;
  // A wait that misses its deadline (mutant seam_os_block_ignores_deadline)
  // is freed long after the test's 50 ms, loaded or not.
  rescuer r(5000, [&] { fiber_cond_broadcast(&cv); });
  group g(kind());
  g.spawn([&] {
    fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    for (int i = 0; i < kSamples; ++i) {
      const timespec dl = mono_after_ms(5);
      ASSERT_EQ(fiber_cond_timedwait(&cv, &m, &dl), ETIMEDOUT);
      const std::uint64_t now = mono_ns();
      EXPECT_GE(now, to_ns(dl)) << "timed out early";
      late_ns.push_back(static_cast<std::int64_t>(now - to_ns(dl)));
    }
    timespec past = mono_after_ms(0);
    past.tv_sec -= 1;
    EXPECT_EQ(fiber_cond_timedwait(&cv, &m, &past), ETIMEDOUT);
    EXPECT_EQ(fiber_mutex_unlock(&m), 0) << "mutex not re-acquired after a time-out";
  });
  g.join();
  ASSERT_EQ(late_ns.size(), static_cast<std::size_t>(kSamples));
  std::sort(late_ns.begin(), late_ns.end());
  EXPECT_LE(late_ns[kSamples / 2], 2'000'000) << "median lateness above 2 ms";
  EXPECT_LE(late_ns.back(), 20'000'000) << "a time-out more than 20 ms late";
}

// A negative absolute time (before the clock's epoch) is long past: the
// timed waits time out at once.  A helper OS thread broadcasts and posts
// after half a second, so a wait that took it for "no deadline" returns 0
// there instead of hanging (mutant sync_deadline_past_never).
TEST_P(CondTest, NegativeTimesAreLongPast) {
  fiber_cond_t cv = FIBER_COND_INITIALIZER;
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  fiber_sem_t sem;
  ASSERT_EQ(fiber_sem_init(&sem, 0), 0);
  {
    rescuer r(500, [&] {
      fiber_cond_broadcast(&cv);
      fiber_sem_post(&sem);
    });
    group g(kind());
    g.spawn([&] {
      const timespec past{-1, 0};
      ASSERT_EQ(fiber_mutex_lock(&m), 0);
      EXPECT_EQ(fiber_cond_timedwait(&cv, &m, &past), ETIMEDOUT);
      EXPECT_EQ(fiber_mutex_unlock(&m), 0);
      EXPECT_EQ(fiber_sem_timedwait(&sem, &past), ETIMEDOUT);
    });
    g.join();
  }
  EXPECT_EQ(fiber_sem_destroy(&sem), 0);
}

TEST_P(CondTest, ErrorCodes) {
  int attr = 0;
  fiber_cond_t cv;
  EXPECT_EQ(fiber_cond_init(nullptr, nullptr), EINVAL);
  EXPECT_EQ(fiber_cond_init(&cv, &attr), EINVAL);
  ASSERT_EQ(fiber_cond_init(&cv, nullptr), 0);
  fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
  EXPECT_EQ(fiber_cond_wait(nullptr, &m), EINVAL);
  EXPECT_EQ(fiber_cond_wait(&cv, nullptr), EINVAL);
  EXPECT_EQ(fiber_cond_signal(nullptr), EINVAL);
  EXPECT_EQ(fiber_cond_broadcast(nullptr), EINVAL);
  EXPECT_EQ(fiber_cond_destroy(nullptr), EINVAL);
  group g(kind());
  g.spawn([&] {
    EXPECT_EQ(fiber_cond_wait(&cv, &m), EPERM);  // mutex not held
    const timespec ok = mono_after_ms(1);
    EXPECT_EQ(fiber_cond_timedwait(&cv, &m, &ok), EPERM);
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    timespec bad = mono_after_ms(1);
    bad.tv_nsec = -1;
    EXPECT_EQ(fiber_cond_timedwait(&cv, &m, &bad), EINVAL);
    bad.tv_nsec = 1000000000L;
    EXPECT_EQ(fiber_cond_timedwait(&cv, &m, &bad), EINVAL);
    EXPECT_EQ(fiber_cond_timedwait(&cv, &m, nullptr), EINVAL);
    EXPECT_EQ(fiber_mutex_unlock(&m), 0) << "EINVAL must leave the mutex held";
  });
  g.join();
  // Held by another party: EPERM too.
  std::atomic<int> held{0};
  group h(kind());
  h.spawn([&] {
    ASSERT_EQ(fiber_mutex_lock(&m), 0);
    held.store(1, std::memory_order_release);  // release: pairs with the acquire below
    ASSERT_TRUE(eventually([&] { return held.load(std::memory_order_acquire) == 2; }));  // pairs with the checker
    ASSERT_EQ(fiber_mutex_unlock(&m), 0);
  });
  ASSERT_TRUE(eventually([&] { return held.load(std::memory_order_acquire) == 1; }));  // pairs with the owner
  EXPECT_EQ(fiber_cond_wait(&cv, &m), EPERM);
  held.store(2, std::memory_order_release);  // release: pairs with the owner's acquire
  h.join();
  EXPECT_EQ(fiber_cond_destroy(&cv), 0);
}

FIBER_SYNC_INSTANTIATE(CondTest);

}  // namespace
