// core/tests/runtime_stack_clash_test.cpp - stack clash (issue 14, item 6): a
// frame larger than a page, from code compiled WITHOUT
// -fstack-clash-protection (this file is, see CMakeLists.txt), that starts
// near the end of a fiber stack must be reported as a stack overflow naming
// the fiber, never write silently into the mapping below (in a real program,
// the next fiber's live stack).
//
// Each body maps a "victim" region where a one-page guard would have ended
// (MAP_FIXED_NOREPLACE: it fails harmlessly where the real guard already is),
// standing for the next fiber's stack, then makes one frame of a chosen size
// with alloca (no probes) so that sp lands
//   - inside a 64 KiB guard but past a 4 KiB one: the frame's first write
//     faults in the guard (GuardCoversAFrameThatSkipsOnePage);
//   - past the whole guard, in the victim: the write lands silently, and the
//     next switch (FrameThatSkipsTheGuardIsCaughtAtTheSwitch) or tick
//     (...AtATick) finds sp below the stack.
#include <alloca.h>
#include <stdio.h>
#include <sys/mman.h>
#include <x86intrin.h>

#include <cstdint>
#include <cstring>

#include "test_util.hpp"

#ifndef FIBER_STACK_GUARD_SIZE
#define FIBER_STACK_GUARD_SIZE ((size_t)64 * 1024)  // the negative control builds against old headers
#endif

namespace {

using namespace fiber_test;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kVictim = 128 * 1024;

// Start of the mapping that holds addr (/proc/self/maps): for a guarded fiber
// stack, the lowest usable byte (the guard below it is a separate mapping).
std::uintptr_t mapping_start(std::uintptr_t addr) {
  static char line[512];  // static: the fiber stack is small
  std::uintptr_t found = 0;
  FILE* fp = fopen("/proc/self/maps", "r");
  if (!fp) return 0;
  while (!found && fgets(line, sizeof line, fp)) {
    unsigned long lo = 0, hi = 0;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) found = lo;
  }
  fclose(fp);
  return found;
}

void map_victim(std::uintptr_t top) {
  void* want = reinterpret_cast<void*>(top - kVictim);
  void* p = mmap(want, kVictim, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                 -1, 0);
  if (p != MAP_FAILED && p != want) munmap(p, kVictim);  // old kernels: a hint only
}

enum class then { write_lowest, sleep, spin };

// One unprobed frame of `bytes`, then what `t` says.
__attribute__((noinline)) void big_frame(std::size_t bytes, then t) {
  auto* buf = static_cast<volatile char*>(alloca(bytes));
  switch (t) {
    case then::write_lowest: buf[0] = 1; break;  // an unprobed frame's first write
    case then::sleep: buf[0] = 1; fiber_sleep_ns(1000); break;
    case then::spin: {
      unsigned long long end = __rdtsc() + 3'000'000'000ull;  // about a second, no calls
      while (__rdtsc() < end) asm volatile("" ::: "memory");
      break;
    }
  }
  asm volatile("" : : "r"(buf) : "memory");
}

struct clash { std::size_t below_lo; std::uintptr_t victim_top_below_lo; then t; };

void* clash_body(void* p) {
  auto* c = static_cast<clash*>(p);
  auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t lo = mapping_start(here);
  if (lo == 0) return nullptr;
  map_victim(lo - c->victim_top_below_lo);
  big_frame(here - lo + c->below_lo, c->t);
  return nullptr;
}

void run_clash(clash c) {
  fiber_config_t cfg = config(1, 1000);
  if (fiber_init(&cfg) != 0) return;
  fiber_t f = spawn(clash_body, &c, 64 * 1024);
  if (f) fiber_join(f, nullptr);
  fiber_shutdown();
}

TEST(stack_clash_death, GuardCoversAFrameThatSkipsOnePage) {
  EXPECT_EXIT(run_clash({2 * kPage, kPage, then::write_lowest}), ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(fault at 0x[0-9a-f]+, guard page hit\\)");
}

TEST(stack_clash_death, FrameThatSkipsTheGuardIsCaughtAtTheSwitch) {
  EXPECT_EXIT(run_clash({FIBER_STACK_GUARD_SIZE + 4 * kPage, FIBER_STACK_GUARD_SIZE, then::sleep}),
              ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(sp at 0x[0-9a-f]+, a frame skipped the "
              "guard; seen at a switch\\)");
}

TEST(stack_clash_death, FrameThatSkipsTheGuardIsCaughtAtATick) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EXIT(run_clash({FIBER_STACK_GUARD_SIZE + 4 * kPage, FIBER_STACK_GUARD_SIZE, then::spin}),
              ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(sp at 0x[0-9a-f]+, a frame skipped the "
              "guard; seen at a tick\\)");
}

}  // namespace
