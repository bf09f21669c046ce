// bench/io_latency.cpp - readiness latency of a fiber parked in read() on a
// pipe, 1 KLT (papers/design.md 14.9): an OS thread writes its clock into the
// pipe every 700 us; the reader fiber records now - stamp.  With --spinner a
// CPU-bound fiber shares the KLT (the KLT is never idle: readiness reaches
// the reader only through the poller thread, after at most a quantum).
// --no-idle-poll sets FIBER_KNOB_NO_IDLE_POLL (the A/B: every event hops
// through the poller thread).  A plain program; prints one line:
//   io_latency idle_poll=1 spinner=0 timeslice_us=1000 n=1500 p50_us=.. p90_us=.. p99_us=.. max_us=..
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "fiber/detail/testing.h"
#include "fiber/fiber.h"

namespace {

int g_fd[2];
std::atomic<bool> g_stop{false};
std::vector<long> g_lat;  // written by the reader fiber only, read after its join

long now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

void* spinner(void*) {
  volatile unsigned long x = 0;
  while (!g_stop.load(std::memory_order_relaxed)) x = x + 1;  // relaxed: a flag
  return nullptr;
}

void* reader(void*) {
  long t;
  while (read(g_fd[0], &t, sizeof t) == static_cast<ssize_t>(sizeof t) && t >= 0) g_lat.push_back(now_ns() - t);
  return nullptr;
}

double pct(double p) { return g_lat[static_cast<std::size_t>(p * static_cast<double>(g_lat.size() - 1))] / 1e3; }

}  // namespace

int main(int argc, char** argv) {
  bool spin = false, no_poll = false;
  unsigned slice = 1000, n = 1500;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--spinner")) spin = true;
    else if (!std::strcmp(argv[i], "--no-idle-poll")) no_poll = true;
    else if (!std::strcmp(argv[i], "--timeslice") && i + 1 < argc) slice = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--samples") && i + 1 < argc) n = static_cast<unsigned>(std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--spinner] [--no-idle-poll] [--timeslice US] [--samples N]\n", argv[0]);
      return 2;
    }
  }
  if (no_poll) fiber_test_set_knob(FIBER_KNOB_NO_IDLE_POLL, 1);
  if (pipe(g_fd) != 0 || n == 0) return 1;
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 1;
  c.timeslice_us = slice;
  if (fiber_init(&c) != 0) return 1;
  fiber_t r = 0, s = 0;
  if (fiber_create(&r, nullptr, reader, nullptr) != 0) return 1;
  if (spin && fiber_create(&s, nullptr, spinner, nullptr) != 0) return 1;
  for (unsigned i = 0; i < n; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(700));
    long t = now_ns();
    if (write(g_fd[1], &t, sizeof t) != static_cast<ssize_t>(sizeof t)) return 1;
  }
  long end = -1;
  if (write(g_fd[1], &end, sizeof end) != static_cast<ssize_t>(sizeof end)) return 1;
  fiber_join(r, nullptr);
  g_stop.store(true);
  if (s) fiber_join(s, nullptr);
  fiber_shutdown();
  if (g_lat.size() != n) return 1;
  std::sort(g_lat.begin(), g_lat.end());
  std::printf("io_latency idle_poll=%d spinner=%d timeslice_us=%u n=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f\n",
              no_poll ? 0 : 1, spin ? 1 : 0, slice, g_lat.size(), pct(0.5), pct(0.9), pct(0.99), g_lat.back() / 1e3);
  return 0;
}
