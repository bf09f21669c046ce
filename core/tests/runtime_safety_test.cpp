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
constexpr std::uint64_t kRunNs = 250 * kMs;  // each workload's duration

std::atomic<std::uint64_t> g_bad{0};     // corruption seen by any fiber
std::atomic<std::uint64_t> g_iters{0};   // progress (also the child's watchdog)
std::atomic<std::uint64_t> g_moved{0};   // fibers that saw their TLS move
FILE* g_null = nullptr;

void reset_counters() {
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

// malloc/free with a pattern check, snprintf parsed back, fprintf to
// /dev/null and an fmemopen buffer, std::string (operator new).
bool libc_round(uintptr_t id, unsigned i, FILE* mem) {
  bool ok = true;
  std::size_t n = 16 + (i * 997u + id * 131u) % 6000;  // tcache and arena sizes
  auto* p = static_cast<unsigned char*>(std::malloc(n));
  if (!p) return false;
  std::memset(p, static_cast<int>(id & 0xff), n);
  spin(300);
  for (std::size_t k = 0; k < n; ++k) ok &= p[k] == static_cast<unsigned char>(id & 0xff);
  std::free(p);
  char buf[96];
  std::snprintf(buf, sizeof buf, "fiber %lu round %u %s", static_cast<unsigned long>(id), i, "x");
  unsigned long rid = 0;
  unsigned ri = 0;
  ok &= std::sscanf(buf, "fiber %lu round %u", &rid, &ri) == 2 && rid == id && ri == i;
  std::fprintf(g_null, "%s %d\n", buf, static_cast<int>(n));
  std::rewind(mem);
  std::fprintf(mem, "%lu:%u", static_cast<unsigned long>(id), i);
  std::fflush(mem);
  std::string s = std::to_string(id) + "/" + std::to_string(i);
  ok &= s == std::to_string(id) + "/" + std::to_string(i);
  return ok;
}

void* libc_worker(void* arg) {
  auto id = reinterpret_cast<uintptr_t>(arg);
  char membuf[64] = {};
  FILE* mem = fmemopen(membuf, sizeof membuf, "w");
  if (!mem) return nullptr;
  std::uint64_t end = now_ns() + kRunNs;
  for (unsigned i = 0; now_ns() < end; ++i) {
    if (!libc_round(id, i, mem)) g_bad.fetch_add(1);
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  std::fclose(mem);
  unsigned long rid = 0;
  if (std::sscanf(membuf, "%lu:", &rid) != 1 || rid != id) g_bad.fetch_add(1);
  return nullptr;
}

void* errno_worker(void* arg) {
  int mine = 1000 + static_cast<int>(reinterpret_cast<uintptr_t>(arg));
  std::uint64_t end = now_ns() + kRunNs;
  while (now_ns() < end) {
    errno = mine;
    spin(20000);  // a tick lands here, in allowed code, most of the time
    if (errno != mine) g_bad.fetch_add(1);
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
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
  std::uint64_t end = now_ns() + kRunNs;
  for (unsigned i = 0; now_ns() < end; ++i) {
    try {
      eh_round(id, i);
    } catch (...) {
      g_bad.fetch_add(1);
    }
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
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
  std::uint64_t end = now_ns() + kRunNs;
  while (now_ns() < end) {
    *ep = mine;
    spin(20000);
    if (*ep != mine) g_bad.fetch_add(1);
    moved |= errno_address() != ep;
    g_iters.fetch_add(1, std::memory_order_relaxed);  // relaxed: counter
  }
  if (moved) g_moved.fetch_add(1);
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

}  // namespace
