// bench/bench_futex.cpp - futex waits through syscall() (issue 12,
// core/src/interpose_futex.cpp).  A plain program (no Google Benchmark): it
// prints one markdown table.  Compiled -std=c++20 (std::atomic::wait).
//
//   future ping-pong   two parties hand a value back and forth through a fresh
//                      std::promise/std::future pair per hand-off (libstdc++'s
//                      futex.cc: FUTEX_WAIT/FUTEX_WAKE): ns per round trip.
//                      Two fibers on 1 KLT (quantum 1 ms) vs two std::threads.
//   atomic ping-pong   the same with one std::atomic<int> and wait/notify_one
//                      (C++20, <bits/atomic_wait.h>).
//   syscall(getpid)    from an OS thread: libc's syscall() called directly
//                      ("before": what every call was without the
//                      interposer) vs through libfiber's syscall() ("after").
//                      Interleaved, best of `reps` runs of `n` calls each.
//
//   bench_futex [--quick]
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <thread>
#include <vector>

#include "fiber/fiber.h"

namespace {

unsigned g_rounds = 20000;
unsigned g_reps = 5;
unsigned g_calls = 2000000;

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---- future ping-pong -------------------------------------------------------------

struct future_pp {
  std::vector<std::promise<unsigned>> ping, pong;
  std::vector<std::future<unsigned>> ping_f, pong_f;
  explicit future_pp(unsigned n) : ping(n), pong(n) {
    for (unsigned i = 0; i < n; ++i) {
      ping_f.push_back(ping[i].get_future());
      pong_f.push_back(pong[i].get_future());
    }
  }
};

void future_ponger(future_pp& p) {
  for (unsigned i = 0; i < g_rounds; ++i) p.pong[i].set_value(p.ping_f[i].get() + 1);
}
bool future_pinger(future_pp& p) {
  bool ok = true;
  for (unsigned i = 0; i < g_rounds; ++i) {
    p.ping[i].set_value(i);
    ok &= p.pong_f[i].get() == i + 1;
  }
  return ok;
}

// ---- atomic ping-pong -----------------------------------------------------------------

std::atomic<unsigned> g_turn{0};

void atomic_party(unsigned me) {
  const unsigned end = 2 * g_rounds;
  for (;;) {
    unsigned t = g_turn.load(std::memory_order_acquire);  // acquire: pairs with the other's release
    while (t % 2 != me && t < end) {
      g_turn.wait(t, std::memory_order_acquire);  // acquire: as above
      t = g_turn.load(std::memory_order_acquire);  // acquire: as above
    }
    if (t >= end) return;
    g_turn.store(t + 1, std::memory_order_release);  // release: pairs with the waiter's acquire
    g_turn.notify_one();
  }
}

// ---- the two harnesses: fibers on 1 KLT, std::threads ---------------------------------

struct pair_fn {
  void (*a)(void*);
  void (*b)(void*);
  void* arg;
};

void* run_a(void* p) {
  auto* f = static_cast<pair_fn*>(p);
  f->a(f->arg);
  return nullptr;
}
void* run_b(void* p) {
  auto* f = static_cast<pair_fn*>(p);
  f->b(f->arg);
  return nullptr;
}

// ns per round trip; b is started first (it waits first).
double on_fibers(pair_fn fn) {
  const std::uint64_t t0 = now_ns();
  fiber_t x = 0, y = 0;
  if (fiber_create(&y, nullptr, run_b, &fn) != 0 || fiber_create(&x, nullptr, run_a, &fn) != 0) return 0;
  fiber_join(y, nullptr);
  fiber_join(x, nullptr);
  return static_cast<double>(now_ns() - t0) / g_rounds;
}

double on_threads(pair_fn fn) {
  const std::uint64_t t0 = now_ns();
  std::thread y([&] { fn.b(fn.arg); });
  std::thread x([&] { fn.a(fn.arg); });
  y.join();
  x.join();
  return static_cast<double>(now_ns() - t0) / g_rounds;
}

std::atomic<bool> g_bad{false};

template <class Harness>
double best_future(Harness h) {
  double best = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {
    future_pp p(g_rounds);
    pair_fn fn{[](void* a) { if (!future_pinger(*static_cast<future_pp*>(a))) g_bad.store(true); },
               [](void* a) { future_ponger(*static_cast<future_pp*>(a)); }, &p};
    best = std::min(best, h(fn));
  }
  return best;
}

template <class Harness>
double best_atomic(Harness h) {
  double best = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {
    g_turn.store(0);
    pair_fn fn{[](void*) { atomic_party(0); }, [](void*) { atomic_party(1); }, nullptr};
    best = std::min(best, h(fn));
  }
  return best;
}

// ---- syscall(SYS_getpid) before/after ------------------------------------------------------

using syscall_fn = long (*)(long, ...);

double ns_per_call(syscall_fn f) {
  const std::uint64_t t0 = now_ns();
  for (unsigned i = 0; i < g_calls; ++i) f(SYS_getpid);
  return static_cast<double>(now_ns() - t0) / g_calls;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_rounds = 2000;
      g_reps = 2;
      g_calls = 200000;
    }
  // libc's own syscall(), whatever libfiber's interposer is (static or shared).
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto before = libc ? reinterpret_cast<syscall_fn>(dlsym(libc, "syscall")) : nullptr;
  syscall_fn after = &syscall;
  if (!before || before == after) {
    std::fprintf(stderr, "bench_futex: libc's syscall() not found apart from the interposer\n");
    return 1;
  }
  double b = 1e30, a = 1e30;
  for (unsigned r = 0; r < g_reps; ++r) {  // interleaved
    b = std::min(b, ns_per_call(before));
    a = std::min(a, ns_per_call(after));
  }
  const double fut_thr = best_future(on_threads), atm_thr = best_atomic(on_threads);

  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 1;
  c.timeslice_us = 1000;
  if (fiber_init(&c) != 0) return 1;
  const double fut_fib = best_future(on_fibers), atm_fib = best_atomic(on_fibers);
  fiber_shutdown();
  if (g_bad.load()) {
    std::fprintf(stderr, "bench_futex: a ping-pong returned a wrong value\n");
    return 1;
  }
  std::printf("| futex waits through syscall() (best of %u) | ns |\n|---|---|\n", g_reps);
  std::printf("| std::future ping-pong, 2 fibers, 1 KLT (round trip) | %.0f |\n", fut_fib);
  std::printf("| std::future ping-pong, 2 std::threads (round trip) | %.0f |\n", fut_thr);
  std::printf("| std::atomic wait/notify_one ping-pong, 2 fibers, 1 KLT | %.0f |\n", atm_fib);
  std::printf("| std::atomic wait/notify_one ping-pong, 2 std::threads | %.0f |\n", atm_thr);
  std::printf("| syscall(SYS_getpid), OS thread, libc's syscall() (before) | %.1f |\n", b);
  std::printf("| syscall(SYS_getpid), OS thread, through the interposer (after) | %.1f |\n", a);
  return 0;
}
