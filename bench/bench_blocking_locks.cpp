// bench/bench_blocking_locks.cpp - libc's locks inside fibers (issue 12 item 1,
// core/src/interpose_locks.cpp).  A plain program (no Google Benchmark): it
// prints one markdown table.
//
//   contended   4 workers, each `iters` times: lock; ++shared; a little work
//               (kWork spins); unlock.  ns per acquisition, best of `reps`.
//               std::mutex in fibers (interposed) and fiber::mutex in fibers,
//               on 1 and 2 KLTs, quantum 1 ms; std::mutex on 4 std::threads.
//   uncontended one party: lock+unlock of a pthread mutex, ns per pair:
//               a fiber through the interposer ("after"); a fiber calling
//               libc's function directly ("before": what every call was
//               without the interposer); the same two on an OS thread.
//
//   hold        (--hold) std::mutex in fibers with the hold (a holder is not
//               preempted, I9) and without it (FIBER_KNOB_NO_LOCK_HOLD).
//
//   bench_blocking_locks [--quick] [--hold]
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "fiber/detail/testing.h"
#include "fiber/fiber.h"
#include "fiber/mutex.hpp"

namespace {

constexpr int kWorkers = 4;
constexpr unsigned kWork = 50;
unsigned g_iters = 200000;
unsigned g_reps = 5;
unsigned g_uncontended = 20000000;

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

__attribute__((noinline)) void work() {
  for (unsigned i = 0; i < kWork; ++i) asm volatile("" ::: "memory");
}

std::mutex g_std;
fiber::mutex g_fib;
std::uint64_t g_shared = 0;

template <class M>
void worker(M& m) {
  for (unsigned i = 0; i < g_iters; ++i) {
    std::lock_guard<M> g(m);
    ++g_shared;
    work();
  }
}

template <class M>
void* fiber_worker(void* m) {
  worker(*static_cast<M*>(m));
  return nullptr;
}

// ns per acquisition of 4 fibers on `klts` KLTs; 0 on a broken run.
template <class M>
double contended_fibers(M& m, unsigned klts) {
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = klts;
  c.timeslice_us = 1000;
  if (fiber_init(&c) != 0) return 0;
  double best = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {
    g_shared = 0;
    std::uint64_t t0 = now_ns();
    fiber_t ids[kWorkers];
    for (fiber_t& id : ids) fiber_create(&id, nullptr, fiber_worker<M>, &m);
    for (fiber_t id : ids) fiber_join(id, nullptr);
    double ns = static_cast<double>(now_ns() - t0) / (double{kWorkers} * g_iters);
    if (g_shared != std::uint64_t{kWorkers} * g_iters) ns = 0;  // broken: reported as such
    if (ns < best) best = ns;
  }
  fiber_shutdown();
  return best;
}

double contended_threads() {
  double best = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {
    g_shared = 0;
    std::uint64_t t0 = now_ns();
    std::vector<std::thread> ts;
    for (int i = 0; i < kWorkers; ++i) ts.emplace_back([] { worker(g_std); });
    for (auto& t : ts) t.join();
    double ns = static_cast<double>(now_ns() - t0) / (double{kWorkers} * g_iters);
    if (ns < best) best = ns;
  }
  return best;
}

using lock_fn = int (*)(pthread_mutex_t*);
pthread_mutex_t g_pm = PTHREAD_MUTEX_INITIALIZER;
double g_result = 0;

// The calling thread's CPU time: on this shared 2-core VM wall time mostly
// measures the other tenants (load average ~9 while this was written).
std::uint64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// In a fiber (1 KLT, nothing else runnable) the thread is the KLT; a tick's
// handler time lands on its clock too.
double uncontended(lock_fn lock, lock_fn unlock) {
  std::uint64_t t0 = cpu_ns();
  for (unsigned i = 0; i < g_uncontended; ++i) {
    lock(&g_pm);
    asm volatile("" ::: "memory");
    unlock(&g_pm);
  }
  return static_cast<double>(cpu_ns() - t0) / g_uncontended;
}

lock_fn g_lock = nullptr, g_unlock = nullptr;  // what the fiber below calls
lock_fn g_libc_lock = nullptr, g_libc_unlock = nullptr;

void* fiber_uncontended(void*) {
  g_result = uncontended(g_lock, g_unlock);
  return nullptr;
}

double uncontended_in_fiber(lock_fn lock, lock_fn unlock) {
  g_lock = lock;
  g_unlock = unlock;
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 1;
  c.timeslice_us = 1000;
  double best = 1e30;
  if (fiber_init(&c) != 0) return 0;
  for (unsigned r = 0; r < g_reps; ++r) {
    fiber_t id;
    fiber_create(&id, nullptr, fiber_uncontended, nullptr);
    fiber_join(id, nullptr);
    if (g_result < best) best = g_result;
  }
  fiber_shutdown();
  return best;
}

double best_of(lock_fn lock, lock_fn unlock) {
  double best = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {
    double v = uncontended(lock, unlock);
    if (v < best) best = v;
  }
  return best;
}

}  // namespace

void hold_table() {
  std::printf("| std::mutex in fibers, 4 workers (ns per acquisition, best of %u) | hold | no hold |\n"
              "|---|---|---|\n", g_reps);
  for (unsigned klts : {1u, 2u}) {
    double with = contended_fibers(g_std, klts);
    fiber_test_set_knob(FIBER_KNOB_NO_LOCK_HOLD, 1);
    double without = contended_fibers(g_std, klts);
    fiber_test_set_knob(FIBER_KNOB_NO_LOCK_HOLD, 0);
    std::printf("| %u KLT%s | %.1f | %.1f |\n", klts, klts > 1 ? "s" : "", with, without);
  }
}

int main(int argc, char** argv) {
  bool hold = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_iters = 20000;
      g_reps = 2;
      g_uncontended = 2000000;
    } else if (std::strcmp(argv[i], "--hold") == 0) {
      hold = true;
    }
  }
  if (hold) {
    hold_table();
    return 0;
  }
  std::printf("| contended, 4 workers (ns per acquisition, best of %u) | ns |\n|---|---|\n", g_reps);
  std::printf("| std::mutex in fibers, 1 KLT | %.1f |\n", contended_fibers(g_std, 1));
  std::printf("| std::mutex in fibers, 2 KLTs | %.1f |\n", contended_fibers(g_std, 2));
  std::printf("| fiber::mutex in fibers, 1 KLT | %.1f |\n", contended_fibers(g_fib, 1));
  std::printf("| fiber::mutex in fibers, 2 KLTs | %.1f |\n", contended_fibers(g_fib, 2));
  std::printf("| std::mutex on 4 std::threads | %.1f |\n", contended_threads());
  // libc's own functions, whichever way libfiber is linked (static: the
  // executable defines the interposers; shared: libfiber.so does).
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc) {
    g_libc_lock = reinterpret_cast<lock_fn>(dlsym(libc, "pthread_mutex_lock"));
    g_libc_unlock = reinterpret_cast<lock_fn>(dlsym(libc, "pthread_mutex_unlock"));
  }
  if (!g_libc_lock || !g_libc_unlock) {
    std::printf("libc's pthread_mutex_lock not found\n");
    return 1;
  }
  std::printf("\n| uncontended pthread_mutex lock+unlock (thread CPU time, best of %u) | ns |\n|---|---|\n", g_reps);
  std::printf("| fiber, interposed (after) | %.2f |\n", uncontended_in_fiber(pthread_mutex_lock, pthread_mutex_unlock));
  std::printf("| fiber, libc called directly (before) | %.2f |\n", uncontended_in_fiber(g_libc_lock, g_libc_unlock));
  std::printf("| OS thread, interposed | %.2f |\n", best_of(pthread_mutex_lock, pthread_mutex_unlock));
  std::printf("| OS thread, libc called directly | %.2f |\n", best_of(g_libc_lock, g_libc_unlock));
  return 0;
}
