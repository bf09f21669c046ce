// core/tests/runtime_spare_test.cpp - spare KLTs (issue 12 item 2; core/src/
// monitor.hpp I-MON4, policy.hpp I-R7): while every KLT that could run the
// queued fibers is stalled in a call the runtime cannot see (a system call
// made without libc's interposed wrapper, a library's own blocking call), a
// spare KLT runs them; when the stall ends the spare goes back to sleep, so
// the program again runs on the KLTs it asked for.
//
// The blocking calls go to the kernel directly (syscall(SYS_read)): libc's
// read is interposed and would park the fiber (interpose_io.cpp).
//
// Negative control: FIBER_KNOB_NO_SPARE_KLT (the monitor never turns a spare
// on): on one KLT the workers then make no progress at all during the stall,
// which is what every test below checks does not happen.
//
// Cooperative mode (timeslice 0) where the test counts every worker: a
// worker preempted on the KLT that then blocks is pinned there (I3) and waits
// for it; that is the stated limit, not what these tests measure.
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <set>
#include <string>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

constexpr unsigned kWorkers = 8;
constexpr unsigned kMaxBlockers = 2;

void sleep_ms(unsigned ms) {
  struct timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
  while (syscall(SYS_nanosleep, &ts, &ts) != 0) {
  }
}

long my_tid() { return syscall(SYS_gettid); }

struct scene {
  unsigned blockers = 1;
  std::array<std::array<int, 2>, kMaxBlockers> fds{};
  std::atomic<unsigned> blocking{0};
  std::atomic<std::uint64_t> blocked_at{0};  // now_ns() just before a blocker's read
  std::atomic<unsigned> unblocked{0};
  std::atomic<bool> stop{false};
  std::array<std::atomic<std::uint64_t>, kWorkers> count{};
  std::array<std::atomic<long>, kWorkers> tid{};  // the KLT a worker last ran on
  std::array<fiber_t, kWorkers> workers{};
  std::array<fiber_t, kMaxBlockers> blocker{};
};

struct worker_arg {
  scene* s;
  unsigned i;
};
std::array<worker_arg, kWorkers> g_args;

void* yielding_worker(void* p) {
  auto* a = static_cast<worker_arg*>(p);
  while (!a->s->stop.load(std::memory_order_relaxed)) {
    a->s->count[a->i].fetch_add(1, std::memory_order_relaxed);
    a->s->tid[a->i].store(my_tid(), std::memory_order_relaxed);
    fiber_yield();
  }
  return nullptr;
}

struct blocker_arg {
  scene* s;
  unsigned b;
};
std::array<blocker_arg, kMaxBlockers> g_blocker_args;

// Blocks its KLT in read() until the test writes to its pipe.
void* blocker(void* p) {
  auto* a = static_cast<blocker_arg*>(p);
  a->s->blocked_at.store(now_ns(), std::memory_order_relaxed);  // relaxed: published by the release below
  a->s->blocking.fetch_add(1, std::memory_order_release);
  char c;
  ssize_t r = syscall(SYS_read, a->s->fds[a->b][0], &c, 1);  // the KLT sleeps in the kernel
  (void)r;
  a->s->unblocked.fetch_add(1, std::memory_order_release);
  return nullptr;
}

fiber_test_spare_counters_t spares() {
  fiber_test_spare_counters_t c{};
  fiber_test_get_spare_counters(&c);
  return c;
}

// How many workers made no progress in `ms`, and which.
unsigned stuck_workers(scene& s, unsigned ms, std::string* which) {
  std::array<std::uint64_t, kWorkers> before{};
  for (unsigned i = 0; i < kWorkers; ++i) before[i] = s.count[i].load(std::memory_order_relaxed);
  sleep_ms(ms);
  unsigned stuck = 0;
  for (unsigned i = 0; i < kWorkers; ++i) {
    if (s.count[i].load(std::memory_order_relaxed) == before[i]) {
      ++stuck;
      *which += " w" + std::to_string(i);
    }
  }
  return stuck;
}

// The pipes the blockers read, one per blocker.
void open_pipes(scene& s, unsigned blockers) {
  s.blockers = blockers;
  for (unsigned b = 0; b < blockers; ++b) EXPECT_EQ(pipe(s.fds[b].data()), 0);
}

void spawn_workers(scene& s, void* (*fn)(void*)) {
  for (unsigned i = 0; i < kWorkers; ++i) {
    g_args[i] = {&s, i};
    s.workers[i] = spawn(fn, &g_args[i]);
    EXPECT_NE(s.workers[i], 0u);
  }
}

// Blocker b, once it is about to enter its read() (the KLT running it then
// runs nothing else until the read returns).
void spawn_blocker(scene& s, unsigned b) {
  g_blocker_args[b] = {&s, b};
  s.blocker[b] = spawn(blocker, &g_blocker_args[b]);
  EXPECT_NE(s.blocker[b], 0u);
  while (s.blocking.load(std::memory_order_acquire) <= b) {
    struct timespec ts{0, 100000};
    syscall(SYS_nanosleep, &ts, nullptr);
  }
}

// Every blocker's read returns.
void release(scene& s) {
  for (unsigned b = 0; b < s.blockers; ++b) EXPECT_EQ(write(s.fds[b][1], "x", 1), 1);
  while (s.unblocked.load(std::memory_order_acquire) < s.blockers) sleep_ms(1);
}

// Workers stop; every fiber joined, every pipe closed.
void end(scene& s) {
  s.stop.store(true, std::memory_order_relaxed);
  for (fiber_t w : s.workers)
    if (w != 0) join(w);
  for (unsigned b = 0; b < s.blockers; ++b) {
    join(s.blocker[b]);
    close(s.fds[b][0]);
    close(s.fds[b][1]);
  }
}

class SpareKlt : public runtime_test {
 protected:
  // Starts `klts` KLTs, the workers, then `blockers` fibers that each block a
  // KLT (spawned one by one, waiting for each to block, so that each lands
  // on a KLT not blocked yet: the others are busy with workers, a blocked
  // one takes nothing).
  void begin(scene& s, unsigned klts, unsigned blockers) {
    open_pipes(s, blockers);
    start(klts, 0);
    spawn_workers(s, yielding_worker);
    for (unsigned b = 0; b < blockers; ++b) {
      spawn_blocker(s, b);
      sleep_ms(50);  // it reaches the kernel, and the monitor sees the stall grow
    }
  }
};

// How long after the block the workers ran again: the first change of the
// counters' sum, polled every 0.2 ms (printed; the bound is 20 ms of stall
// plus one or two 10 ms monitor periods).
double resume_ms(scene& s, std::uint64_t blocked_at) {
  auto sum = [&s] {
    std::uint64_t t = 0;
    for (auto& c : s.count) t += c.load(std::memory_order_relaxed);
    return t;
  };
  const std::uint64_t first = sum();
  for (int i = 0; i < 5000; ++i) {  // 1 s at most
    if (sum() != first) return static_cast<double>(now_ns() - blocked_at) / 1e6;
    struct timespec ts{0, 200000};
    syscall(SYS_nanosleep, &ts, nullptr);
  }
  return -1;
}

// One KLT, blocked: before spares, every other fiber of the program waited
// for the read to return (the README's "with one KLT, such a wait hangs").
TEST_F(SpareKlt, OneKltBlockedTheOthersRunOnASpare) {
  scene s;
  begin(s, 1, 1);
  sleep_ms(100);  // the hand-off bound (20 ms) and two monitor periods, with room for a loaded VM
  std::string which;
  unsigned stuck = stuck_workers(s, 300, &which);
  fiber_test_spare_counters_t during = spares();
  bool still_blocked = s.unblocked.load(std::memory_order_acquire) == 0;
  release(s);
  end(s);
  ASSERT_TRUE(still_blocked);
  EXPECT_EQ(stuck, 0u) << "workers that made no progress in 300 ms while the only KLT was blocked:" << which;
  EXPECT_GE(during.on_now, 1u) << "no spare KLT on during the stall";
}

// How soon: the workers run again within the stall bound (20 ms) plus a
// monitor period or two (10 ms each); measured from the blocker's own clock
// reading just before its read(), printed, and bounded loosely (a loaded CI
// machine delays the monitor thread itself).
TEST_F(SpareKlt, WorkersRunAgainWithinTheStallBoundAndAPeriodOrTwo) {
  scene s;
  open_pipes(s, 1);
  start(1, 0);
  spawn_workers(s, yielding_worker);
  spawn_blocker(s, 0);
  // The KLT runs the blocker until its read() blocks: no worker runs from
  // here on unless a spare runs it.
  const double resumed = resume_ms(s, s.blocked_at.load(std::memory_order_relaxed));
  std::printf("workers ran again %.1f ms after the only KLT blocked\n", resumed);
  release(s);
  end(s);
  EXPECT_GE(resumed, 0) << "no worker ran within 1 s of the block";
  EXPECT_LT(resumed, 500) << "the spare came later than the stall bound allows, even on a loaded machine";
}

// The control: the same program without spares stops completely.
TEST_F(SpareKlt, ControlWithoutSparesOneBlockedKltStopsEveryFiber) {
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);
  scene s;
  begin(s, 1, 1);
  sleep_ms(100);
  std::string which;
  unsigned stuck = stuck_workers(s, 300, &which);
  fiber_test_spare_counters_t during = spares();
  release(s);
  end(s);
  EXPECT_EQ(stuck, kWorkers) << "without spares some worker ran while the only KLT was blocked:" << which;
  EXPECT_EQ(during.on_now, 0u);
}

// Two KLTs, both blocked: two spares.
TEST_F(SpareKlt, EveryKltBlockedTheOthersRunOnSpares) {
  scene s;
  begin(s, 2, 2);
  sleep_ms(100);
  std::string which;
  unsigned stuck = stuck_workers(s, 300, &which);
  fiber_test_spare_counters_t during = spares();
  bool still_blocked = s.unblocked.load(std::memory_order_acquire) == 0;
  release(s);
  end(s);
  ASSERT_TRUE(still_blocked);
  EXPECT_EQ(stuck, 0u) << "workers that made no progress in 300 ms while both KLTs were blocked:" << which;
  EXPECT_GE(during.on_now, 1u);
  EXPECT_LE(during.on_now, 2u) << "more spares on than KLTs stalled";
}

// When the stall ends the spare turns off within a few monitor periods, and
// from then on the program runs on its one KLT again: every worker's
// progress comes from one thread.  The dump names the spare.
TEST_F(SpareKlt, SpareRetiresWhenTheStallEnds) {
  scene s;
  begin(s, 1, 1);
  sleep_ms(100);
  ASSERT_GE(spares().on_now, 1u);
  release(s);
  std::uint64_t on_now = 1;
  for (int i = 0; i < 200 && on_now != 0; ++i) {  // up to 2 s on a loaded machine
    sleep_ms(10);
    on_now = spares().on_now;
  }
  EXPECT_EQ(on_now, 0u) << "the spare was still on 2 s after the stall ended";
  sleep_ms(50);  // the spare finishes the slice it was in
  for (auto& t : s.tid) t.store(0, std::memory_order_relaxed);
  sleep_ms(200);
  std::set<long> tids;
  for (auto& t : s.tid) {
    long v = t.load(std::memory_order_relaxed);
    if (v != 0) tids.insert(v);
  }
  char path[] = "/tmp/fiber_spare_dumpXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  EXPECT_EQ(fiber_dump(fd), 0);
  std::string dump;
  char buf[4096];
  off_t off = 0;
  for (ssize_t n; (n = pread(fd, buf, sizeof buf, off)) > 0; off += n) dump.append(buf, static_cast<std::size_t>(n));
  close(fd);
  end(s);
  EXPECT_EQ(tids.size(), 1u) << "after the stall, workers still ran on " << tids.size() << " threads";
  EXPECT_NE(dump.find("klt 1 spare off"), std::string::npos) << dump;
  EXPECT_NE(dump.find("1 spare KLTs"), std::string::npos) << dump;
}

// Preemption on (4 ms: CPU-time ticks, none while the KLT is blocked).
// CPU-bound workers are preempted.  With FIBER_MIGRATE_NEVER they are pinned
// to the KLT (I3) and wait for it, the stated limit of that setting (printed,
// not asserted: how many were pinned at the block depends on timing).  With
// the default, FIBER_MIGRATE_SCAN, a worker whose stack holds no TLS address
// is not pinned (tls_scan.cpp), and with ALWAYS none is: every worker runs on
// the spare.
void* spinning_worker(void* p) {
  auto* a = static_cast<worker_arg*>(p);
  while (!a->s->stop.load(std::memory_order_relaxed)) {
    a->s->count[a->i].fetch_add(1, std::memory_order_relaxed);
    spin(2000);
  }
  return nullptr;
}

unsigned stuck_cpu_bound(unsigned migrate) {
  scene s;
  open_pipes(s, 1);
  fiber_config_t c = config(1, 4000);
  c.migrate_preempted = migrate;
  EXPECT_EQ(fiber_init(&c), 0);
  spawn_workers(s, spinning_worker);
  sleep_ms(100);  // every worker ran and was preempted
  spawn_blocker(s, 0);
  sleep_ms(100);
  std::string which;
  unsigned stuck = stuck_workers(s, 300, &which);
  release(s);
  end(s);
  EXPECT_EQ(fiber_shutdown(), 0);
  return stuck;
}

TEST_F(SpareKlt, PreemptedWorkersRunOnTheSpareWithMigration) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  unsigned pinned_stuck = stuck_cpu_bound(FIBER_MIGRATE_NEVER);
  unsigned scan_stuck = stuck_cpu_bound(FIBER_MIGRATE_SCAN);
  unsigned migrate_stuck = stuck_cpu_bound(FIBER_MIGRATE_ALWAYS);
  std::printf("CPU-bound workers stuck behind the blocked KLT: %u of %u pinned (never), %u with the "
              "default scan, %u with always\n", pinned_stuck, kWorkers, scan_stuck, migrate_stuck);
  EXPECT_EQ(scan_stuck, 0u);
  EXPECT_EQ(migrate_stuck, 0u);
}

// A stall with nothing queued behind it starts no spare thread.
TEST_F(SpareKlt, StallWithNothingQueuedStartsNoSpare) {
  scene s;
  open_pipes(s, 1);
  start(1, 0);
  std::uint64_t started = spares().started;
  spawn_blocker(s, 0);
  sleep_ms(200);
  fiber_test_spare_counters_t during = spares();
  release(s);
  end(s);
  EXPECT_EQ(during.started, started) << "a spare started for a stall with nothing to run";
}

}  // namespace
