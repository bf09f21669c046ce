// bench/bench_lateness.cpp - (e) wake-up lateness: one ULT sleeps 100 us again
// and again while another spins on the same single kernel thread.  One
// iteration = one sleep; its manual time is the lateness (wake-up minus the
// requested deadline).  Counters lat_median_ns / lat_p99_ns are over the
// samples of one run.  With FIBER_BENCH_SAMPLES_DIR set, every sample is also
// appended to <dir>/lateness.csv (variant,lateness_ns): the data of the
// lateness CDF that `tools/fiberctl report` draws.
// Variants:
//   lateness/fiber_ts4000, lateness/fiber_ts1000   klts=1, the given quantum
//   lateness/pthread_pinned   two pthreads pinned to one CPU: clock_nanosleep
//                             vs a spinning thread (the kernel's own answer)
// Boost.Fiber cannot preempt the spinner (the sleeper would never wake), so
// it has no variant.  Go's peer is bench/go/lateness.go (GOMAXPROCS=1).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.hpp"

namespace {

constexpr std::uint64_t kSleepNs = 100000;

void dump(const char* variant, const std::vector<double>& lat) {
  const char* dir = std::getenv("FIBER_BENCH_SAMPLES_DIR");
  if (dir == nullptr || lat.empty()) return;
  std::FILE* f = std::fopen((std::string(dir) + "/lateness.csv").c_str(), "a");
  if (f == nullptr) return;
  for (double v : lat) std::fprintf(f, "%s,%.0f\n", variant, v);
  std::fclose(f);
}

void report(benchmark::State& st, const std::vector<double>& lat) {
  st.counters["lat_median_ns"] = bench::percentile(lat, 0.5);
  st.counters["lat_p99_ns"] = bench::percentile(lat, 0.99);
  st.counters["lat_max_ns"] = bench::percentile(lat, 1.0);
}

template <class Sleep>
void sample(benchmark::State& st, std::vector<double>& lat, Sleep sleep) {
  for (auto _ : st) {
    const std::uint64_t t0 = bench::now_ns();
    sleep();
    const double late = static_cast<double>(bench::now_ns() - t0) - static_cast<double>(kSleepNs);
    lat.push_back(late);
    st.SetIterationTime(late * 1e-9);
  }
}

void lateness_fiber(benchmark::State& st, unsigned ts) {
  std::vector<double> lat;
  bench::fiber_run(st, {1, ts}, [&] {
    std::atomic<bool> stop{false};
    fiber_t spinner = 0;
    std::function<void()> spin = [&] {
      while (!stop.load(std::memory_order_relaxed)) {  // a flag only
      }
    };
    if (int e = bench::fiber_go(&spinner, &spin)) {
      st.SkipWithError(bench::err_text("fiber_create", e).c_str());
      return;
    }
    fiber_yield();  // the spinner starts and holds the KLT until a tick
    int err = 0;
    sample(st, lat, [&] {
      if (int e = fiber_sleep_ns(kSleepNs)) err = e;
    });
    stop.store(true, std::memory_order_relaxed);
    fiber_join(spinner, nullptr);
    if (err != 0) st.SkipWithError(bench::err_text("fiber_sleep_ns", err).c_str());
  });
  dump(("fiber_ts" + std::to_string(ts)).c_str(), lat);
  report(st, lat);
}

void lateness_pthread(benchmark::State& st) {
  std::vector<double> lat;
  std::atomic<bool> stop{false};
  const int cpu = bench::first_allowed_cpu();
  bench::thread_pair(
      cpu, cpu,
      [&] {
        while (!stop.load(std::memory_order_relaxed)) {  // a flag only
        }
      },
      [&] {
        sample(st, lat, [] {
          timespec ts{0, static_cast<long>(kSleepNs)};
          clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
        });
        stop.store(true, std::memory_order_relaxed);
      });
  dump("pthread_pinned", lat);
  report(st, lat);
}

void register_all() {
  const int iters = bench::quick() ? 40 : 250;
  for (unsigned ts : {4000u, 1000u}) {
    std::string name = "lateness/fiber_ts" + std::to_string(ts);
    benchmark::RegisterBenchmark(name.c_str(), lateness_fiber, ts)
        ->UseManualTime()
        ->Iterations(iters)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("lateness/pthread_pinned", lateness_pthread)
      ->UseManualTime()
      ->Iterations(iters)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
