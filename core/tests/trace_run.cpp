// core/tests/trace_run.cpp - a traced run of the native runtime for the trace
// checker (tools/trace_check.py; ctest trace_* tests, core/tests/CMakeLists.txt).
//
//   fiber_trace_run [--rounds N] [--klts K] [--lock-iters N] [--knob K]... [--config PATH]
//
// Exercises every recorded event: creates from the main thread and from
// fibers, named and detached fibers, joins by the main thread and by fibers,
// a mutex + condition ping-pong (park/wake between KLTs), semaphore timed
// waits woken by a fiber and by an OS thread (timers armed, wakes from the OS
// side), sleeps (timer wakes), a CPU-bound fiber (preemption) with a
// preemption-disabled stretch (refused ticks), idle KLTs, and lockers that
// contend for one mutex (fiber_mutex_t and fiber::mutex: barges, queued
// waiters, wake-ups and hand-offs for the lock rules).  The trace goes to
// FIBER_TRACE, or to PATH with --config (fiber_config_t::trace_path).  Exits 0
// when every fiber did its work (the end state a stress test would check).
#include <fiber/detail/testing.h>
#include <fiber/fiber.h>
#include <fiber/mutex.hpp>
#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace {

long g_rounds = 200;
fiber_mutex_t g_m = FIBER_MUTEX_INITIALIZER;
fiber_cond_t g_cv = FIBER_COND_INITIALIZER;
int g_turn = 0;
fiber_sem_t g_sem;
std::atomic<long> g_taken{0}, g_done{0};
constexpr long kItems = 40;  // semaphore items, each a timed wait (20 ms)

void* pingpong(void* a) {
  int me = a != nullptr;
  for (long i = 0; i < g_rounds; ++i) {
    fiber_mutex_lock(&g_m);
    while (g_turn != me) fiber_cond_wait(&g_cv, &g_m);
    g_turn = 1 - me;
    fiber_cond_signal(&g_cv);
    fiber_mutex_unlock(&g_m);
  }
  g_done.fetch_add(1);
  return nullptr;
}

void* consumer(void*) {
  while (g_taken.load() < kItems) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000; }
    if (fiber_sem_timedwait(&g_sem, &ts) == 0) g_taken.fetch_add(1);
  }
  g_done.fetch_add(1);
  return nullptr;
}

void* producer(void*) {
  for (long i = 0; i < kItems / 2; ++i) {
    fiber_sleep_ns(1000 * 1000);
    fiber_sem_post(&g_sem);
  }
  g_done.fetch_add(1);
  return nullptr;
}

void* spinner(void*) {
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
  };
  long end = now() + 30 * 1000 * 1000;
  volatile long sink = 0;
  while (now() < end) sink = sink + 1;  // preempted by the quantum
  fiber_preempt_disable();
  end = now() + 10 * 1000 * 1000;
  while (now() < end) sink = sink + 1;  // ticks refused (count), owed
  fiber_preempt_enable();
  g_done.fetch_add(1);
  return nullptr;
}

// Lockers: kLockers fibers take one fiber::mutex (the C++ header's inline
// paths; the ping-pong above uses fiber_mutex_t, compiled in the library)
// g_lock_iters times each, with a critical section long enough that the
// others spin, queue and are woken or handed the mutex.  The count is atomic:
// a planted double owner (knob 25) must leave the end state right, so that
// only the trace shows it.
constexpr int kLockers = 4;
long g_lock_iters = 1500;
fiber::mutex g_lm;
std::atomic<long> g_locked{0};

void critical_section(long i) {
  g_locked.fetch_add(1, std::memory_order_relaxed);
  volatile long sink = 0;
  for (long j = 0; j < 200 + (i % 7) * 50; ++j) sink = sink + j;
}

void* locker(void*) {
  for (long i = 0; i < g_lock_iters; ++i) {
    if (i % 16 != 0 || !g_lm.try_lock()) g_lm.lock();
    critical_section(i);
    try {
      g_lm.unlock();
    } catch (const std::system_error&) {  // EPERM: only with knob 25 (a double owner took owner_)
    }
  }
  g_done.fetch_add(1);
  return nullptr;
}

void* leaf(void* a) {
  for (int i = 0; i < 3; ++i) fiber_yield();
  return a;
}

void* spawner(void*) {  // creates and joins from a fiber; detached children
  for (long i = 0; i < g_rounds / 10 + 1; ++i) {
    fiber_t c;
    fiber_attr_t at;
    fiber_attr_init(&at);
    at.name = "leaf-with-a-long-name";
    if (fiber_create(&c, &at, leaf, reinterpret_cast<void*>(i)) != 0) std::abort();
    fiber_join(c, nullptr);
    at.detached = 1;
    at.name = nullptr;
    if (fiber_create(&c, &at, leaf, nullptr) != 0) std::abort();
  }
  fiber_sleep_ns(2 * 1000 * 1000);
  g_done.fetch_add(1);
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 2;
  c.timeslice_us = 1000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) g_rounds = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--klts") && i + 1 < argc) c.klts = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--lock-iters") && i + 1 < argc) g_lock_iters = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--knob") && i + 1 < argc) fiber_test_set_knob(std::atoi(argv[++i]), 1);
    else if (!std::strcmp(argv[i], "--config") && i + 1 < argc) c.trace_path = argv[++i];
    else {
      const bool help = std::strcmp(argv[i], "--help") == 0;
      std::fprintf(help ? stdout : stderr,
                   "usage: %s [--rounds N] [--klts K] [--lock-iters N] [--knob K]... [--config PATH]\n", argv[0]);
      return help ? 0 : 2;
    }
  }
  if (int r = fiber_init(&c)) {
    std::fprintf(stderr, "fiber_init: %d\n", r);
    return 1;
  }
  fiber_sem_init(&g_sem, 0);
  std::vector<fiber_t> ids;
  auto spawn = [&](void* (*fn)(void*), void* arg, const char* name) {
    fiber_t id;
    fiber_attr_t at;
    fiber_attr_init(&at);
    at.name = name;
    if (fiber_create(&id, &at, fn, arg) != 0) std::abort();
    ids.push_back(id);
  };
  spawn(pingpong, nullptr, "ping");
  spawn(pingpong, reinterpret_cast<void*>(1), "pong");
  spawn(consumer, nullptr, "consumer-1");
  spawn(consumer, nullptr, "consumer-2");
  spawn(producer, nullptr, "producer");
  spawn(spinner, nullptr, "spinner");
  spawn(spawner, nullptr, nullptr);
  for (long i = 0; i < kLockers; ++i) spawn(locker, reinterpret_cast<void*>(i), "locker");
  std::thread os_poster([] {  // wakes from an OS thread; it also takes the lockers' mutex
    for (long i = 0; i < kItems / 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      fiber_sem_post(&g_sem);
      g_lm.lock();  // lock events from an OS thread (the trace's shared buffer)
      g_locked.fetch_add(1, std::memory_order_relaxed);
      try {
        g_lm.unlock();
      } catch (const std::system_error&) {  // EPERM: only with knob 25, as in locker()
      }
    }
  });
  for (fiber_t id : ids) fiber_join(id, nullptr);
  os_poster.join();
  long done = g_done.load();
  int r = fiber_shutdown();
  if (done != 7 + kLockers || g_taken.load() != kItems || g_locked.load() != kLockers * g_lock_iters + kItems / 2 || r != 0) {
    std::fprintf(stderr, "trace_run: wrong end state (done %ld, taken %ld, locked %ld, shutdown %d)\n", done,
                 g_taken.load(), g_locked.load(), r);
    return 1;
  }
  std::printf("trace_run: ok (%ld rounds)\n", g_rounds);
  return 0;
}
