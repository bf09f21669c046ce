// bench/bench_yield.cpp - (a) yield between two ULTs on one kernel thread.
//
// One iteration = the measured ULT yields once and its partner yields once
// (ops = 2 yields); per-yield time = real_time / ops.
// Variants:
//   yield/fiber           two fibers, runtime with klts=1 (default quantum)
//   yield/boost           two Boost fibers on one thread, round_robin
//   yield/pthread_yield   two pthreads pinned to one CPU calling sched_yield
//                         (CFS switches to the other runnable thread; this is
//                         the peer the >= 20x target is judged against)
//   yield/pthread_futex   two pthreads pinned to one CPU handing a token over
//                         with futex wait/wake (a forced handoff; shown too)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "common.hpp"
#ifdef BENCH_HAVE_BOOST
#include "boost_common.hpp"
#endif

namespace {

void yield_fiber(benchmark::State& st) {
  bench::fiber_run(st, {1, FIBER_DEFAULT_TIMESLICE_US}, [&] {
    std::atomic<bool> stop{false};
    fiber_t partner = 0;
    int e = fiber_create(
        &partner, nullptr,
        [](void* p) -> void* {
          auto* s = static_cast<std::atomic<bool>*>(p);
          while (!s->load(std::memory_order_relaxed)) fiber_yield();  // same KLT: no ordering
          return nullptr;
        },
        &stop);
    if (e != 0) {
      st.SkipWithError(bench::err_text("fiber_create", e).c_str());
      return;
    }
    fiber_yield();  // let the partner start
    for (auto _ : st) fiber_yield();
    stop.store(true, std::memory_order_relaxed);
    fiber_join(partner, nullptr);
    bench::set_ops(st, 2);
  });
}

#ifdef BENCH_HAVE_BOOST
void yield_boost(benchmark::State& st) {
  bench::boost_run([&] {
    bool stop = false;
    boost::fibers::fiber partner([&] {
      while (!stop) boost::this_fiber::yield();
    });
    boost::this_fiber::yield();
    for (auto _ : st) boost::this_fiber::yield();
    stop = true;
    partner.join();
    bench::set_ops(st, 2);
  });
}
#endif

template <class Partner, class Measured>
void pinned_pair(Partner partner, Measured measured) {
  const int cpu = bench::first_allowed_cpu();
  bench::thread_pair(cpu, cpu, partner, measured);
}

void yield_pthread_yield(benchmark::State& st) {
  std::atomic<bool> stop{false};
  pinned_pair(
      [&] {
        while (!stop.load(std::memory_order_relaxed)) sched_yield();  // a flag only
      },
      [&] {
        for (auto _ : st) sched_yield();
        stop.store(true, std::memory_order_relaxed);
      });
  bench::set_ops(st, 2);
}

long futex(std::atomic<int>* addr, int op, int val) {
  return syscall(SYS_futex, reinterpret_cast<int*>(addr), op, val, nullptr, nullptr, 0);
}

void yield_pthread_futex(benchmark::State& st) {
  std::atomic<int> turn{0};  // 0: a's turn, 1: b's turn
  std::atomic<bool> stop{false};
  pinned_pair(
      [&] {
        for (;;) {
          while (turn.load(std::memory_order_acquire) != 1)  // pairs with a's release store
            futex(&turn, FUTEX_WAIT_PRIVATE, 0);
          if (stop.load(std::memory_order_relaxed)) return;  // ordered by the turn handoff
          turn.store(0, std::memory_order_release);           // pairs with a's acquire load
          futex(&turn, FUTEX_WAKE_PRIVATE, 1);
        }
      },
      [&] {
        for (auto _ : st) {
          turn.store(1, std::memory_order_release);  // pairs with b's acquire load
          futex(&turn, FUTEX_WAKE_PRIVATE, 1);
          while (turn.load(std::memory_order_acquire) != 0)  // pairs with b's release store
            futex(&turn, FUTEX_WAIT_PRIVATE, 1);
        }
        stop.store(true, std::memory_order_relaxed);  // published by the release below
        turn.store(1, std::memory_order_release);
        futex(&turn, FUTEX_WAKE_PRIVATE, 1);
      });
  bench::set_ops(st, 2);
}

void register_all() {
  benchmark::RegisterBenchmark("yield/fiber", yield_fiber)->UseRealTime();
#ifdef BENCH_HAVE_BOOST
  benchmark::RegisterBenchmark("yield/boost", yield_boost)->UseRealTime();
#endif
  benchmark::RegisterBenchmark("yield/pthread_yield", yield_pthread_yield)->UseRealTime();
  benchmark::RegisterBenchmark("yield/pthread_futex", yield_pthread_futex)->UseRealTime();
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
