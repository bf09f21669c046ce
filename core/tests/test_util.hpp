// core/tests/test_util.hpp - helpers shared by the runtime's unit tests
// (runtime_*_test.cpp): a fixture that owns the runtime and resets the test
// knobs, clocks, a spin that stays in the executable's own code (so a tick
// can preempt it), Jain's fairness index, and a fork()ed child with a
// timeout for negative controls that may crash or hang.
//
// Never use gtest assertions inside a fiber: gtest's mutex is a pthread
// mutex, which the lock interposers (interpose_locks.cpp) make safe, but a
// test knob may turn them off (the negative controls), and a failed
// assertion in a fiber would then block its KLT.  Fibers record results in
// atomics; the test thread asserts on them.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fiber/detail/testing.h"
#include "fiber/fiber.h"

namespace fiber_test {

#if defined(FIBER_TSAN) || defined(__SANITIZE_THREAD__)
inline constexpr bool kPreemptive = false;  // the runtime is cooperative under TSan
#else
inline constexpr bool kPreemptive = true;
#endif

// TSan: __tsan_create_fiber counts against its thread limit (8128), and its
// shadow reservations conflict with RLIMIT_AS.
#if defined(FIBER_TSAN) || defined(__SANITIZE_THREAD__)
#define FIBER_SKIP_UNDER_TSAN(why) GTEST_SKIP() << "TSan: " << (why)
#else
#define FIBER_SKIP_UNDER_TSAN(why) \
  do {                             \
  } while (0)
#endif

// ASan: a child forked from a multi-threaded process can inherit one of the
// sanitizer runtime's own locks held by another thread at the fork, and block
// on it when the child creates a thread or allocates (seen: the child's new
// thread in __sanitizer::FutexWait, 6 of 40 runs under CPU load).
#if defined(__SANITIZE_ADDRESS__)
#define FIBER_SKIP_UNDER_ASAN(why) GTEST_SKIP() << "ASan: " << (why)
#else
#define FIBER_SKIP_UNDER_ASAN(why) \
  do {                             \
  } while (0)
#endif

// The process's thread count (/proc/self/status), -1 if unreadable: e.g. a
// child forked from a fiber must have exactly one.
inline int thread_count() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "Threads:", 8) == 0) n = std::atoi(line + 8);
  std::fclose(f);
  return n;
}

// thread_count() once it reaches `want`, or whatever it is after `max_ms`:
// pthread_join returns when the kernel clears the thread's tid, which comes
// before the thread leaves the group's count, so a count read right after a
// join may still include the joined thread.
inline int thread_count_settles_at(int want, int max_ms = 2000) {
  int n = thread_count();
  for (int i = 0; i < max_ms && n != want; ++i) {
    usleep(1000);
    n = thread_count();
  }
  return n;
}

#define FIBER_SKIP_WITHOUT_PREEMPTION()                                   \
  do {                                                                    \
    if (!::fiber_test::kPreemptive) GTEST_SKIP() << "cooperative build"; \
  } while (0)

inline std::uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t cpu_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

constexpr std::uint64_t kMs = 1000000;

// Busy work that makes no calls: a tick landing here is in allowed code.
__attribute__((noinline)) inline void spin(unsigned iterations) {
  for (unsigned i = 0; i < iterations; ++i) asm volatile("" ::: "memory");
}

// Spins in allowed code for about `ns`, reading the clock only every few
// thousand iterations (the clock itself is in the vDSO, not preemptible).
inline void spin_for(std::uint64_t ns) {
  std::uint64_t end = now_ns() + ns;
  while (now_ns() < end) spin(2000);
}

inline double jain_index(const std::vector<double>& x) {
  double sum = 0, sq = 0;
  for (double v : x) {
    sum += v;
    sq += v * v;
  }
  return sq == 0 ? 0.0 : (sum * sum) / (static_cast<double>(x.size()) * sq);
}

inline fiber_stats_t stats() {
  fiber_stats_t s{};
  EXPECT_EQ(fiber_get_stats(&s), 0);
  return s;
}

inline void reset_knobs() {  // every knob, 1 to the last (testing.h)
  for (int k = FIBER_KNOB_NO_PC_CHECK; k <= FIBER_KNOB_NO_SPARE_KLT; ++k)
    fiber_test_set_knob(k, 0);
}

inline fiber_config_t config(unsigned klts, unsigned slice_us, std::size_t stack = 0) {
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = klts;
  c.timeslice_us = slice_us;
  c.stack_size = stack;
  return c;
}

// Base fixture: the test starts the runtime with start(); TearDown shuts it
// down (if running) and resets the knobs and the policy.
class runtime_test : public ::testing::Test {
 protected:
  void start(unsigned klts, unsigned slice_us, int policy = FIBER_POLICY_FIFO,
             std::size_t stack = 0) {
    ASSERT_EQ(fiber_set_policy(policy), 0);
    fiber_config_t c = config(klts, slice_us, stack);
    ASSERT_EQ(fiber_init(&c), 0);
  }
  void TearDown() override {
    reset_knobs();
    fiber_shutdown();  // EINVAL when not running: fine
    fiber_set_policy(FIBER_POLICY_FIFO);
  }
};

// Creates a joinable fiber; returns 0 on failure (checked by the caller).
inline fiber_t spawn(void* (*fn)(void*), void* arg = nullptr, std::size_t stack = 0) {
  fiber_attr_t a;
  fiber_attr_init(&a);
  a.stack_size = stack;
  fiber_t f = 0;
  return fiber_create(&f, &a, fn, arg) == 0 ? f : 0;
}

inline void* join(fiber_t f) {
  void* r = reinterpret_cast<void*>(-1);
  EXPECT_EQ(fiber_join(f, &r), 0);
  return r;
}

// An OS thread that, if the test has not finished after `after_ms`, calls
// `free_waiters` every 10 ms for half a second: a wait that should have
// returned by itself (a timed wait past its deadline, a join that should have
// failed) then returns as woken and fails its check, instead of hanging the
// test until ctest's timeout (a weak kill in the mutant matrix).
class rescuer {
 public:
  template <class F>
  rescuer(int after_ms, F free_waiters)
      : t_([this, after_ms, free_waiters] {
          // acquire: pairs with ~rescuer's release (the test is over: nothing to free)
          for (int i = 0; i < after_ms / 10 + 50 && !done_.load(std::memory_order_acquire); ++i) {
            if (i >= after_ms / 10) free_waiters();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }) {}
  ~rescuer() {
    done_.store(true, std::memory_order_release);
    t_.join();
  }
  rescuer(const rescuer&) = delete;
  rescuer& operator=(const rescuer&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread t_;
};

// Outcome of a body run in a forked child (negative controls that may crash
// or hang).  The child's stderr goes to /dev/null unless
// FIBER_TEST_CHILD_STDERR is set.
enum class child_result { ok, failed, crashed, hung };

inline const char* to_string(child_result r) {
  switch (r) {
    case child_result::ok: return "ok";
    case child_result::failed: return "failed";
    case child_result::crashed: return "crashed";
    case child_result::hung: return "hung";
  }
  return "?";
}

// body() returns 0 for "behaved", nonzero for "misbehaved".  Call with no
// runtime running in this process (fork keeps only the calling thread).
inline child_result run_child(const std::function<int()>& body, unsigned timeout_s, int* exit_code = nullptr) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (!getenv("FIBER_TEST_CHILD_STDERR")) {  // set it to see a control child's report
      FILE* null = freopen("/dev/null", "w", stderr);
      (void)null;
    }
    struct rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // a crash is an expected outcome: no core file
    alarm(timeout_s);
    _exit(body());
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return child_result::failed;
  if (WIFEXITED(st) && exit_code) *exit_code = WEXITSTATUS(st);
  if (WIFEXITED(st)) return WEXITSTATUS(st) == 0 ? child_result::ok : child_result::failed;
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) return child_result::hung;
  return child_result::crashed;
}

}  // namespace fiber_test
