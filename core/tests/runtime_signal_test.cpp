// core/tests/runtime_signal_test.cpp - the tick signal is configurable
// (fiber_set_preempt_signal) and the allow-list can be extended
// (fiber_preempt_allow_module), with their error codes.
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>

#include <atomic>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_other_ran{false};

void* mark(void*) {
  g_other_ran.store(true, std::memory_order_relaxed);  // relaxed: flag only
  return nullptr;
}

// Spins with no calls until the other fiber ran or the caller stops it.
void* spin_until_other(void*) {
  fiber_t other;
  if (fiber_create(&other, nullptr, mark, nullptr) != 0) return nullptr;
  while (!g_other_ran.load(std::memory_order_relaxed) && !g_stop.load(std::memory_order_relaxed)) {
  }
  fiber_join(other, nullptr);
  return nullptr;
}

class signal_test : public runtime_test {
 protected:
  void TearDown() override {
    runtime_test::TearDown();
    fiber_set_preempt_signal(SIGPROF);
  }
};

TEST_F(signal_test, ErrorCodes) {
  EXPECT_EQ(fiber_set_preempt_signal(0), EINVAL);
  EXPECT_EQ(fiber_set_preempt_signal(SIGSEGV), EINVAL);
  EXPECT_EQ(fiber_set_preempt_signal(SIGKILL), EINVAL);
  EXPECT_EQ(fiber_set_preempt_signal(NSIG + 5), EINVAL);
  start(1, 1000);
  EXPECT_EQ(fiber_set_preempt_signal(SIGVTALRM), EBUSY);  // while running
}

// A spinner with no calls on 1 KLT is preempted by ticks on another signal,
// and SIGPROF is left alone (SIG_DFL would kill the process if it came).
TEST_F(signal_test, TicksArriveOnTheConfiguredSignal) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  ASSERT_EQ(fiber_set_preempt_signal(SIGRTMIN + 3), 0);
  g_stop.store(false);
  g_other_ran.store(false);
  start(1, 1000);
  struct sigaction sa;
  ASSERT_EQ(sigaction(SIGPROF, nullptr, &sa), 0);
  EXPECT_EQ(sa.sa_handler, SIG_DFL);
  fiber_t f;
  ASSERT_EQ(fiber_create(&f, nullptr, spin_until_other, nullptr), 0);
  std::uint64_t t0 = now_ns();
  while (!g_other_ran.load() && now_ns() - t0 < 5'000'000'000ull) fiber_sleep_ns(1'000'000);
  g_stop.store(true);
  EXPECT_TRUE(g_other_ran.load()) << "no preemption on the configured signal";
  EXPECT_EQ(fiber_join(f, nullptr), 0);
}

TEST_F(signal_test, AllowModuleErrorCodes) {
  EXPECT_EQ(fiber_preempt_allow_module(nullptr), EINVAL);
  int local = 0;
  EXPECT_EQ(fiber_preempt_allow_module(&local), EINVAL);  // a stack address is in no module
  EXPECT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(&printf)), EPERM);  // libc, never
  EXPECT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(&mark)), 0);  // the executable
}

}  // namespace

namespace {
// After an unbalanced enable the fiber must still be preemptible: a wrapped
// count would keep the other fiber from ever running on this single KLT.
void* unbalanced_enable(void*) {
  fiber_preempt_enable();  // no matching disable: must be ignored
  fiber_preempt_disable();
  fiber_preempt_enable();
  g_other_ran.store(false);
  g_stop.store(false);
  fiber_t other;
  if (fiber_create(&other, nullptr, mark, nullptr) != 0) return nullptr;
  std::uint64_t t0 = fiber_test::now_ns();
  while (!g_other_ran.load(std::memory_order_relaxed) && fiber_test::now_ns() - t0 < 3'000'000'000ull) {
  }
  bool ran = g_other_ran.load();
  fiber_join(other, nullptr);
  return reinterpret_cast<void*>(ran ? 1 : 2);
}
}  // namespace

TEST(preempt_section, UnbalancedEnableIsIgnored) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  fiber_config_t c = fiber_test::config(1, 1000, 0);
  ASSERT_EQ(fiber_init(&c), 0);
  fiber_t f;
  void* r = nullptr;
  ASSERT_EQ(fiber_create(&f, nullptr, unbalanced_enable, nullptr), 0);
  ASSERT_EQ(fiber_join(f, &r), 0);
  EXPECT_EQ(r, reinterpret_cast<void*>(1)) << "the fiber was never preempted again";
  EXPECT_EQ(fiber_shutdown(), 0);
}
