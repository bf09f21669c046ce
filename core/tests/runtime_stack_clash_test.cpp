// core/tests/runtime_stack_clash_test.cpp - stack clash (issue 14, item 6): a
// frame larger than a page, from code compiled WITHOUT
// -fstack-clash-protection (this file is, see CMakeLists.txt), that starts
// near the end of a fiber stack must be reported as a stack overflow naming
// the fiber, never write silently into the mapping below (in a real program,
// the next fiber's live stack).
//
// Each body creates the clashing fiber and then a victim fiber whose stack
// lies directly below the first one's (as the next fiber's stack does in a
// real program; probe mappings make it certain), then makes one frame of a
// chosen size with alloca (no probes) so that sp lands
//   - inside a 64 KiB guard but past a 4 KiB one: the frame's first write
//     faults in the guard (GuardCoversAFrameThatSkipsOnePage);
//   - past the whole guard, on the victim's stack: nothing faults, and the
//     next switch (FrameThatSkipsTheGuardIsCaughtAtTheSwitch) or tick
//     (...AtATick) finds sp below the stack.
// On the old one-page guard none of the three was reported.
#include <alloca.h>
#include <stdio.h>
#include <sys/mman.h>
#include <x86intrin.h>

#include <cstdint>
#include <cstring>

#include "test_util.hpp"

#ifndef FIBER_STACK_GUARD_SIZE
#define FIBER_STACK_GUARD_SIZE ((size_t)4096)  // the negative control: the old one-page guard
#endif

namespace {

using namespace fiber_test;

constexpr std::size_t kPage = 4096;

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

enum class then { write_lowest, sleep, spin };

// One unprobed frame of `bytes`, then what `t` says.
__attribute__((noinline)) void big_frame(std::size_t bytes, then t) {
  auto* buf = static_cast<volatile char*>(alloca(bytes));
  switch (t) {
    case then::write_lowest: buf[0] = 1; break;  // an unprobed frame's first write
    case then::sleep: buf[0] = 1; fiber_sleep_ns(kMs); break;  // parks: a switch
    case then::spin: {
      unsigned long long end = __rdtsc() + 3'000'000'000ull;  // about a second, no calls
      while (__rdtsc() < end) asm volatile("" ::: "memory");
      break;
    }
  }
  asm volatile("" : : "r"(buf) : "memory");
}

struct clash {
  std::size_t below_lo;  // where the frame puts sp: this far below the stack's lowest byte
  then t;
};

void* clash_body(void* p) {
  auto* c = static_cast<clash*>(p);
  auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t lo = mapping_start(here);
  if (lo == 0) return nullptr;
  big_frame(here - lo + c->below_lo, c->t);
  return nullptr;
}

void* victim(void*) {
  fiber_sleep_ns(300 * kMs);  // alive, parked, its frames at the top of its stack
  return nullptr;
}

// Two adjacent free slots of `size` bytes that mmap will hand out next, high
// one first: probe mappings fill every higher gap that fits until two probes
// are adjacent; those two are freed, the rest are returned to be freed after
// the stacks are mapped.  false: not found.
bool adjacent_slots(std::size_t size, void** probes, int max, int* n) {
  *n = 0;
  while (*n < max) {
    void* p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    probes[(*n)++] = p;
    if (*n >= 2 && static_cast<char*>(p) + size == probes[*n - 2]) {
      munmap(probes[*n - 2], size);
      munmap(p, size);
      *n -= 2;
      return true;
    }
  }
  return false;
}

// On the only KLT, not preemptible: nothing else maps memory between the
// probes and the two stacks, so the victim's stack lies right below the
// clashing fiber's.
void* parent(void* p) {
  constexpr std::size_t kStack = 64 * 1024;
  constexpr int kMaxProbes = 512;
  static void* probes[kMaxProbes];
  int n = 0;
  fiber_preempt_disable();
  bool ok = adjacent_slots(kStack + FIBER_STACK_GUARD_SIZE, probes, kMaxProbes, &n);
  fiber_t f = ok ? spawn(clash_body, p, kStack) : 0;
  fiber_t v = ok ? spawn(victim, nullptr, kStack) : 0;
  for (int i = 0; i < n; ++i) munmap(probes[i], kStack + FIBER_STACK_GUARD_SIZE);
  fiber_preempt_enable();
  if (f) fiber_join(f, nullptr);
  if (v) fiber_join(v, nullptr);
  if (!ok) fprintf(stderr, "setup failed: no two adjacent free slots\n");
  return nullptr;
}

// Ticks every millisecond, but not for the switch variant: a tick landing
// between its frame and its sleep would see the overflow first ("seen at a
// tick"; it happened once under a loaded CI run).
void run_clash(std::size_t below_lo, then t) {
  fiber_config_t cfg = config(1, t == then::sleep ? 0 : 1000);
  if (fiber_init(&cfg) != 0) return;
  clash c{below_lo, t};
  fiber_t p = spawn(parent, &c);
  if (p) fiber_join(p, nullptr);
  fiber_shutdown();
}

TEST(stack_clash_death, GuardCoversAFrameThatSkipsOnePage) {
  EXPECT_EXIT(run_clash(2 * kPage, then::write_lowest), ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(fault at 0x[0-9a-f]+, guard page hit\\)");
}

TEST(stack_clash_death, FrameThatSkipsTheGuardIsCaughtAtTheSwitch) {
  EXPECT_EXIT(run_clash(FIBER_STACK_GUARD_SIZE + 4 * kPage, then::sleep),
              ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(sp at 0x[0-9a-f]+, a frame skipped the "
              "guard; seen at a switch\\)");
}

TEST(stack_clash_death, FrameThatSkipsTheGuardIsCaughtAtATick) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EXIT(run_clash(FIBER_STACK_GUARD_SIZE + 4 * kPage, then::spin),
              ::testing::KilledBySignal(SIGABRT),
              "fiber: fatal: fiber [0-9]+: stack overflow \\(sp at 0x[0-9a-f]+, a frame skipped the "
              "guard; seen at a tick\\)");
}

}  // namespace
