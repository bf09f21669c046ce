// bench/bench_create.cpp - (b) create + join, serial (one iteration = one pair).
// Variants:
//   create/fiber           C API, runtime klts=1, default stack and quantum;
//                          the loop runs in a fiber, as Boost's runs in one
//   create/fiber_allklts   the same with klts=0 (every CPU): the child may be
//                          stolen by another KLT (informational)
//   create/fiber_thread    fiber::thread (C++ API), klts=1, when fiber.hpp exists
//   create/boost           Boost.Fiber, pooled_fixedsize_stack of 16 KiB
//   create/pthread         pthread_create with a 16 KiB stack + pthread_join
#include <atomic>

#include "common.hpp"
#ifdef BENCH_HAVE_BOOST
#include "boost_common.hpp"
#endif
#if __has_include("fiber/fiber.hpp") && defined(BENCH_HAVE_FIBER_HPP)
#include "fiber/fiber.hpp"
#define BENCH_FIBER_THREAD 1
#endif

namespace {

void* nop(void* p) {
  benchmark::DoNotOptimize(p);
  return p;
}

void create_fiber_klts(benchmark::State& st, unsigned klts) {
  bench::fiber_run(st, {klts, FIBER_DEFAULT_TIMESLICE_US}, [&] {
    for (auto _ : st) {
      fiber_t f = 0;
      if (int e = fiber_create(&f, nullptr, nop, nullptr)) {
        st.SkipWithError(bench::err_text("fiber_create", e).c_str());
        break;
      }
      if (int e = fiber_join(f, nullptr)) {
        st.SkipWithError(bench::err_text("fiber_join", e).c_str());
        break;
      }
    }
  });
}
void create_fiber(benchmark::State& st) { create_fiber_klts(st, 1); }
void create_fiber_allklts(benchmark::State& st) { create_fiber_klts(st, 0); }

#ifdef BENCH_FIBER_THREAD
void create_fiber_thread(benchmark::State& st) {
  bench::fiber_run(st, {1, FIBER_DEFAULT_TIMESLICE_US}, [&] {
    int x = 0;
    for (auto _ : st) {
      fiber::thread t([&x] { benchmark::DoNotOptimize(x); });
      t.join();
    }
  });
}
#endif

#ifdef BENCH_HAVE_BOOST
void create_boost(benchmark::State& st) {
  bench::boost_run([&] {
    boost::fibers::pooled_fixedsize_stack salloc(bench::kBoostStack);
    int x = 0;
    for (auto _ : st) {
      boost::fibers::fiber f(std::allocator_arg, salloc, [&x] { benchmark::DoNotOptimize(x); });
      f.join();
    }
  });
}
#endif

void create_pthread(benchmark::State& st) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 16 * 1024);
  for (auto _ : st) {
    pthread_t t;
    if (int e = pthread_create(&t, &attr, nop, nullptr)) {
      st.SkipWithError(bench::err_text("pthread_create", e).c_str());
      break;
    }
    pthread_join(t, nullptr);
  }
  pthread_attr_destroy(&attr);
}

void register_all() {
  benchmark::RegisterBenchmark("create/fiber", create_fiber)->UseRealTime();
  benchmark::RegisterBenchmark("create/fiber_allklts", create_fiber_allklts)->UseRealTime();
#ifdef BENCH_FIBER_THREAD
  benchmark::RegisterBenchmark("create/fiber_thread", create_fiber_thread)->UseRealTime();
#endif
#ifdef BENCH_HAVE_BOOST
  benchmark::RegisterBenchmark("create/boost", create_boost)->UseRealTime();
#endif
  benchmark::RegisterBenchmark("create/pthread", create_pthread)->UseRealTime();
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
