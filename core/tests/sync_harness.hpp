// core/tests/sync_harness.hpp - run one test body over OS threads, fibers, or both.
//
// exec::os_thread  workers are std::threads (blocking primitives block in the kernel)
// exec::fiber      workers are fibers on several KLTs with preemption on
// exec::mixed      even-numbered workers are fibers, odd ones OS threads, sharing
//                  the same primitives (the contract allows both at once)
// A test fixture parameterised on exec starts the runtime for the fiber kinds
// (runtime_scope) and skips them only when the runtime reports ENOSYS (a
// build without the scheduler); the real runtime never does.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"

namespace fiber_test {

enum class exec { os_thread, fiber, mixed };

inline std::string exec_name(const ::testing::TestParamInfo<exec>& info) {
  switch (info.param) {
    case exec::os_thread: return "os_thread";
    case exec::fiber: return "fiber";
    default: return "mixed";
  }
}

inline bool uses_fibers(exec e) { return e != exec::os_thread; }

// KLTs and quantum for the fiber runs: more KLTs than the 2 cores of the CI
// machine, and a short quantum so preemption lands inside critical sections.
inline constexpr unsigned kKlts = 3;
inline constexpr unsigned kTimesliceUs = 1000;

class runtime_scope {
 public:
  explicit runtime_scope(exec e) {
    if (!uses_fibers(e)) return;
    fiber_config_t cfg;
    fiber_config_init(&cfg);
    cfg.klts = kKlts;
    cfg.timeslice_us = kTimesliceUs;
    const int rc = fiber_init(&cfg);
    started_ = (rc == 0);
    available_ = (rc == 0 || rc == EBUSY);
    if (!available_ && rc != ENOSYS) ADD_FAILURE() << "fiber_init failed: " << rc;
  }
  ~runtime_scope() {
    if (started_) {
      EXPECT_EQ(fiber_shutdown(), 0);
    }
  }
  runtime_scope(const runtime_scope&) = delete;
  runtime_scope& operator=(const runtime_scope&) = delete;
  bool available() const { return available_; }

 private:
  bool started_ = false;
  bool available_ = true;
};

// Workers of one kind (or alternating kinds for exec::mixed).
class group {
 public:
  explicit group(exec e) : e_(e) {}
  ~group() { join(); }
  group(const group&) = delete;
  group& operator=(const group&) = delete;

  void spawn(std::function<void()> fn) {
    const bool as_fiber = e_ == exec::fiber || (e_ == exec::mixed && n_ % 2 == 0);
    ++n_;
    if (!as_fiber) {
      threads_.emplace_back(std::move(fn));
      return;
    }
    auto* heap_fn = new std::function<void()>(std::move(fn));
    fiber_t id = 0;
    const int rc = fiber_create(&id, nullptr, &trampoline, heap_fn);
    if (rc != 0) {
      delete heap_fn;
      ADD_FAILURE() << "fiber_create failed: " << rc;
      return;
    }
    fibers_.push_back(id);
  }

  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    for (fiber_t f : fibers_) EXPECT_EQ(fiber_join(f, nullptr), 0);
    fibers_.clear();
  }

 private:
  static void* trampoline(void* arg) {
    std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(arg));
    (*fn)();
    return nullptr;
  }

  exec e_;
  std::size_t n_ = 0;
  std::vector<std::thread> threads_;
  std::vector<fiber_t> fibers_;
};

// Yield / sleep without blocking a KLT when called from a fiber.
inline void yield_now() {
  if (fiber_self() != 0) {
    fiber_yield();
  } else {
    std::this_thread::yield();
  }
}
inline void sleep_ms(unsigned ms) {
  if (fiber_self() != 0) {
    fiber_sleep_ns(std::uint64_t{ms} * 1000000u);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
}

inline std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
inline timespec mono_after_ms(unsigned ms) {
  const std::uint64_t t = mono_ns() + std::uint64_t{ms} * 1000000u;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(t / 1000000000u);
  ts.tv_nsec = static_cast<long>(t % 1000000000u);
  return ts;
}
inline std::uint64_t to_ns(const timespec& ts) {
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Spin (yielding) until pred() or ~10 s; false on time-out.
template <class Pred>
bool eventually(Pred pred) {
  const std::uint64_t end = mono_ns() + 10'000'000'000ull;
  while (!pred()) {
    if (mono_ns() > end) return false;
    yield_now();
  }
  return true;
}

// Fixture: one test body per exec kind.
class SyncTest : public ::testing::TestWithParam<exec> {
 protected:
  void SetUp() override {
    rt_ = std::make_unique<runtime_scope>(GetParam());
    if (!rt_->available()) GTEST_SKIP() << "fiber runtime not available in this build (ENOSYS)";
  }
  void TearDown() override { rt_.reset(); }
  exec kind() const { return GetParam(); }
  // Worker counts: fibers are cheap, OS threads are not (2-core CI machine).
  int workers() const { return GetParam() == exec::os_thread ? 4 : 12; }

 private:
  std::unique_ptr<runtime_scope> rt_;
};

#define FIBER_SYNC_INSTANTIATE(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(All, suite,                                                  \
                           ::testing::Values(::fiber_test::exec::os_thread,             \
                                             ::fiber_test::exec::fiber,                 \
                                             ::fiber_test::exec::mixed),                \
                           ::fiber_test::exec_name)

}  // namespace fiber_test
