// core/tests/runtime_stacks_test.cpp - stack reuse (slot caches, arenas) keeps
// every guarantee of a freshly mapped stack (core/src/stacks.cpp, slots.cpp):
//   - a fiber created after another exited reuses its stack without a system
//     call (StacksAreReused; its twin under FIBER_KNOB_NO_STACK_CACHE maps one
//     stack per fiber, so the counters measure what they claim);
//   - a reused guarded stack still has its guard (death test);
//   - unguarded arena stacks share a page between one stack's top and the
//     next one's canary, yet neither disturbs the other (UnguardedNeighbours)
//     and an overwritten canary is still reported (death test);
//   - a slot that changes stack size gives its arena stack to the next slot
//     of that size (SpareArenaStacksAreReused);
//   - a breadth-first burst runs each fiber on the stack of the one that
//     exited before it (the per-KLT stash), touching a few pages instead of
//     one per fiber, and the untouched stacks it gave up serve later creates;
//     runs of exits and of starts longer than a stash meet in the shared
//     pool (I-ST4);
//   - fiber_shutdown unmaps every stack and arena (/proc/self/maps is back to
//     its size before the runtime ran).
// How each was seen failing: papers/results/stacks.md, "Tests".
#include <alloca.h>
#include <stdio.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

fiber_test_stack_counters_t counters() {
  fiber_test_stack_counters_t c{};
  fiber_test_get_stack_counters(&c);
  return c;
}

std::uint64_t maps_of(const fiber_test_stack_counters_t& c) { return c.own_maps + c.arena_maps; }
// New stacks: every fiber created without one ran on a reused stack.
std::uint64_t new_stacks(const fiber_test_stack_counters_t& c) { return c.own_maps + c.carved; }

class stacks_test : public runtime_test {
 protected:
  void TearDown() override {
    runtime_test::TearDown();
    fiber_test_set_knob(FIBER_KNOB_NO_STACK_CACHE, 0);
    fiber_test_set_knob(FIBER_KNOB_UNGUARDED_STACKS, 0);
    fiber_test_set_knob(FIBER_KNOB_TRIM_ALL, 0);
  }
};

void* nop(void*) { return nullptr; }

constexpr unsigned kSerial = 2000;

// Creates and joins kSerial fibers one after the other, from a fiber.
void* serial(void*) {
  for (unsigned i = 0; i < kSerial; ++i) {
    fiber_t f = spawn(nop);
    if (!f || fiber_join(f, nullptr) != 0) return reinterpret_cast<void*>(1);
  }
  return nullptr;
}

TEST_F(stacks_test, StacksAreReused) {
  start(2, 0);
  auto before = counters();
  EXPECT_EQ(join(spawn(serial)), nullptr);
  auto after = counters();
  // The serial loop's fiber itself may need a new stack; a child one more on
  // each KLT: the loop's fiber, woken by a child that exited on the other
  // KLT, continues there (on_wake queues it on the waker's KLT) and creates
  // from that KLT's slot cache (slots.cpp I-SC1), which is empty the first
  // time (seen: 5 new stacks in about 1 run of 100); each KLT's stash one for
  // its first exit (stacks.cpp, I-ST3).  An arena (64 stacks) covers them all.
  EXPECT_LE(maps_of(after) - maps_of(before), 2u);
  EXPECT_LE(new_stacks(after) - new_stacks(before), 1u + 2u + 2u) << "of " << kSerial << " fibers";
}

TEST_F(stacks_test, WithoutTheCacheEveryFiberMapsAStack) {  // the control of StacksAreReused
  fiber_test_set_knob(FIBER_KNOB_NO_STACK_CACHE, 1);
  start(2, 0);
  auto before = counters();
  EXPECT_EQ(join(spawn(serial)), nullptr);
  auto after = counters();
  EXPECT_GE(after.own_maps - before.own_maps, kSerial);
}

// From an OS thread (no KLT cache: the global pool), the same holds.
TEST_F(stacks_test, StacksAreReusedFromAnOsThread) {
  start(1, 0);
  auto before = counters();
  for (unsigned i = 0; i < 500; ++i) {
    fiber_t f = spawn(nop);
    ASSERT_NE(f, 0u);
    join(f);
  }
  auto after = counters();
  EXPECT_LE(maps_of(after) - maps_of(before), 1u);
  EXPECT_LE(new_stacks(after) - new_stacks(before), 1u + 1u) << "of 500 fibers";  // + the stash's (I-ST3)
}

// Many live fibers, then many again: the second wave runs on the first's
// stacks (through the KLT caches and the global pool).  The other KLT's cache
// may keep up to kCacheMax (64) free slots the creator cannot take (I-C1), so
// up to that many are new.
// Creates n fibers, then joins them all (from a fiber: wave<n>).
template <unsigned n>
void* wave(void*) {
  std::vector<fiber_t> ids(n);
  for (auto& id : ids)
    if (!(id = spawn(nop))) return reinterpret_cast<void*>(1);
  for (auto id : ids)
    if (fiber_join(id, nullptr) != 0) return reinterpret_cast<void*>(1);
  return nullptr;
}
constexpr unsigned kWave = 1000;

TEST_F(stacks_test, WavesOfFibersReuseTheFirstWavesStacks) {
  start(2, 0);
  EXPECT_EQ(join(spawn(wave<kWave>)), nullptr);
  auto before = counters();
  EXPECT_EQ(join(spawn(wave<kWave>)), nullptr);
  auto after = counters();
  EXPECT_LE(maps_of(after) - maps_of(before), 1u);
  EXPECT_LE(after.carved - before.carved, 64u + 2u);
}

// A slot that takes a custom size gives up its arena stack; the next default
// fiber takes that one instead of carving a new one.
void* sizes(void*) {
  for (unsigned i = 0; i < 200; ++i) {
    fiber_t a = spawn(nop, nullptr, i % 2 ? 64 * 1024 : 0);
    if (!a || fiber_join(a, nullptr) != 0) return reinterpret_cast<void*>(1);
  }
  return nullptr;
}

TEST_F(stacks_test, SpareArenaStacksAreReused) {
  start(1, 0);
  auto before = counters();
  EXPECT_EQ(join(spawn(sizes)), nullptr);
  auto after = counters();
  EXPECT_LE(after.carved - before.carved, 3u);
}

// ---- the per-KLT stash (stacks.cpp, I-ST1..3) -----------------------------------------

// A breadth-first burst: one fiber creates kBurst fibers, none of which runs
// before the creator parks (1 KLT, no ticks, FIFO), then joins them.  Each
// child starts after the one before it exited, on the stack it left behind,
// so the burst touches a handful of stacks, not kBurst.  The serial fibers
// first allocate the control blocks' chunk (4096 slots, touched when made),
// so that the page faults counted are the stacks'.
constexpr unsigned kBurst = 3000;
constexpr auto burst = wave<kBurst>;

long minor_faults() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

TEST_F(stacks_test, ABurstRunsOnTheStacksOfTheFibersThatExitedBeforeIt) {
  start(1, 0);
  join(spawn(nop));  // the chunk of control blocks exists from here on
  auto before = counters();
  const long faults0 = minor_faults();
  EXPECT_EQ(join(spawn(burst)), nullptr);
  const long faults = minor_faults() - faults0;
  auto after = counters();
  // Every child but the first starts on the stack of the child before it.
  EXPECT_GE(after.warm_starts - before.warm_starts, kBurst - 2);
#if !defined(__SANITIZE_ADDRESS__)  // ASan unpoisons each created fiber's stack: shadow pages
  // One fault per child without the stash (each touches its own stack's top
  // page); with it, about none.  The bound leaves room for the runtime's
  // other threads and the vector.
  EXPECT_LT(faults, static_cast<long>(kBurst / 4)) << "page faults for " << kBurst << " fibers";
#else
  (void)faults;
#endif
}

// The stacks a burst gave up are the next burst's: no new stack is carved.
TEST_F(stacks_test, StacksGivenUpAtFirstRunServeLaterCreates) {
  start(1, 0);
  EXPECT_EQ(join(spawn(burst)), nullptr);
  auto before = counters();
  EXPECT_EQ(join(spawn(burst)), nullptr);
  auto after = counters();
  EXPECT_LE(new_stacks(after) - new_stacks(before), 2u) << "of " << kBurst << " fibers";
}

void* park_until_released(void* p) {
  auto* sem = static_cast<fiber_sem_t*>(p);
  fiber_sem_wait(sem);
  return nullptr;
}

// I-ST4: a run of exits longer than a stash spills warm stacks to the shared
// pool, and a later run of first runs longer than a stash takes them back.
// kRun fibers start and park, are released and exit one after another; then
// kRun new fibers start one after another (1 KLT, no ticks, FIFO: a yield
// lets every queued fiber run before the yielder).  Without the pool only a
// stash's worth of them (16) would start warm.
constexpr unsigned kRun = 200;
std::uint64_t g_run_warm = 0;  // warm starts among the second run's

bool park_run(std::vector<fiber_t>& ids, fiber_sem_t* sem) {
  for (auto& id : ids)
    if (!(id = spawn(park_until_released, sem))) return false;
  fiber_yield();  // each starts and parks
  return true;
}

bool release_run(const std::vector<fiber_t>& ids, fiber_sem_t* sem) {
  for (std::size_t i = 0; i < ids.size(); ++i) fiber_sem_post(sem);
  for (auto id : ids)
    if (fiber_join(id, nullptr) != 0) return false;  // they exit one after another
  return true;
}

void* exits_then_starts(void*) {
  fiber_sem_t sem;
  fiber_sem_init(&sem, 0);
  std::vector<fiber_t> first(kRun), second(kRun);
  bool ok = park_run(first, &sem) && release_run(first, &sem);
  const auto before = counters();
  ok = ok && park_run(second, &sem);
  g_run_warm = counters().warm_starts - before.warm_starts;
  ok = ok && release_run(second, &sem);
  fiber_sem_destroy(&sem);
  return ok ? nullptr : reinterpret_cast<void*>(1);
}

TEST_F(stacks_test, ARunOfStartsLongerThanAStashTakesWarmStacksFromTheSharedPool) {
  start(1, 0);
  EXPECT_EQ(join(spawn(exits_then_starts)), nullptr);
  EXPECT_GE(g_run_warm, kRun - 1) << "of " << kRun << " fibers started in a row";
}

// ---- guards and canaries on reused stacks -------------------------------------------

int recurse(int n) {
  volatile char buf[1024];
  std::memset(const_cast<char*>(buf), n, sizeof buf);
  return n + (n > 100000000 ? 0 : recurse(n + 1)) + buf[7];
}

void* overflow(void*) { return reinterpret_cast<void*>(static_cast<intptr_t>(recurse(0))); }

void* reuse_then_overflow(void*) {
  join(spawn(nop));  // its stack goes to this KLT's cache
  auto before = counters();
  fiber_t f = spawn(overflow);
  if (f && new_stacks(counters()) == new_stacks(before)) fprintf(stderr, "overflowing on a reused stack\n");
  if (f) fiber_join(f, nullptr);
  return nullptr;
}

void reused_guard() {
  fiber_config_t cfg = config(1, 0);
  if (fiber_init(&cfg) != 0) return;
  join(spawn(reuse_then_overflow));
  fiber_shutdown();
}

TEST(stacks_death, AReusedStackKeepsItsGuard) {
  EXPECT_EXIT(reused_guard(), ::testing::KilledBySignal(SIGABRT),
              "overflowing on a reused stack.*fiber: fatal: fiber [0-9]+: stack overflow \\(fault at "
              "0x[0-9a-f]+, guard page hit\\)");
}

// Unguarded arena stacks (stacks.cpp): stack_lo is page aligned, the canary
// is the kCanaryBytes below it, and stack_hi is kCanaryBytes below the page
// boundary above the top frame.  Neighbours that park and resume many times
// with frames at their tops never trip each other's canaries.
std::atomic<unsigned> g_rounds{0};
void* top_heavy(void*) {
  for (int i = 0; i < 20; ++i) {
    volatile char buf[2048];  // writes near the top page
    std::memset(const_cast<char*>(buf), i, sizeof buf);
    fiber_yield();
    g_rounds.fetch_add(1, std::memory_order_relaxed);  // relaxed: counted after the joins
  }
  return nullptr;
}

TEST_F(stacks_test, UnguardedNeighboursLeaveEachOthersCanariesAlone) {
  fiber_test_set_knob(FIBER_KNOB_UNGUARDED_STACKS, 1);
  start(2, 1000);
  g_rounds.store(0);
  std::vector<fiber_t> ids(300);
  for (auto& id : ids) ASSERT_NE(id = spawn(top_heavy), 0u);
  for (auto id : ids) join(id);
  EXPECT_EQ(g_rounds.load(), 300u * 20);
}

// Writes the kCanaryBytes just below this fiber's stack_lo (computed from the
// layout above), as an overflow by a few bytes would, then switches.
void* smash_own_canary(void*) {
  auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t top_page_end = (here + 4095) & ~std::uintptr_t{4095};
  char* lo = reinterpret_cast<char*>(top_page_end - FIBER_DEFAULT_STACK_SIZE);
  std::memset(lo - 64, 0x5a, 64);
  fiber_yield();
  return nullptr;
}

void canary_smash() {
  fiber_test_set_knob(FIBER_KNOB_UNGUARDED_STACKS, 1);
  fiber_config_t cfg = config(1, 0);
  if (fiber_init(&cfg) != 0) return;
  join(spawn(smash_own_canary));
  fiber_shutdown();
}

TEST(stacks_death, AnOverwrittenCanaryOfAnArenaStackIsReported) {
  EXPECT_EXIT(canary_smash(), ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(canary");
}

// ---- what a cached stack keeps resident --------------------------------------------

long rss_now() {
  long pages = 0, res = 0;
  if (FILE* fp = fopen("/proc/self/statm", "r")) {
    if (fscanf(fp, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(fp);
  }
  return res * 4096;
}

constexpr std::size_t kDeep = 128 * 1024;

// Touches kDeep bytes of its stack and parks while that deep (a switch is
// where the runtime sees how deep a stack went; a park always switches, a
// yield with nothing else runnable does not).
__attribute__((noinline)) void* deep(void*) {
  auto* buf = static_cast<volatile char*>(alloca(kDeep));
  for (std::size_t i = 0; i < kDeep; i += 4096) buf[i] = 1;
  fiber_sleep_ns(kMs);
  asm volatile("" : : "r"(buf) : "memory");
  return nullptr;
}

// Joined from the OS thread, the slots go straight to the global pool; with
// FIBER_KNOB_TRIM_ALL it keeps none untrimmed.  Deep stacks give their pages
// back; shallow ones cost no system call.
TEST_F(stacks_test, DeepCachedStacksAreTrimmedShallowOnesAreNot) {
  fiber_test_set_knob(FIBER_KNOB_TRIM_ALL, 1);
  start(1, 0);
  constexpr unsigned kN = 64;
  std::vector<fiber_t> ids(kN);
  auto c0 = counters();
  for (auto& id : ids) ASSERT_NE(id = spawn(nop), 0u);
  for (auto id : ids) join(id);
  auto c1 = counters();
  EXPECT_EQ(c1.trims - c0.trims, 0u) << "shallow stacks trimmed";
  for (auto& id : ids) ASSERT_NE(id = spawn(deep), 0u);
  while (stats().live > 0) usleep(1000);  // all ran and exited; not yet joined
  const long before = rss_now();
  for (auto id : ids) join(id);
  const long after = rss_now();
  auto c2 = counters();
  EXPECT_EQ(c2.trims - c1.trims, kN);
  EXPECT_GE(before - after, static_cast<long>(kN * (kDeep - 8192))) << "RSS did not drop";
}

// I-SC3's count of untrimmed stacks follows slots out of the pool too: round
// after round, deep fibers created on a KLT (its cache refills from the pool)
// and joined from the OS thread (each slot back into the pool) never hold
// more than kRoundN stacks in the pool, far below its 4096, so nothing is
// trimmed.  A count that only grew would pass 4096 within the rounds and
// trim every deep stack put in after that.
constexpr unsigned kRoundN = 200, kRounds = 40;

void* create_deep_round(void* out) {
  auto* ids = static_cast<fiber_t*>(out);
  for (unsigned i = 0; i < kRoundN; ++i)
    if (!(ids[i] = spawn(deep))) return reinterpret_cast<void*>(1);
  return nullptr;
}

TEST_F(stacks_test, SlotsTakenBackFromThePoolLeaveItsResidentCount) {
  start(1, 0);
  std::vector<fiber_t> ids(kRoundN);
  const auto c0 = counters();
  for (unsigned r = 0; r < kRounds; ++r) {
    ASSERT_EQ(join(spawn(create_deep_round, ids.data())), nullptr);
    for (auto id : ids) join(id);
  }
  EXPECT_EQ(counters().trims - c0.trims, 0u) << "deep stacks trimmed with the pool below its bound";
}

// ---- shutdown returns the memory ----------------------------------------------------

struct maps_size {
  long lines = 0;
  unsigned long bytes = 0;
};

maps_size read_maps() {
  maps_size m;
  char line[512];
  FILE* fp = fopen("/proc/self/maps", "r");
  if (!fp) return m;
  while (fgets(line, sizeof line, fp)) {
    unsigned long lo = 0, hi = 0;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
      ++m.lines;
      m.bytes += hi - lo;
    }
  }
  fclose(fp);
  return m;
}

void run_wave(unsigned n, bool unguarded) {
  fiber_test_set_knob(FIBER_KNOB_UNGUARDED_STACKS, unguarded ? 1 : 0);
  fiber_config_t cfg = config(2, 0);
  ASSERT_EQ(fiber_init(&cfg), 0);
  fiber_sem_t sem;
  fiber_sem_init(&sem, 0);
  std::vector<fiber_t> ids(n);
  for (auto& id : ids) ASSERT_NE(id = spawn(park_until_released, &sem), 0u);
  for (unsigned i = 0; i < n; ++i) fiber_sem_post(&sem);
  for (auto id : ids) join(id);
  fiber_sem_destroy(&sem);
  ASSERT_EQ(fiber_shutdown(), 0);
  fiber_test_set_knob(FIBER_KNOB_UNGUARDED_STACKS, 0);
}

TEST(stacks_shutdown, ShutdownUnmapsEveryStack) {
  // Warm: the KLT threads' malloc arenas and the like exist now.  1000
  // fibers, so that the KLTs' run queues grow past their first array too
  // (local_queue.hpp: a KLT's first malloc makes its thread a 64 MiB arena,
  // which glibc keeps for the next threads; not a stack's mapping).
  run_wave(1000, false);
  run_wave(10, true);
  const maps_size base = read_maps();
  run_wave(3000, false);  // 47 guarded arenas, 6000 VMAs
  run_wave(3000, true);   // 47 unguarded arenas
  const maps_size end = read_maps();
  EXPECT_LE(end.lines, base.lines + 8) << "mappings left behind by the stacks";
  EXPECT_LE(end.bytes, base.bytes + 64ul * 1024 * 1024) << "address space left behind";
}

}  // namespace
