// core/tests/runtime_safety_test.cpp - preemption safety (platform-facts):
// fibers doing malloc/free, stdio, errno and C++ exceptions under a short
// quantum on several KLTs finish with no corruption and no hang; each
// protection has a negative control that switches it off with a knob of
// testing.h and shows the same workload break:
//   NO_ERRNO_SWAP        errno shared by a KLT's fibers        (I4)
//   NO_EH_SWAP           exception globals shared              (I4)
//   NO_PC_CHECK          preempted inside libc (malloc, stdio) (allow-list)
//   MIGRATE_PREEMPTED    a preempted fiber resumes on another KLT (I3)
// (NO_COUNT_CHECK's control is in runtime_preempt_test.cpp.)
// Controls that may crash or hang run in a forked child (test_util.hpp).
#include <errno.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

constexpr unsigned kSlice = 200;           // us: many ticks per test
std::uint64_t g_run_ns = 250 * kMs;  // each workload's duration (controls: longer)

std::atomic<std::uint64_t> g_bad{0};     // corruption seen by any fiber
std::atomic<std::uint64_t> g_iters{0};   // progress (also the child's watchdog)
std::atomic<std::uint64_t> g_moved{0};   // fibers that saw their TLS move
std::atomic<unsigned> g_done{0};         // workers finished
FILE* g_null = nullptr;

// Until the deadline; stops early once something broke.
bool keep_going(std::uint64_t end) {
  return now_ns() < end && g_bad.load(std::memory_order_relaxed) == 0;  // relaxed: polled
}

void reset_counters() {
  g_done.store(0);
  g_bad.store(0);
  g_iters.store(0);
  g_moved.store(0);
}

// Runs `n` fibers of `fn` and joins them.
void run_fibers(void* (*fn)(void*), unsigned n) {
  std::vector<fiber_t> ids;
  for (unsigned i = 0; i < n; ++i) {
    fiber_t f = spawn(fn, reinterpret_cast<void*>(uintptr_t{i + 1}));
    if (f == 0) {
      g_bad.fetch_add(1000000);
      continue;
    }
    ids.push_back(f);
  }
  for (fiber_t f : ids) fiber_join(f, nullptr);
}

// ---- workloads ---------------------------------------------------------------

// A burst of malloc/free (tcache and arena sizes) with each block stamped
// with its owner at both ends and checked before it is freed.
bool malloc_burst(uintptr_t id, unsigned i) {
  constexpr int kBlocks = 32;
  unsigned char* blk[kBlocks];
  std::size_t len[kBlocks];
  bool ok = true;
  for (int b = 0; b < kBlocks; ++b) {
    len[b] = 16 + (i * 997u + id * 131u + static_cast<unsigned>(b) * 389u) % 4000;
    blk[b] = static_cast<unsigned char*>(std::malloc(len[b]));
    if (!blk[b]) return false;
    blk[b][0] = blk[b][len[b] - 1] = static_cast<unsigned char>(id);
  }
  for (int b = kBlocks - 1; b >= 0; b -= 2) {  // free out of order
    ok &= blk[b][0] == static_cast<unsigned char>(id) && blk[b][len[b] - 1] == blk[b][0];
    std::free(blk[b]);
  }
  for (int b = 0; b < kBlocks; b += 2) {
    ok &= blk[b][0] == static_cast<unsigned char>(id) && blk[b][len[b] - 1] == blk[b][0];
    std::free(blk[b]);
  }
  return ok;
}

// malloc/free, snprintf parsed back, fprintf to a shared /dev/null stream and
// to this fiber's fmemopen buffer, std::string (operator new).
bool libc_round(uintptr_t id, unsigned i, FILE* mem) {
  bool ok = malloc_burst(id, i);
  char buf[96];
  std::snprintf(buf, sizeof buf, "fiber %lu round %u %s", static_cast<unsigned long>(id), i, "x");
  unsigned long rid = 0;
  unsigned ri = 0;
  ok &= std::sscanf(buf, "fiber %lu round %u", &rid, &ri) == 2 && rid == id && ri == i;
  std::fprintf(g_null, "%s %u\n", buf, i);
  std::rewind(mem);
  std::fprintf(mem, "%lu:%u", static_cast<unsigned long>(id), i);
  std::fflush(mem);
  std::string s = std::to_string(id) + "/" + std::to_string(i);
  ok &= s == std::to_string(id) + "/" + std::to_string(i);
  return ok;
}

void* echo(void* a) { return a; }

// Runtime entry points only (create, yield, join, preemption sections): the
// runtime's locks and switch paths are guarded by preempt_count (I5) and by
// the allow-list (its code is denied); with both off a tick lands inside them.
void* runtime_worker(void* arg) {
  std::uint64_t end = now_ns() + g_run_ns;
  while (keep_going(end)) {
    fiber_t c;
    void* r = nullptr;
    if (fiber_create(&c, nullptr, echo, arg) != 0) {
      g_bad.fetch_add(1);
      break;
    }
    fiber_yield();
    if (fiber_join(c, &r) != 0 || r != arg) g_bad.fetch_add(1);
    fiber_preempt_disable();
    spin(200);
    fiber_preempt_enable();
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  g_done.fetch_add(1);
  return nullptr;
}

void* libc_worker(void* arg) {
  auto id = reinterpret_cast<uintptr_t>(arg);
  char membuf[64] = {};
  FILE* mem = fmemopen(membuf, sizeof membuf, "w");
  if (!mem) return nullptr;
  std::uint64_t end = now_ns() + g_run_ns;
  for (unsigned i = 0; keep_going(end); ++i) {
    if (!libc_round(id, i, mem)) g_bad.fetch_add(1);
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  std::fclose(mem);
  unsigned long rid = 0;
  if (std::sscanf(membuf, "%lu:", &rid) != 1 || rid != id) g_bad.fetch_add(1);
  g_done.fetch_add(1);
  return nullptr;
}

void* errno_worker(void* arg) {
  int mine = 1000 + static_cast<int>(reinterpret_cast<uintptr_t>(arg));
  std::uint64_t end = now_ns() + g_run_ns;
  while (keep_going(end)) {
    errno = mine;
    spin(20000);  // a tick lands here, in allowed code, most of the time
    if (errno != mine) g_bad.fetch_add(1);
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  g_done.fetch_add(1);
  return nullptr;
}

struct tagged { uintptr_t id; unsigned iter; };

// Spins in a destructor run by unwinding: uncaught_exceptions() must be 1.
struct unwinding_check {
  ~unwinding_check() {
    spin(10000);
    if (std::uncaught_exceptions() != 1) g_bad.fetch_add(1);
  }
};

void eh_round(uintptr_t id, unsigned i) {
  try {
    throw tagged{id, i};
  } catch (const tagged& e) {
    spin(20000);  // switched out inside the catch block
    if (e.id != id || e.iter != i || std::uncaught_exceptions() != 0) g_bad.fetch_add(1);
    try {
      throw;  // rethrows this fiber's caught exception (__cxa_eh_globals.caught)
    } catch (const tagged& e2) {
      if (e2.id != id || e2.iter != i) g_bad.fetch_add(1);
    }
  }
  try {
    unwinding_check c;
    throw std::runtime_error("unwind");
  } catch (const std::runtime_error&) {
  }
  if (std::uncaught_exceptions() != 0 || std::current_exception()) g_bad.fetch_add(1);
}

void* eh_worker(void* arg) {
  auto id = reinterpret_cast<uintptr_t>(arg);
  std::uint64_t end = now_ns() + g_run_ns;
  for (unsigned i = 0; keep_going(end); ++i) {
    try {
      eh_round(id, i);
    } catch (...) {
      g_bad.fetch_add(1);
    }
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  g_done.fetch_add(1);
  return nullptr;
}

__attribute__((noinline)) int* errno_address() {
  asm volatile("" ::: "memory");
  return &errno;
}

// Caches errno's address before a long loop with no runtime calls, as
// compiled code may (__errno_location is const).  If the fiber resumes on
// another KLT the cached address is the old KLT's errno (I3).
void* tls_worker(void* arg) {
  int mine = 2000 + static_cast<int>(reinterpret_cast<uintptr_t>(arg));
  int* ep = errno_address();
  bool moved = false;
  std::uint64_t end = now_ns() + g_run_ns;
  while (keep_going(end)) {
    *ep = mine;
    spin(20000);
    if (*ep != mine) g_bad.fetch_add(1);
    moved |= errno_address() != ep;
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  if (moved) g_moved.fetch_add(1);
  g_done.fetch_add(1);
  return nullptr;
}

// ---- positive tests: clean on 1, 2 and 4 KLTs -------------------------------

class safety_test : public runtime_test, public ::testing::WithParamInterface<unsigned> {
 protected:
  void SetUp() override {
    FIBER_SKIP_WITHOUT_PREEMPTION();
    reset_counters();
    g_null = std::fopen("/dev/null", "w");
    ASSERT_NE(g_null, nullptr);
    start(GetParam(), kSlice);
  }
  void TearDown() override {
    runtime_test::TearDown();
    if (g_null) std::fclose(g_null);
    g_null = nullptr;
  }
  void run(void* (*fn)(void*)) {
    run_fibers(fn, 2 * GetParam() + 2);
    fiber_stats_t s = stats();
    EXPECT_EQ(g_bad.load(), 0u);
    EXPECT_GT(g_iters.load(), 0u);
    EXPECT_GE(s.preemptions, 10u) << "too few preemptions to show anything";
  }
};

TEST_P(safety_test, LibcMallocStdioUnderPreemption) {
  run(libc_worker);
  EXPECT_GE(stats().deferred_pc, 1u) << "no tick landed in libc: the allow-list is untested";
}
TEST_P(safety_test, ErrnoIsPerFiber) { run(errno_worker); }
TEST_P(safety_test, ExceptionsArePerFiber) { run(eh_worker); }
TEST_P(safety_test, PreemptedFibersKeepTheirKlt) {
  run(tls_worker);
  EXPECT_EQ(g_moved.load(), 0u) << "a preempted fiber resumed on another KLT (I3)";
}

INSTANTIATE_TEST_SUITE_P(klts, safety_test, ::testing::Values(1u, 2u, 4u));

// ---- negative controls (forked child, watchdog) -----------------------------

constexpr unsigned bit(int knob) { return 1u << knob; }

// The child: `n` fibers of `fn` on `klts` KLTs with the knobs in mask `knobs` on, for up to
// `run_ns`.  Returns 0 when they behaved, 1 on detected corruption, 3 when
// no fiber made progress for a second (hang).  A crash kills the child.
int control_child(void* (*fn)(void*), unsigned klts, unsigned n, unsigned knobs,
                  std::uint64_t run_ns) {
  reset_counters();
  g_run_ns = run_ns;
  g_null = std::fopen("/dev/null", "w");
  for (int k = FIBER_KNOB_NO_PC_CHECK; k <= FIBER_KNOB_MIGRATE_PREEMPTED; ++k)
    fiber_test_set_knob(k, (knobs & bit(k)) != 0);
  fiber_config_t c = config(klts, 100);
  // Pinned, as every preempted fiber was before the stack scan: each control
  // shows one protection alone.  The scan's verdict presumes the PC check
  // (a fiber is preempted only in the program's own code, never inside
  // libc, whose per-thread state - malloc's tcache, lock owners - is not a
  // TLS address on the stack): with NO_PC_CHECK and the scan, the count
  // check's clean twin below crashed in a CI run (3 of 105 reruns under
  // load; pinned, 0 of 105).
  c.migrate_preempted = FIBER_MIGRATE_NEVER;
  if (!g_null || fiber_init(&c) != 0) return 10;
  for (unsigned i = 0; i < n; ++i) {
    fiber_attr_t a;
    fiber_attr_init(&a);
    a.detached = 1;
    fiber_t f;
    if (fiber_create(&f, &a, fn, reinterpret_cast<void*>(uintptr_t{i + 1})) != 0) return 11;
  }
  std::uint64_t last = 0, last_change = now_ns();
  while (g_done.load() < n) {
    fiber_sleep_ns(20 * kMs);
    std::uint64_t it = g_iters.load();
    if (it != last) {
      last = it;
      last_change = now_ns();
    } else if (now_ns() - last_change > 1000 * kMs) {
      return 3;
    }
  }
  return g_bad.load() != 0 || g_moved.load() != 0 ? 1 : 0;
}

// Runs the control up to `tries` times and expects a child to misbehave
// (corrupt, crash or hang); one misbehaving child is enough.  The errno, EH
// and migration controls break on the first try in every run seen; the
// NO_PC_CHECK one broke in ~95% of children (a preemption must land inside
// a malloc critical section), hence several tries.
void expect_control_breaks(void* (*fn)(void*), unsigned klts, unsigned n, unsigned knobs,
                           std::uint64_t run_ns, int tries) {
  child_result r = child_result::ok;
  for (int t = 0; t < tries && r == child_result::ok; ++t) {
    r = run_child([&] { return control_child(fn, klts, n, knobs, run_ns); }, 20);
    std::printf("[ control  ] knobs 0x%x try %d: child %s\n", knobs, t, to_string(r));
  }
  EXPECT_NE(r, child_result::ok) << "knobs 0x" << std::hex << knobs << ": the workload behaved in "
                                 << std::dec << tries << " children with the protection off";
}

class control_test : public runtime_test {
 protected:
  void SetUp() override { FIBER_SKIP_WITHOUT_PREEMPTION(); }
};

TEST_F(control_test, NoErrnoSwapCorruptsErrno) {
  expect_control_breaks(errno_worker, 1, 4, bit(FIBER_KNOB_NO_ERRNO_SWAP), 1000 * kMs, 3);
}
TEST_F(control_test, NoEhSwapBreaksExceptions) {
  expect_control_breaks(eh_worker, 1, 4, bit(FIBER_KNOB_NO_EH_SWAP), 1000 * kMs, 3);
}
TEST_F(control_test, MigratePreemptedMovesCachedTls) {
  expect_control_breaks(tls_worker, 4, 8, bit(FIBER_KNOB_MIGRATE_PREEMPTED), 1000 * kMs, 3);
}
// The count alone cannot be shown on the runtime's own sections (the
// allow-list also denies them), so: with NO_PC_CHECK alone the runtime-heavy
// workload is clean, with NO_PC_CHECK + NO_COUNT_CHECK it breaks.
// Not under ASan: there a new fiber's first instructions (fiber_entry's
// __sanitizer_finish_switch_fiber) run with preempt_count 0, protected only
// by the allow-list, so NO_PC_CHECK alone already breaks ("starting fiber
// switch while in fiber switch").
TEST_F(control_test, NoCountCheckBreaksRuntimeSections) {
#if !defined(FIBER_ASAN) && !defined(__SANITIZE_ADDRESS__)
  child_result r = run_child(
      [] { return control_child(runtime_worker, 2, 6, bit(FIBER_KNOB_NO_PC_CHECK), 300 * kMs); },
      20);
  EXPECT_EQ(r, child_result::ok) << to_string(r) << ": the twin with the count check on";
#endif
  expect_control_breaks(runtime_worker, 2, 6,
                        bit(FIBER_KNOB_NO_PC_CHECK) | bit(FIBER_KNOB_NO_COUNT_CHECK), 2000 * kMs, 3);
}

TEST_F(control_test, NoPcCheckCorruptsOrHangsLibc) {
  expect_control_breaks(libc_worker, 2, 6, bit(FIBER_KNOB_NO_PC_CHECK), 2000 * kMs, 5);
}

}  // namespace
