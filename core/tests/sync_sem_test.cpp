// core/tests/sync_sem_test.cpp - fiber_sem_* and fiber_barrier_* over OS
// threads, fibers and both, plus the layout promises of the C API storage.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fiber/detail/semaphore.hpp"
#include "fiber/fiber.h"
#include "sync_harness.hpp"

namespace {

using namespace fiber_test;
using sem_impl = fiber::detail::basic_semaphore<fiber::detail::seam>;

// All-zero bytes is the initial state (FIBER_*_INITIALIZER): init over
// garbage must produce exactly zero bytes.
TEST(SyncLayout, InitProducesAllZeroBytes) {
  fiber_mutex_t m;
  std::memset(&m, 0xA5, sizeof m);
  ASSERT_EQ(fiber_mutex_init(&m, nullptr), 0);
  const fiber_mutex_t zm = FIBER_MUTEX_INITIALIZER;
  EXPECT_EQ(std::memcmp(&m, &zm, sizeof m), 0);
  fiber_cond_t c;
  std::memset(&c, 0xA5, sizeof c);
  ASSERT_EQ(fiber_cond_init(&c, nullptr), 0);
  const fiber_cond_t zc = FIBER_COND_INITIALIZER;
  EXPECT_EQ(std::memcmp(&c, &zc, sizeof c), 0);
  fiber_sem_t s;
  std::memset(&s, 0xA5, sizeof s);
  ASSERT_EQ(fiber_sem_init(&s, 0), 0);
  const fiber_sem_t zs{};
  EXPECT_EQ(std::memcmp(&s, &zs, sizeof s), 0);
}

using SemTest = SyncTest;

TEST_P(SemTest, ErrorCodes) {
  fiber_sem_t s;
  EXPECT_EQ(fiber_sem_init(nullptr, 0), EINVAL);
  EXPECT_EQ(fiber_sem_init(&s, static_cast<unsigned>(INT32_MAX) + 1u), EINVAL);
  EXPECT_EQ(fiber_sem_wait(nullptr), EINVAL);
  EXPECT_EQ(fiber_sem_trywait(nullptr), EINVAL);
  EXPECT_EQ(fiber_sem_post(nullptr), EINVAL);
  EXPECT_EQ(fiber_sem_destroy(nullptr), EINVAL);
  ASSERT_EQ(fiber_sem_init(&s, INT32_MAX), 0);
  int v = 0;
  EXPECT_EQ(fiber_sem_getvalue(&s, nullptr), EINVAL);
  EXPECT_EQ(fiber_sem_getvalue(nullptr, &v), EINVAL);
  EXPECT_EQ(fiber_sem_post(&s), EOVERFLOW);
  ASSERT_EQ(fiber_sem_getvalue(&s, &v), 0);
  EXPECT_EQ(v, INT32_MAX) << "a failed post must not change the count";
  ASSERT_EQ(fiber_sem_init(&s, 1), 0);
  std::atomic<int> final_wait{0};
  group g(kind());
  g.spawn([&] {
    EXPECT_EQ(fiber_sem_trywait(&s), 0);
    EXPECT_EQ(fiber_sem_trywait(&s), EAGAIN);
    timespec bad = mono_after_ms(1);
    bad.tv_nsec = 1000000000L;
    EXPECT_EQ(fiber_sem_timedwait(&s, &bad), EINVAL);
    EXPECT_EQ(fiber_sem_timedwait(&s, nullptr), EINVAL);
    const timespec dl = mono_after_ms(5);
    EXPECT_EQ(fiber_sem_timedwait(&s, &dl), ETIMEDOUT);
    EXPECT_GE(mono_ns(), to_ns(dl)) << "timed out early";
    final_wait.store(1, std::memory_order_release);  // release: pairs with the acquire below
    EXPECT_EQ(fiber_sem_wait(&s), 0);  // the main thread posts once we wait
  });
  auto* impl = reinterpret_cast<sem_impl*>(s.opaque_);
  // The timed wait above queued and left (clearing kWaiters: I-SEM1) before
  // final_wait is set, so kWaiters after it means the final wait is queued.
  ASSERT_TRUE(eventually([&] {
    return final_wait.load(std::memory_order_acquire) == 1 && impl->has_waiters();  // pairs with the worker
  }));
  EXPECT_EQ(fiber_sem_destroy(&s), EBUSY);
  ASSERT_EQ(fiber_sem_post(&s), 0);
  g.join();
  EXPECT_EQ(fiber_sem_destroy(&s), 0);
}

// I-SEM4: a post with a queued waiter hands the permit over; a trywait right
// after the post must not get it.
TEST_P(SemTest, PermitHandedToWaiterNotStolen) {
  fiber_sem_t s;
  ASSERT_EQ(fiber_sem_init(&s, 0), 0);
  auto* impl = reinterpret_cast<sem_impl*>(s.opaque_);
  std::atomic<int> got{0};
  group g(kind());
  g.spawn([&] {
    EXPECT_EQ(fiber_sem_wait(&s), 0);
    got.store(1, std::memory_order_release);  // release: pairs with the acquire below
  });
  ASSERT_TRUE(eventually([&] { return impl->has_waiters(); }));
  ASSERT_EQ(fiber_sem_post(&s), 0);
  EXPECT_EQ(fiber_sem_trywait(&s), EAGAIN) << "trywait stole a permit owed to a waiter";
  g.join();
  EXPECT_EQ(got.load(std::memory_order_acquire), 1);  // pairs with the waiter
  int v = -1;
  ASSERT_EQ(fiber_sem_getvalue(&s, &v), 0);
  EXPECT_EQ(v, 0);
}

// I-SEM3: permits are conserved under concurrent posts, waits and time-outs.
TEST_P(SemTest, PermitsConserved) {
  fiber_sem_t s;
  ASSERT_EQ(fiber_sem_init(&s, 0), 0);
  const int pairs = std::max(1, workers() / 2);
  constexpr int kPerPoster = 3000;
  std::atomic<long> taken{0};
  {
    group g(kind());
    for (int p = 0; p < pairs; ++p) {
      g.spawn([&] {
        for (int i = 0; i < kPerPoster; ++i) {
          ASSERT_EQ(fiber_sem_post(&s), 0);
          if (i % 64 == 0) yield_now();
        }
      });
      g.spawn([&, p] {
        for (int i = 0; i < kPerPoster; ++i) {
          int rc = 0;
          if (i % 3 == 0) {
            rc = fiber_sem_trywait(&s);
          } else if (i % 3 == 1 || p % 2 == 0) {
            const timespec dl = mono_after_ms(1);
            rc = fiber_sem_timedwait(&s, &dl);
          } else {
            rc = fiber_sem_wait(&s);
          }
          if (rc == 0) taken.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
        }
      });
    }
  }
  int left = -1;
  ASSERT_EQ(fiber_sem_getvalue(&s, &left), 0);
  EXPECT_EQ(taken.load() + left, static_cast<long>(pairs) * kPerPoster) << "permits lost or duplicated";
  while (fiber_sem_trywait(&s) == 0) --left;
  EXPECT_EQ(left, 0);
  EXPECT_EQ(fiber_sem_destroy(&s), 0);
}

FIBER_SYNC_INSTANTIATE(SemTest);

using BarrierTest = SyncTest;

TEST_P(BarrierTest, ErrorCodes) {
  fiber_barrier_t b;
  int attr = 0;
  EXPECT_EQ(fiber_barrier_init(nullptr, nullptr, 2), EINVAL);
  EXPECT_EQ(fiber_barrier_init(&b, nullptr, 0), EINVAL);
  EXPECT_EQ(fiber_barrier_init(&b, &attr, 2), EINVAL);
  EXPECT_EQ(fiber_barrier_wait(nullptr), EINVAL);
  EXPECT_EQ(fiber_barrier_destroy(nullptr), EINVAL);
  fiber_barrier_t zero{};
  EXPECT_EQ(fiber_barrier_wait(&zero), EINVAL) << "an uninitialised (zero) barrier";
  ASSERT_EQ(fiber_barrier_init(&b, nullptr, 2), 0);
  std::atomic<int> rc1{1};
  group g(kind());
  g.spawn([&] { rc1.store(fiber_barrier_wait(&b), std::memory_order_release); });  // pairs with join
  ASSERT_TRUE(eventually([&] { return fiber_barrier_destroy(&b) == EBUSY; }));
  const int rc2 = fiber_barrier_wait(&b);
  g.join();
  EXPECT_EQ(rc2 + rc1.load(std::memory_order_acquire), FIBER_BARRIER_SERIAL_THREAD);
  EXPECT_EQ(fiber_barrier_destroy(&b), 0);
  ASSERT_EQ(fiber_barrier_init(&b, nullptr, 1), 0);
  EXPECT_EQ(fiber_barrier_wait(&b), FIBER_BARRIER_SERIAL_THREAD);
}

// I-B1..I-B4: over many phases, exactly one serial party per phase, and every
// party sees every other party's write of the phase (phases never mix).
TEST_P(BarrierTest, PhasesAndSerial) {
  const int n = workers();
  constexpr int kPhases = 300;
  fiber_barrier_t b;
  ASSERT_EQ(fiber_barrier_init(&b, nullptr, static_cast<unsigned>(n)), 0);
  std::vector<int> slot(static_cast<std::size_t>(n), -1);  // slot i written by party i before arriving
  std::vector<int> serials(kPhases, 0);                    // written by each phase's serial party
  std::atomic<int> mixed{0};
  {
    group g(kind());
    for (int i = 0; i < n; ++i)
      g.spawn([&, i] {
        for (int ph = 0; ph < kPhases; ++ph) {
          slot[static_cast<std::size_t>(i)] = ph;
          const int rc = fiber_barrier_wait(&b);
          ASSERT_TRUE(rc == 0 || rc == FIBER_BARRIER_SERIAL_THREAD) << rc;
          if (rc == FIBER_BARRIER_SERIAL_THREAD) ++serials[static_cast<std::size_t>(ph)];
          for (int j = 0; j < n; ++j)
            if (slot[static_cast<std::size_t>(j)] != ph) mixed.fetch_add(1, std::memory_order_relaxed);
          ASSERT_NE(fiber_barrier_wait(&b), EINVAL);  // second barrier: nobody rewrites a slot early
        }
      });
  }
  EXPECT_EQ(mixed.load(), 0) << "a party saw a stale or future slot";
  for (int ph = 0; ph < kPhases; ++ph) ASSERT_EQ(serials[static_cast<std::size_t>(ph)], 1) << "phase " << ph;
  EXPECT_EQ(fiber_barrier_destroy(&b), 0);
}

FIBER_SYNC_INSTANTIATE(BarrierTest);

}  // namespace
