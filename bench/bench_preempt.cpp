// bench/bench_preempt.cpp - (d) preemption overhead: two CPU-bound fibers on
// one KLT, each running a fixed amount of work, with the quantum off
// (timeslice 0, cooperative) and on (4000 us, the default; 1000 us too).
// One iteration = both fibers' work; overhead = time(ts) / time(ts0) - 1.
// Counter "switches": times a worker saw that the other had run since its own
// last check (0 without preemption; > 0 shows ticks really preempted).
#include <atomic>

#include "common.hpp"

namespace {

std::atomic<int> g_last{-1};     // which worker checked last
std::atomic<long> g_switches{0};  // relaxed: read after both workers are joined

struct work_arg {
  int who;
  std::uint64_t n;
};

void* cpu_work(void* p) {
  const work_arg a = *static_cast<const work_arg*>(p);
  std::uint64_t x = static_cast<std::uint64_t>(a.who) + 1;
  for (std::uint64_t i = 0; i < a.n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    asm volatile("" : "+r"(x));  // keep the loop: no closed form, no vectorising
    if ((i & 0xffff) == 0) {
      // relaxed: a statistic; same KLT
      if (g_last.exchange(a.who, std::memory_order_relaxed) != a.who)
        g_switches.fetch_add(1, std::memory_order_relaxed);
    }
  }
  benchmark::DoNotOptimize(x);
  return nullptr;
}

void preempt_fiber(benchmark::State& st, unsigned ts) {
  const std::uint64_t n = bench::quick() ? 10000000u : 50000000u;
  long switches = 0;
  bench::fiber_run(st, {1, ts}, [&] {
    for (auto _ : st) {
      g_last.store(-1, std::memory_order_relaxed);
      g_switches.store(0, std::memory_order_relaxed);
      work_arg args[2] = {{0, n}, {1, n}};
      fiber_t ids[2];
      for (int i = 0; i < 2; ++i) {
        if (int e = fiber_create(&ids[i], nullptr, cpu_work, &args[i])) {
          st.SkipWithError(bench::err_text("fiber_create", e).c_str());
          return;
        }
      }
      for (fiber_t id : ids) fiber_join(id, nullptr);
      // Each worker's first check counts one switch; more means preemption.
      switches += g_switches.load(std::memory_order_relaxed) - 2;
    }
  });
  st.counters["switches"] =
      benchmark::Counter(static_cast<double>(switches), benchmark::Counter::kAvgIterations);
}

void register_all() {
  for (unsigned ts : {0u, 4000u, 1000u}) {
    std::string name = "preempt/fiber_ts" + std::to_string(ts);
    benchmark::RegisterBenchmark(name.c_str(), preempt_fiber, ts)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
