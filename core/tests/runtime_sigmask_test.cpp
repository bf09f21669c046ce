// core/tests/runtime_sigmask_test.cpp - the program's signals while the
// runtime runs (issue 14, item 4; signals.cpp, I8):
//   - a handler the program installs for the preemption signal, before or
//     after fiber_init, neither turns preemption off nor is starved: it is
//     called for every such signal that is not a runtime tick, and it is the
//     installed handler after fiber_shutdown;
//   - a fiber's signal mask is its own: it does not leak to the next fiber on
//     the KLT, and blocking the preemption signal does not stop the ticks.
// Never use gtest assertions inside a fiber (test_util.hpp): fibers record
// results in atomics, the test thread checks them.
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

std::atomic<int> g_calls{0};
std::atomic<bool> g_other_ran{false};

void on_prof(int, siginfo_t*, void*) { g_calls.fetch_add(1, std::memory_order_relaxed); }  // relaxed: a count
void on_prof_plain(int) { g_calls.fetch_add(1, std::memory_order_relaxed); }                // relaxed: a count

void install_prof(void (*h)(int, siginfo_t*, void*)) {
  struct sigaction sa {};
  sa.sa_sigaction = h;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGPROF, &sa, nullptr), 0);
}

// The calling thread's real mask, straight from the kernel (no interposer).
std::uint64_t real_mask() {
  std::uint64_t m = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &m, sizeof m);
  return m;
}
constexpr std::uint64_t bit(int signo) { return std::uint64_t{1} << (signo - 1); }

bool blocked(int signo) {
  sigset_t s;
  pthread_sigmask(SIG_BLOCK, nullptr, &s);
  return sigismember(&s, signo) == 1;
}

void* mark(void*) {
  g_other_ran.store(true, std::memory_order_relaxed);  // relaxed: a flag
  return nullptr;
}

// 1 if a fiber spinning without calls on this 1-KLT runtime let another run.
void* spin_until_other(void*) {
  g_other_ran.store(false, std::memory_order_relaxed);  // relaxed: a flag
  fiber_t other;
  if (fiber_create(&other, nullptr, mark, nullptr) != 0) return nullptr;
  std::uint64_t end = now_ns() + 3'000'000'000ull;
  while (!g_other_ran.load(std::memory_order_relaxed) && now_ns() < end) spin(2000);  // relaxed: a flag
  bool ran = g_other_ran.load(std::memory_order_relaxed);  // relaxed: a flag
  fiber_join(other, nullptr);
  return reinterpret_cast<void*>(ran ? 1 : 2);
}

void* preemptible(void* (*body)(void*)) {
  fiber_t f = spawn(body);
  EXPECT_NE(f, 0u);
  return f ? join(f) : nullptr;
}

class sigmask_test : public runtime_test {
 protected:
  void SetUp() override { g_calls.store(0); }
  void TearDown() override {
    runtime_test::TearDown();
    signal(SIGPROF, SIG_DFL);
  }
};

TEST_F(sigmask_test, HandlerInstalledAfterInitKeepsPreemption) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  start(1, 1000);
  install_prof(on_prof);
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGPROF, nullptr, &now), 0);
  EXPECT_EQ(now.sa_sigaction, on_prof) << "sigaction does not report the program's handler";
  EXPECT_EQ(preemptible(spin_until_other), reinterpret_cast<void*>(1)) << "no preemption after sigaction";
  ASSERT_NE(signal(SIGPROF, on_prof_plain), SIG_ERR);
  EXPECT_EQ(preemptible(spin_until_other), reinterpret_cast<void*>(1)) << "no preemption after signal";
  EXPECT_EQ(g_calls.load(), 0) << "runtime ticks reached the program's handler";
}

void* raise_prof(void*) {
  raise(SIGPROF);
  return nullptr;
}

TEST_F(sigmask_test, ProgramHandlerGetsItsOwnSignalsNotTicks) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  install_prof(on_prof);  // before init: the runtime must chain to it
  start(1, 1000);
  EXPECT_EQ(preemptible(spin_until_other), reinterpret_cast<void*>(1));
  EXPECT_GT(stats().ticks, 0u);
  EXPECT_EQ(g_calls.load(), 0) << "runtime ticks reached the program's handler";
  preemptible(raise_prof);                 // from a fiber, on a KLT
  pthread_kill(pthread_self(), SIGPROF);   // from an OS thread
  EXPECT_EQ(g_calls.load(), 2) << "the program's own SIGPROFs did not reach its handler";
}

// A profiler's own POSIX timer on SIGPROF is SI_TIMER too: told apart by its sigev_value.
TEST_F(sigmask_test, ProgramTimerOnThePreemptionSignalReachesItsHandler) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  install_prof(on_prof);
  start(1, 1000);
  int tag = 0;
  struct sigevent ev {};
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGPROF;
  ev.sigev_value.sival_ptr = &tag;
  timer_t t;
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &ev, &t), 0);
  struct itimerspec its {};
  its.it_interval.tv_nsec = 2'000'000;
  its.it_value.tv_nsec = 2'000'000;
  ASSERT_EQ(timer_settime(t, 0, &its, nullptr), 0);
  EXPECT_EQ(preemptible(spin_until_other), reinterpret_cast<void*>(1));
  std::uint64_t end = now_ns() + 2'000'000'000ull;
  while (g_calls.load() < 5 && now_ns() < end) fiber_sleep_ns(kMs);
  timer_delete(t);
  EXPECT_GE(g_calls.load(), 5) << "the program's timer signals were taken for ticks";
}

TEST_F(sigmask_test, ProgramHandlerIsInstalledAfterShutdown) {
  start(1, 1000);
  install_prof(on_prof);
  ASSERT_EQ(fiber_shutdown(), 0);
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGPROF, nullptr, &now), 0);
  EXPECT_EQ(now.sa_sigaction, on_prof) << "fiber_shutdown dropped the program's handler";
  raise(SIGPROF);
  EXPECT_EQ(g_calls.load(), 1);
}

// ---- per-fiber masks ---------------------------------------------------------

struct mask_seen {
  std::atomic<int> step{0};
  std::atomic<bool> a_logical{false}, a_real{false}, b_logical{false}, b_real{false};
  std::atomic<bool> child_logical{false}, a_after{false}, bad_how{false};
};
mask_seen g_seen;

void* child_of_a(void*) {
  g_seen.child_logical.store(blocked(SIGUSR1));
  return nullptr;
}

void* fiber_a(void*) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  g_seen.a_logical.store(blocked(SIGUSR1));
  g_seen.a_real.store((real_mask() & bit(SIGUSR1)) != 0);
  fiber_t c = spawn(child_of_a);
  if (c) fiber_join(c, nullptr);
  g_seen.step.store(1);
  while (g_seen.step.load() != 2) fiber_yield();  // b runs on this KLT meanwhile
  g_seen.a_after.store(blocked(SIGUSR1) && (real_mask() & bit(SIGUSR1)) != 0);
  pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
  return nullptr;
}

void* fiber_b(void*) {
  while (g_seen.step.load() != 1) fiber_yield();
  g_seen.b_logical.store(blocked(SIGUSR1));
  g_seen.b_real.store((real_mask() & bit(SIGUSR1)) != 0);
  sigset_t s;
  sigemptyset(&s);
  g_seen.bad_how.store(pthread_sigmask(12345, &s, nullptr) == EINVAL &&
                       sigprocmask(12345, &s, nullptr) == -1 && errno == EINVAL);
  g_seen.step.store(2);
  return nullptr;
}

TEST_F(sigmask_test, FiberMaskDoesNotLeakToTheNextFiber) {
  start(1, 0);  // cooperative: the order of a and b is by yields only
  fiber_t a = spawn(fiber_a), b = spawn(fiber_b);
  ASSERT_TRUE(a && b);
  join(a);
  join(b);
  EXPECT_TRUE(g_seen.a_logical.load() && g_seen.a_real.load()) << "a's own mask was not applied";
  EXPECT_TRUE(g_seen.child_logical.load()) << "a fiber did not inherit its creator's mask";
  EXPECT_FALSE(g_seen.b_logical.load()) << "b sees the mask a set";
  EXPECT_FALSE(g_seen.b_real.load()) << "b's KLT kept the mask a set";
  EXPECT_TRUE(g_seen.a_after.load()) << "a's mask was lost across a switch";
  EXPECT_TRUE(g_seen.bad_how.load()) << "an unknown `how` in a fiber is not EINVAL";
  // OS threads keep libc's behaviour: the mask is the thread's, for real.
  sigset_t s, old;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &s, &old), 0);
  EXPECT_NE(real_mask() & bit(SIGUSR2), 0u);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(real_mask() & bit(SIGUSR2), 0u);
}

std::atomic<int> g_prof_blocked{0};

void* block_prof_then_spin(void*) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPROF);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  g_prof_blocked.store(blocked(SIGPROF) ? 1 : 2);
  void* r = spin_until_other(nullptr);
  pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
  return r;
}

TEST_F(sigmask_test, BlockingThePreemptionSignalKeepsTicks) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  start(1, 1000);
  EXPECT_EQ(preemptible(block_prof_then_spin), reinterpret_cast<void*>(1))
      << "a fiber that blocked SIGPROF was never preempted";
  EXPECT_EQ(g_prof_blocked.load(), 1) << "the fiber's wish to block SIGPROF was not kept";
}

// A program that blocks SIGPROF in main before fiber_init (the KLTs inherit
// the mask) still gets preemption; its fibers see SIGPROF blocked.
TEST_F(sigmask_test, InitFromAThreadThatBlocksTheSignalKeepsTicks) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  sigset_t s, old;
  sigemptyset(&s);
  sigaddset(&s, SIGPROF);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &s, &old), 0);
  start(1, 1000);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(preemptible(spin_until_other), reinterpret_cast<void*>(1))
      << "KLTs inherited a blocked SIGPROF: no preemption";
  EXPECT_EQ(preemptible([](void*) -> void* { return reinterpret_cast<void*>(blocked(SIGPROF) ? 1 : 2); }),
            reinterpret_cast<void*>(1))
      << "a fiber created from main did not get main's mask at fiber_init";
}

std::atomic<int> g_calls_while_blocked{-1};

void* hold_then_release(void*) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPROF);
  sigprocmask(SIG_BLOCK, &s, nullptr);
  raise(SIGPROF);
  g_calls_while_blocked.store(g_calls.load());
  sigprocmask(SIG_UNBLOCK, &s, nullptr);  // the held signal is delivered now
  return nullptr;
}

TEST_F(sigmask_test, SignalHeldWhileBlockedIsDeliveredAtUnblock) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  install_prof(on_prof);
  start(1, 1000);
  preemptible(hold_then_release);
  EXPECT_EQ(g_calls_while_blocked.load(), 0) << "delivered while the fiber blocked it";
  EXPECT_EQ(g_calls.load(), 1) << "not delivered once the fiber unblocked it";
}

}  // namespace
