// bench/common.hpp - helpers shared by the side-by-side benchmarks.
//
// Every topic is one binary in which the fiber, Boost.Fiber and pthread
// variants are registered together, so that one run measures them on the same
// machine state.  Conventions the table script (papers/scripts/bench_table.py)
// relies on:
//   * names are "<topic>/<variant>" (e.g. "yield/fiber"); the table maps
//     variants to columns;
//   * every benchmark uses real time (the measured loop often runs on a thread
//     other than Google Benchmark's, whose CPU time would be meaningless);
//   * counter "ops" = operations per iteration (2 yields per round trip, the
//     ULTs of one skynet tree, ...): per-op time = real_time / ops;
//   * any other counter is a measured value (lateness median/p99 in ns).
// A variant that cannot run (library missing, resource limit hit) calls
// SkipWithError with the exact error, so the table can show it.
#pragma once

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "fiber/fiber.h"

namespace bench {

// FIBER_BENCH_QUICK=1 (set by bench/run.py --quick): CI-sized problem sizes.
inline bool quick() {
  const char* q = std::getenv("FIBER_BENCH_QUICK");
  return q != nullptr && q[0] != '\0' && q[0] != '0';
}

inline void set_ops(benchmark::State& st, double ops) {
  st.counters["ops"] = benchmark::Counter(ops);
}

inline std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

inline const char* errno_name(int e) {
  switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EDEADLK: return "EDEADLK";
    case ENOSYS: return "ENOSYS";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "E?";
  }
}

// "fiber_create returned EAGAIN (Resource temporarily unavailable)"
inline std::string err_text(const char* what, int e) {
  return std::string(what) + " returned " + errno_name(e) + " (" + std::strerror(e) + ")";
}

// ---------------------------------------------------------------------------
// fiber: run `body` inside one fiber of a runtime started with `klts` KLTs and
// quantum `timeslice_us`, then shut the runtime down.  Each call of a
// benchmark function gets a fresh runtime, so variants with different
// configurations can share one binary.
struct fiber_cfg {
  unsigned klts;
  unsigned timeslice_us;
  int policy = FIBER_POLICY_FIFO;  // the runtime's default
};

inline bool fiber_run(benchmark::State& st, fiber_cfg c, const std::function<void()>& body) {
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = c.klts;
  cfg.timeslice_us = c.timeslice_us;
  if (c.policy != FIBER_POLICY_FIFO) {
    if (int e = fiber_set_policy(c.policy)) {
      st.SkipWithError(err_text("fiber_set_policy", e).c_str());
      return false;
    }
  }
  struct policy_reset {
    bool on;
    ~policy_reset() {
      if (on) fiber_set_policy(FIBER_POLICY_FIFO);  // after shutdown: back to the default
    }
  } reset{c.policy != FIBER_POLICY_FIFO};
  if (int e = fiber_init(&cfg)) {
    st.SkipWithError(err_text("fiber_init", e).c_str());
    return false;
  }
  struct box {
    const std::function<void()>* f;
  } b{&body};
  fiber_t f = 0;
  int e = fiber_create(
      &f, nullptr,
      [](void* p) -> void* {
        (*static_cast<box*>(p)->f)();
        return nullptr;
      },
      &b);
  if (e != 0) {
    st.SkipWithError(err_text("fiber_create", e).c_str());
  } else if (int je = fiber_join(f, nullptr)) {
    st.SkipWithError(err_text("fiber_join", je).c_str());
    e = je;
  }
  if (int se = fiber_shutdown()) {
    if (e == 0) st.SkipWithError(err_text("fiber_shutdown", se).c_str());
    e = se;
  }
  return e == 0;
}

// ---------------------------------------------------------------------------
// pthreads
inline int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) return i;
  return 0;
}

inline void pin_self_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

inline unsigned online_cpus() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

// Starts a fiber running *fn (which must outlive it); 0 or the error.
inline int fiber_go(fiber_t* id, std::function<void()>* fn) {
  return fiber_create(
      id, nullptr,
      [](void* p) -> void* {
        (*static_cast<std::function<void()>*>(p))();
        return nullptr;
      },
      fn);
}

// Two pthreads: `partner` on cpu_b, `measured` (which runs the benchmark loop)
// on cpu_a; `measured` starts once `partner` is running.
template <class Partner, class Measured>
void thread_pair(int cpu_a, int cpu_b, Partner partner, Measured measured) {
  std::atomic<bool> started{false};
  std::thread b([&] {
    pin_self_to(cpu_b);
    started.store(true, std::memory_order_release);  // pairs with the acquire load below
    partner();
  });
  std::thread a([&] {
    pin_self_to(cpu_a);
    while (!started.load(std::memory_order_acquire)) sched_yield();  // pairs with the store above
    measured();
  });
  a.join();
  b.join();
}

// The second CPU this process may run on, or the first when there is one.
inline int second_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  int seen = 0, first = 0;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) {
      if (seen++ == 1) return i;
      first = i;
    }
  return first;
}

// Percentile (0..1) of a sample, nearest-rank.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

}  // namespace bench

// Every binary: Google Benchmark's main, after registering benchmarks.
#define FIBER_BENCH_MAIN(register_fn)                              \
  int main(int argc, char** argv) {                                \
    benchmark::Initialize(&argc, argv);                            \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    register_fn();                                                 \
    benchmark::RunSpecifiedBenchmarks();                           \
    benchmark::Shutdown();                                         \
    return 0;                                                      \
  }
