// bench/bench_offload.cpp - calls with no readiness path (issue 12 item 2,
// core/src/offload.cpp, io_file.cpp).  A plain program (no Google Benchmark):
// it prints one markdown table.  Every row runs in one fiber on one KLT
// (quantum 1 ms); "pool" is the default, "KLT" the same call with
// FIBER_KNOB_NO_OFFLOAD (what every such call was before the pool), both in
// the same run, interleaved, best of `reps`.
//
//   offload      fiber_offload of an empty function: the pool's round trip
//                (submit, park, a worker's wake-up, unpark), ns per call.
//   cached read  read() of 4 KiB of a regular file whose pages are cached:
//                RWF_NOWAIT on the KLT in both columns (nothing offloaded).
//   uncached     read() of 64 KiB after POSIX_FADV_DONTNEED (a disk read).
//   fsync        write 4 KiB + fsync.
//   others ran   while one fiber does the uncached reads and fsyncs, how many
//                times a second fiber of the same KLT got to run (yields).
//
//   bench_offload [--quick]   (run in a directory on a disk: the file is ./)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <time.h>

#include "fiber/detail/testing.h"
#include "fiber/fiber.h"

namespace {

unsigned g_reps = 5, g_calls = 20000, g_reads = 200;
std::string g_path;
std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_others{0};

std::uint64_t now_ns() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000u + static_cast<std::uint64_t>(t.tv_nsec);
}

void* empty(void* a) { return a; }

struct run_result {
  double offload_ns = 0, cached_ns = 0, uncached_us = 0, fsync_us = 0;
  std::uint64_t others = 0;
};

void* measure(void* p) {
  auto* r = static_cast<run_result*>(p);
  std::uint64_t t = now_ns();
  for (unsigned i = 0; i < g_calls; ++i) fiber_offload(empty, nullptr, nullptr);
  r->offload_ns = static_cast<double>(now_ns() - t) / g_calls;

  int fd = open(g_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return nullptr;
  static char buf[64 * 1024];
  std::memset(buf, 'x', sizeof buf);
  if (write(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) return nullptr;
  t = now_ns();
  for (unsigned i = 0; i < g_calls; ++i)
    if (pread(fd, buf, 4096, 0) != 4096 || lseek(fd, 0, SEEK_SET) != 0 || read(fd, buf, 4096) != 4096)
      return nullptr;
  // pread is not interposed: subtract its share (one call per round, measured next).
  std::uint64_t both = now_ns() - t;
  t = now_ns();
  for (unsigned i = 0; i < g_calls; ++i)
    if (pread(fd, buf, 4096, 0) != 4096 || lseek(fd, 0, SEEK_SET) != 0) return nullptr;
  std::uint64_t pread_only = now_ns() - t;
  r->cached_ns = static_cast<double>(both > pread_only ? both - pread_only : 0) / g_calls;

  g_others.store(0);
  std::uint64_t unc = 0, fs = 0;
  for (unsigned i = 0; i < g_reads; ++i) {
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    lseek(fd, 0, SEEK_SET);
    t = now_ns();
    if (read(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) return nullptr;
    unc += now_ns() - t;
    lseek(fd, 0, SEEK_SET);
    if (write(fd, buf, 4096) != 4096) return nullptr;
    t = now_ns();
    fsync(fd);
    fs += now_ns() - t;
  }
  r->others = g_others.load();
  r->uncached_us = static_cast<double>(unc) / g_reads / 1000.0;
  r->fsync_us = static_cast<double>(fs) / g_reads / 1000.0;
  close(fd);
  unlink(g_path.c_str());
  return r;
}

void* other(void*) {
  while (!g_stop.load()) {
    g_others.fetch_add(1);
    fiber_yield();
  }
  return nullptr;
}

bool one_run(bool pool, run_result* r) {
  fiber_test_set_knob(FIBER_KNOB_NO_OFFLOAD, pool ? 0 : 1);
  g_stop.store(false);
  fiber_t m, o;
  if (fiber_create(&m, nullptr, measure, r) != 0 || fiber_create(&o, nullptr, other, nullptr) != 0) return false;
  void* ok = nullptr;
  fiber_join(m, &ok);
  g_stop.store(true);
  fiber_join(o, nullptr);
  fiber_test_set_knob(FIBER_KNOB_NO_OFFLOAD, 0);
  return ok != nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      g_reps = 2;
      g_calls = 2000;
      g_reads = 20;
    } else {
      std::fprintf(stderr, "usage: bench_offload [--quick]\n");
      return 2;
    }
  }
  g_path = "bench_offload." + std::to_string(getpid()) + ".dat";
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 1;
  c.timeslice_us = 1000;
  if (fiber_init(&c) != 0) return 1;
  run_result best[2];
  for (auto& b : best) b.offload_ns = b.cached_ns = b.uncached_us = b.fsync_us = 1e18;
  for (unsigned rep = 0; rep < g_reps; ++rep) {
    for (int pool = 1; pool >= 0; --pool) {
      run_result r;
      if (!one_run(pool != 0, &r)) {
        std::fprintf(stderr, "bench_offload: a run failed (file %s)\n", g_path.c_str());
        return 1;
      }
      run_result& b = best[pool];
      b.offload_ns = std::min(b.offload_ns, r.offload_ns);
      b.cached_ns = std::min(b.cached_ns, r.cached_ns);
      b.uncached_us = std::min(b.uncached_us, r.uncached_us);
      b.fsync_us = std::min(b.fsync_us, r.fsync_us);
      b.others = std::max(b.others, r.others);
    }
    std::fprintf(stderr, "bench_offload: round %u/%u\n", rep + 1, g_reps);
  }
  fiber_shutdown();
  std::printf("| one fiber on 1 KLT (best of %u) | pool | KLT (FIBER_KNOB_NO_OFFLOAD) |\n|---|---:|---:|\n", g_reps);
  std::printf("| fiber_offload(empty), ns per call | %.0f | %.0f |\n", best[1].offload_ns, best[0].offload_ns);
  std::printf("| cached 4 KiB read(), ns | %.0f | %.0f |\n", best[1].cached_ns, best[0].cached_ns);
  std::printf("| uncached 64 KiB read(), us | %.1f | %.1f |\n", best[1].uncached_us, best[0].uncached_us);
  std::printf("| 4 KiB write + fsync, us | %.1f | %.1f |\n", best[1].fsync_us, best[0].fsync_us);
  std::printf("| runs of another fiber of the KLT during %u uncached reads + fsyncs | %llu | %llu |\n", g_reads,
              static_cast<unsigned long long>(best[1].others), static_cast<unsigned long long>(best[0].others));
  return 0;
}
