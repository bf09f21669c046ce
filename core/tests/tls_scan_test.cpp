// core/tests/tls_scan_test.cpp - which preempted fibers may resume on another
// KLT (policy.hpp I-R3, core/src/tls_scan.cpp): with FIBER_MIGRATE_SCAN, the
// default, a fiber whose stack or saved registers hold an address in its
// KLT's thread-local storage stays on that KLT, and the others move.
//
// Each holder keeps a TLS address in one place across a spin with no runtime
// call (only preemption can move it) and checks, afresh each round, that the
// address is still its KLT's.  Three places, three kinds of TLS: errno's (libc's
// static TLS) in a stack slot, a thread_local of this program in a
// callee-saved register (r15: the trampoline's extra pushes) and in a vector
// register (xmm15: the xsave area).  The negative controls run the same
// holders with FIBER_MIGRATE_ALWAYS: they move and see the other KLT's
// address, so the check can fail.
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

// Called through volatile pointers: the compiler may not reuse an earlier
// result (both are const functions to it), so each call reads the KLT's own.
pid_t (*volatile g_tid)() = gettid;
int* (*volatile g_errno_loc)() = __errno_location;

thread_local long t_probe;
__attribute__((noinline)) long* probe_addr() { return &t_probe; }
long* (*volatile g_probe)() = probe_addr;

struct holder {
  std::atomic<bool>* stop;
  long rounds = 0;
  long wrong = 0;  // rounds that found an address of another KLT's TLS
  long moves = 0;  // KLT changes seen
  pid_t last = 0;
  void saw_klt() {
    const pid_t t = g_tid();
    if (last && t != last) ++moves;
    last = t;
  }
  bool go() const { return !stop->load(std::memory_order_relaxed); }  // relaxed: a stop flag
};

// Holds nothing of its KLT's: only the thread id, a number.
void* plain(void* p) {
  auto* h = static_cast<holder*>(p);
  while (h->go()) {
    h->saw_klt();
    ++h->rounds;
  }
  return nullptr;
}

// errno's address in a stack slot (volatile: kept in memory) for the whole run.
void* errno_in_stack(void* p) {
  auto* h = static_cast<holder*>(p);
  int* volatile held = g_errno_loc();
  while (h->go()) {
    if (held != g_errno_loc()) ++h->wrong;
    h->saw_klt();
    ++h->rounds;
  }
  return nullptr;
}

// Takes this KLT's address of t_probe, spins `iters` times with it only in
// r15, and says whether it is still this KLT's.  Every other copy is cleared
// first: the input register, and the scratch registers, one of which still
// holds it from the call that computed it; and it is compared here, so that
// no callee-saved register of the caller keeps it between rounds.  (Stale
// copies in rax and in the caller's rbp let the vector test pass with the
// xsave area unscanned: mutant tls_scan_skips_xsave_area.)
#define FIBER_TEST_CLEAR_SCRATCH                                                              \
  "xorl %%eax, %%eax\n\txorl %%ecx, %%ecx\n\txorl %%edx, %%edx\n\txorl %%esi, %%esi\n\t" \
  "xorl %%edi, %%edi\n\txorl %%r8d, %%r8d\n\txorl %%r9d, %%r9d\n\txorl %%r10d, %%r10d\n\t"  \
  "xorl %%r11d, %%r11d\n\t"
#define FIBER_TEST_SCRATCH "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"
__attribute__((noinline)) bool same_after_r15(long iters) {
  long* p = g_probe();
  asm volatile(
      "movq %0, %%r15\n\t"
      "xorl %k0, %k0\n\t" FIBER_TEST_CLEAR_SCRATCH
      "1: decq %1\n\t"
      "jnz 1b\n\t"
      "movq %%r15, %0\n\t"
      "xorl %%r15d, %%r15d"
      : "+r"(p), "+r"(iters)
      :
      : "r15", "cc", FIBER_TEST_SCRATCH);
  return p == g_probe();
}

// The same with the address only in xmm15.
__attribute__((noinline)) bool same_after_xmm15(long iters) {
  long* p = g_probe();
  asm volatile(
      "movq %0, %%xmm15\n\t"
      "xorl %k0, %k0\n\t" FIBER_TEST_CLEAR_SCRATCH
      "1: decq %1\n\t"
      "jnz 1b\n\t"
      "movq %%xmm15, %0\n\t"
      "pxor %%xmm15, %%xmm15"
      : "+r"(p), "+r"(iters)
      :
      : "xmm15", "cc", FIBER_TEST_SCRATCH);
  return p == g_probe();
}

constexpr long kSpin = 200000;  // tens of microseconds: most ticks land inside the asm loop

// A register holder: rounds of `Same` (same_after_r15 or same_after_xmm15).
template <bool (*Same)(long)>
void* in_register(void* p) {
  auto* h = static_cast<holder*>(p);
  while (h->go()) {
    if (!Same(kSpin)) ++h->wrong;
    h->saw_klt();
    ++h->rounds;
  }
  return nullptr;
}
constexpr auto in_r15 = in_register<same_after_r15>;
constexpr auto in_xmm15 = in_register<same_after_xmm15>;

struct outcome {
  long wrong = 0, moves = 0, rounds = 0;
  fiber_stats_t st{};
};

// 3 fibers running fn on 2 KLTs, 1 ms quantum, for `ms`: more fibers than
// KLTs, so fibers that may move do (through the global queue, I-R2).
outcome run3(void* (*fn)(void*), unsigned migrate, int ms = 400) {
  fiber_config_t c = config(2, 1000);
  c.migrate_preempted = migrate;
  outcome o;
  EXPECT_EQ(fiber_init(&c), 0);
  std::atomic<bool> stop{false};
  holder h[3] = {{&stop}, {&stop}, {&stop}};
  fiber_t ids[3];
  for (int i = 0; i < 3; ++i) ids[i] = spawn(fn, &h[i]);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  o.st = stats();
  stop.store(true, std::memory_order_relaxed);  // relaxed: see holder::go
  for (int i = 0; i < 3; ++i) {
    join(ids[i]);
    o.wrong += h[i].wrong;
    o.moves += h[i].moves;
    o.rounds += h[i].rounds;
  }
  EXPECT_EQ(fiber_shutdown(), 0);
  return o;
}

class TlsScan : public runtime_test {
 protected:
  void SetUp() override {
    if (!kPreemptive) GTEST_SKIP() << "no preemption in this build (TSan)";
    runtime_test::SetUp();
  }
};

// The default moves fibers that hold nothing: fair shares (I-R2) and the
// monitor's hand-off reach CPU-bound fibers.
TEST_F(TlsScan, PlainSpinnersMoveByDefault) {
  fiber_config_t c;
  fiber_config_init(&c);
  EXPECT_EQ(c.migrate_preempted, FIBER_MIGRATE_SCAN);
  const outcome o = run3(plain, FIBER_MIGRATE_SCAN);
  EXPECT_GT(o.st.preemptions, 20u);
  EXPECT_GT(o.moves, 0);
  // Nothing on their stacks points into TLS: the scan lets (nearly) all go.
  EXPECT_LT(o.st.pinned_tls * 10, o.st.preemptions) << o.st.pinned_tls << " of " << o.st.preemptions;
}
TEST_F(TlsScan, NeverKeepsPlainSpinners) {
  const outcome o = run3(plain, FIBER_MIGRATE_NEVER);
  EXPECT_GT(o.st.preemptions, 20u);
  EXPECT_EQ(o.moves, 0);
  EXPECT_EQ(o.st.pinned_tls, 0u);  // no scan in this mode
}

// always_held: the fiber holds the address at every instruction (errno's in
// its frame), so it never moves; the register holders hold it only inside
// the spin, and a tick between two rounds may move them, rightly.
void expect_pinned(const outcome& o, bool always_held) {
  SCOPED_TRACE("preemptions " + std::to_string(o.st.preemptions) + ", pinned " + std::to_string(o.st.pinned_tls) +
               ", wrong " + std::to_string(o.wrong) + ", moves " + std::to_string(o.moves) + ", rounds " +
               std::to_string(o.rounds) + ", deferred pc " + std::to_string(o.st.deferred_pc) + ", count " +
               std::to_string(o.st.deferred_count));
  EXPECT_GT(o.st.preemptions, 20u);
  EXPECT_GT(o.rounds, 0);
  EXPECT_EQ(o.wrong, 0) << "a fiber holding a TLS address resumed on another KLT";
  if (always_held) EXPECT_EQ(o.moves, 0);
  EXPECT_GT(o.st.pinned_tls * 10, o.st.preemptions * 9) << o.st.pinned_tls << " of " << o.st.preemptions;
}
// The controls: the same holders moved anyway see the other KLT's TLS.
void expect_caught(const outcome& o) {
  EXPECT_GT(o.moves, 0);
  EXPECT_GT(o.wrong, 0) << "the holder cannot see a move: the positive test would pass vacuously";
}

TEST_F(TlsScan, ErrnoAddressInStackPins) { expect_pinned(run3(errno_in_stack, FIBER_MIGRATE_SCAN), true); }
TEST_F(TlsScan, ErrnoAddressInStackControl) { expect_caught(run3(errno_in_stack, FIBER_MIGRATE_ALWAYS)); }
TEST_F(TlsScan, ThreadLocalAddressInCalleeSavedRegisterPins) { expect_pinned(run3(in_r15, FIBER_MIGRATE_SCAN), false); }
TEST_F(TlsScan, ThreadLocalAddressInCalleeSavedRegisterControl) {
  expect_caught(run3(in_r15, FIBER_MIGRATE_ALWAYS));
}
TEST_F(TlsScan, ThreadLocalAddressInVectorRegisterPins) { expect_pinned(run3(in_xmm15, FIBER_MIGRATE_SCAN), false); }
TEST_F(TlsScan, ThreadLocalAddressInVectorRegisterControl) {
  expect_caught(run3(in_xmm15, FIBER_MIGRATE_ALWAYS));
}

}  // namespace
