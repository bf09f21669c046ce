// core/tests/runtime_scale_test.cpp - many fibers (10,000 alive at once,
// 100,000 created and joined in waves), sleeping fibers hold no KLT, sleeps
// are never early (fibers and OS threads), and the fatal paths: a stack
// overflow into the guard page and fiber_exit outside a fiber.
#include <signal.h>

#include <climits>
#include <tuple>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

class scale_test : public runtime_test,
                   public ::testing::WithParamInterface<std::tuple<unsigned, int>> {
 protected:
  void SetUp() override { start(std::get<0>(GetParam()), 1000, std::get<1>(GetParam())); }
};

std::atomic<unsigned> g_started{0};
std::atomic<bool> g_go{false};

void* wait_go(void* a) {
  g_started.fetch_add(1);
  while (!g_go.load(std::memory_order_acquire)) fiber_yield();  // acquire: pairs with the release
  return a;
}

TEST_P(scale_test, TenThousandFibersAliveAtOnce) {
  FIBER_SKIP_UNDER_TSAN("more live fibers than its thread limit");
  constexpr unsigned kN = 10000;
  g_started.store(0);
  g_go.store(false);
  std::vector<fiber_t> ids(kN);
  for (unsigned i = 0; i < kN; ++i) {
    ids[i] = spawn(wait_go, reinterpret_cast<void*>(uintptr_t{i}), 64 * 1024);
    ASSERT_NE(ids[i], 0u) << "create " << i;
  }
  while (g_started.load() < kN) fiber_sleep_ns(kMs);
  EXPECT_EQ(stats().live, kN);  // all alive: none can finish before g_go
  g_go.store(true, std::memory_order_release);  // release: pairs with wait_go's acquire
  std::uint64_t sum = 0;
  for (fiber_t f : ids) sum += reinterpret_cast<uintptr_t>(join(f));
  EXPECT_EQ(sum, std::uint64_t{kN} * (kN - 1) / 2);
  EXPECT_EQ(stats().live, 0u);
}

void* ret_arg(void* a) { return a; }

// ~2 s per run in Debug: over both policies on 2 KLTs only.
class waves_test : public runtime_test, public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override { start(2, 1000, GetParam()); }
};

TEST_P(waves_test, HundredThousandCreatedAndJoinedInWaves) {
  FIBER_SKIP_UNDER_TSAN("more live fibers than its thread limit");
  constexpr unsigned kWave = 10000, kWaves = 10;
  std::vector<fiber_t> ids(kWave);
  for (unsigned w = 0; w < kWaves; ++w) {
    for (unsigned i = 0; i < kWave; ++i) {
      ids[i] = spawn(ret_arg, reinterpret_cast<void*>(uintptr_t{w * kWave + i}), 64 * 1024);
      ASSERT_NE(ids[i], 0u) << "wave " << w << " create " << i;
    }
    std::uint64_t sum = 0;
    for (fiber_t f : ids) sum += reinterpret_cast<uintptr_t>(join(f));
    std::uint64_t lo = std::uint64_t{w} * kWave;
    ASSERT_EQ(sum, kWave * lo + std::uint64_t{kWave} * (kWave - 1) / 2) << "wave " << w;
  }
}

INSTANTIATE_TEST_SUITE_P(policies, waves_test,
                         ::testing::Values(FIBER_POLICY_FIFO, FIBER_POLICY_RUNNEXT));

struct sleep_job { std::uint64_t ns; std::uint64_t took; };

void* sleeper(void* p) {
  auto* j = static_cast<sleep_job*>(p);
  std::uint64_t t0 = now_ns();
  if (fiber_sleep_ns(j->ns) != 0) return p;
  j->took = now_ns() - t0;
  return nullptr;
}

// 100 fibers each sleeping 50 ms: in parallel (about 50 ms), not in series
// (5 s), even on one KLT.  Every sleep lasts at least what was asked.
TEST_P(scale_test, SleepingFibersHoldNoKlt) {
  constexpr unsigned kN = 100;
  std::vector<sleep_job> jobs(kN, sleep_job{50 * kMs, 0});
  std::vector<fiber_t> ids(kN);
  std::uint64_t t0 = now_ns();
  for (unsigned i = 0; i < kN; ++i) ASSERT_NE(ids[i] = spawn(sleeper, &jobs[i]), 0u);
  for (fiber_t f : ids) EXPECT_EQ(join(f), nullptr);
  std::uint64_t wall = now_ns() - t0;
  EXPECT_LT(wall, 1500 * kMs) << "sleeps look serialised: " << wall / kMs << " ms";
  for (const auto& j : jobs) EXPECT_GE(j.took, 50 * kMs) << "woke early";
}

TEST_P(scale_test, SleepsAreNeverEarly) {
  const std::uint64_t lens[] = {0, 100 * 1000, kMs, 2 * kMs, 5 * kMs, 13 * kMs, 30 * kMs};
  std::vector<sleep_job> jobs;
  for (int rep = 0; rep < 4; ++rep)
    for (std::uint64_t l : lens) jobs.push_back(sleep_job{l, 0});
  std::vector<fiber_t> ids;
  for (auto& j : jobs) {
    ids.push_back(spawn(sleeper, &j));
    ASSERT_NE(ids.back(), 0u);
  }
  for (fiber_t f : ids) EXPECT_EQ(join(f), nullptr);
  for (const auto& j : jobs) EXPECT_GE(j.took, j.ns) << "asked " << j.ns << " ns";
  // From a plain OS thread (main): blocks the thread, also never early.
  for (std::uint64_t l : lens) {
    std::uint64_t t = now_ns();
    EXPECT_EQ(fiber_sleep_ns(l), 0);
    EXPECT_GE(now_ns() - t, l);
  }
}

INSTANTIATE_TEST_SUITE_P(klts_policies, scale_test,
                         ::testing::Combine(::testing::Values(1u, 2u, 4u),
                                            ::testing::Values(FIBER_POLICY_FIFO,
                                                              FIBER_POLICY_RUNNEXT)));

TEST(runtime_sleep, FromAnOsThreadWithoutARuntime) {
  std::uint64_t t = now_ns();
  EXPECT_EQ(fiber_sleep_ns(20 * kMs), 0);
  EXPECT_GE(now_ns() - t, 20 * kMs);
  fiber_stats_t s;
  EXPECT_EQ(fiber_get_stats(&s), EINVAL);  // sleeping did not start a runtime
}

// ---- fatal paths -------------------------------------------------------------

__attribute__((noinline)) int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth == INT_MAX) return 0;  // never: keeps -Winfinite-recursion quiet
  return recurse(depth + 1) + frame[0];
}

void* overflow(void*) { return reinterpret_cast<void*>(static_cast<intptr_t>(recurse(0))); }

void overflow_in_a_fiber() {
  fiber_config_t c = config(1, 1000);
  if (fiber_init(&c) != 0) return;
  fiber_t f = spawn(overflow, nullptr, 64 * 1024);
  if (f) fiber_join(f, nullptr);
}

TEST(runtime_death, StackOverflowNamesTheFiberAndAborts) {
  EXPECT_EXIT(overflow_in_a_fiber(), ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(fault at 0x[0-9a-f]+, guard page hit\\)");
}

TEST(runtime_death, FiberExitOutsideAFiberAborts) {
  EXPECT_EXIT(fiber_exit(nullptr), ::testing::KilledBySignal(SIGABRT),
              "fiber_exit called outside a fiber");
}

}  // namespace
