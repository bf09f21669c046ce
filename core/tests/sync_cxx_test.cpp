// core/tests/sync_cxx_test.cpp - the C++ types (fiber/mutex.hpp,
// condition_variable.hpp, semaphore.hpp, barrier.hpp) with the standard lock
// utilities, over OS threads, fibers and both.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <system_error>
#include <vector>

#include "fiber/barrier.hpp"
#include "fiber/condition_variable.hpp"
#include "fiber/mutex.hpp"
#include "fiber/semaphore.hpp"
#include "sync_harness.hpp"

namespace {

using namespace fiber_test;
using namespace std::chrono_literals;

using CxxTest = SyncTest;

// std::lock_guard and std::scoped_lock over two fiber::mutexes taken in
// opposite orders (scoped_lock's deadlock avoidance needs try_lock to work).
TEST_P(CxxTest, LockGuardAndScopedLock) {
  fiber::mutex a, b;
  long x = 0, y = 0;  // x guarded by a, y by b
  {
    group g(kind());
    for (int w = 0; w < workers(); ++w)
      g.spawn([&, w] {
        for (int i = 0; i < 3000; ++i) {
          if (w % 2 == 0) {
            std::scoped_lock both(a, b);
            ++x;
            ++y;
          } else {
            std::scoped_lock both(b, a);
            ++y;
            ++x;
          }
          std::lock_guard<fiber::mutex> g1(a);
          ++x;
        }
      });
  }
  EXPECT_EQ(x, 2L * 3000 * workers());
  EXPECT_EQ(y, 1L * 3000 * workers());
}

TEST_P(CxxTest, MisuseThrowsSystemError) {
  group g(kind());
  g.spawn([] {
    fiber::mutex m;
    m.lock();
    try {
      m.lock();
      ADD_FAILURE() << "relock did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::resource_deadlock_would_occur);
    }
    EXPECT_FALSE(m.try_lock());
    m.unlock();
    try {
      m.unlock();
      ADD_FAILURE() << "unlock of an unowned mutex did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_not_permitted);
    }
    fiber::condition_variable cv;
    std::unique_lock<fiber::mutex> lk(m, std::defer_lock);
    EXPECT_THROW(cv.wait_for(lk, 1ms), std::system_error);
  });
}

// wait / wait_for / wait_until with and without predicates, cv_status, and
// time-outs never early (steady_clock = CLOCK_MONOTONIC).
TEST_P(CxxTest, ConditionVariableWaits) {
  group g(kind());
  g.spawn([] {
    fiber::mutex m;
    fiber::condition_variable cv;
    std::unique_lock<fiber::mutex> lk(m);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lk, 3ms), std::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 3ms);
    EXPECT_TRUE(lk.owns_lock());
    const auto until = std::chrono::steady_clock::now() + 3ms;
    EXPECT_EQ(cv.wait_until(lk, until), std::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now(), until);
    EXPECT_FALSE(cv.wait_for(lk, 2ms, [] { return false; }));
    EXPECT_TRUE(cv.wait_for(lk, 2ms, [] { return true; }));
    const auto sys_until = std::chrono::system_clock::now() + 3ms;
    EXPECT_FALSE(cv.wait_until(lk, sys_until, [] { return false; }));
    EXPECT_GE(std::chrono::system_clock::now(), sys_until);
    EXPECT_EQ(cv.wait_for(lk, std::chrono::hours::min()), std::cv_status::timeout);  // saturates
  });
  g.join();
  // A real hand-over with wait(lk, pred) and notify_one outside the lock.
  fiber::mutex m;
  fiber::condition_variable cv;
  int stage = 0;  // guarded by m
  group h(kind());
  h.spawn([&] {
    std::unique_lock<fiber::mutex> lk(m);
    cv.wait(lk, [&] { return stage == 1; });
    stage = 2;
    lk.unlock();
    cv.notify_all();
  });
  {
    std::lock_guard<fiber::mutex> lg(m);
    stage = 1;
  }
  cv.notify_one();
  std::unique_lock<fiber::mutex> lk(m);
  EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return stage == 2; }));
  lk.unlock();
  h.join();
}

// fiber::mutex is BasicLockable for std::condition_variable_any (OS threads
// only: std's internal mutex blocks a KLT), and fiber::condition_variable_any
// waits on any lock, here a std::unique_lock<fiber::mutex>.
TEST(CxxStd, StdConditionVariableAnyWithFiberMutex) {
  fiber::mutex m;
  std::condition_variable_any cv;
  int n = 0;  // guarded by m
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      std::unique_lock<fiber::mutex> lk(m);
      ++n;
      cv.notify_all();
      EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return n >= 4; }));
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(n, 4);
}

TEST_P(CxxTest, FiberConditionVariableAny) {
  fiber::mutex m;
  fiber::condition_variable_any cv;
  int arrived = 0;  // guarded by m
  const int n = workers();
  {
    group g(kind());
    for (int i = 0; i < n; ++i)
      g.spawn([&] {
        std::unique_lock<fiber::mutex> lk(m);
        ++arrived;
        if (arrived == n) cv.notify_all();
        EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return arrived == n; }));
      });
  }
  EXPECT_EQ(arrived, n);
  std::unique_lock<fiber::mutex> lk(m);
  EXPECT_EQ(cv.wait_for(lk, 2ms), std::cv_status::timeout);
  EXPECT_TRUE(lk.owns_lock());
}

TEST_P(CxxTest, CountingSemaphore) {
  fiber::counting_semaphore<> sem(0);
  EXPECT_FALSE(sem.try_acquire());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(sem.try_acquire_for(3ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 3ms);
  EXPECT_FALSE(sem.try_acquire_until(std::chrono::steady_clock::now() + 1ms));
  EXPECT_THROW(sem.release(-1), std::system_error);
  std::atomic<int> got{0};
  {
    group g(kind());
    for (int i = 0; i < workers(); ++i)
      g.spawn([&] {
        for (int k = 0; k < 100; ++k) {
          sem.acquire();
          got.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
        }
      });
    for (int k = 0; k < 100; ++k) sem.release(workers());
  }
  EXPECT_EQ(got.load(), 100 * workers());
  EXPECT_FALSE(sem.try_acquire());
  fiber::binary_semaphore bin(1);
  EXPECT_TRUE(bin.try_acquire());
  EXPECT_FALSE(bin.try_acquire());
  static_assert(fiber::binary_semaphore::max() == 1);
}

TEST_P(CxxTest, BarrierWithCompletion) {
  const int n = workers();
  int phases = 0;  // written by the completion step only
  fiber::basic_barrier_t<std::function<void()>> b(n, [&] { ++phases; });
  std::atomic<int> serial{0};
  {
    group g(kind());
    for (int i = 0; i < n; ++i)
      g.spawn([&] {
        for (int k = 0; k < 50; ++k)
          if (b.arrive_and_wait()) serial.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
      });
  }
  EXPECT_EQ(phases, 50);
  EXPECT_EQ(serial.load(), 50);
}

FIBER_SYNC_INSTANTIATE(CxxTest);

}  // namespace
