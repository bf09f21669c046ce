// core/src/interpose_futex.cpp - futex waits made through libc's syscall():
// a fiber parks, its KLT does not (issue 12: std::future, std::atomic::wait,
// std::latch, std::barrier, std::counting_semaphore; papers/design.md 15.x
// "futex waits through syscall()").
//
// Why syscall().  libstdc++ (GCC 12) waits for a std::future with
// syscall(SYS_futex, FUTEX_WAIT / FUTEX_WAIT_BITSET...) (src/c++11/futex.cc,
// ops WITHOUT FUTEX_PRIVATE_FLAG) and C++20's atomic waits, latch, barrier and
// counting_semaphore with the same call, inlined from <bits/atomic_wait.h>
// (private ops).  Interposing syscall() catches both, from the shared library
// (lookup order) and from a static program (fiber_init references
// interpose_futex_init, so this object is linked and its syscall() is the
// executable's own, which libstdc++'s calls bind to).
//
// What each call does:
//   FUTEX_WAIT, FUTEX_WAIT_BITSET from a fiber: the fiber parks in a futex
//     lot keyed by the address (futex_lot.hpp: the parking lot's register,
//     FENCE, re-check *uaddr == val, park; I-FX1, checked by
//     models/futex_lot.cpp).  EAGAIN when the value differs before we
//     sleep, ETIMEDOUT at the timeout (FUTEX_WAIT: relative, on
//     CLOCK_MONOTONIC; FUTEX_WAIT_BITSET: absolute, on CLOCK_MONOTONIC or with
//     FUTEX_CLOCK_REALTIME on CLOCK_REALTIME - as the kernel defines them),
//     0 when woken.  A return 0 without a wake is legal for futex (callers
//     re-check), and is what the re-check below gives.
//   FUTEX_WAKE, FUTEX_WAKE_BITSET from anyone: wakes up to n fibers parked on
//     the address, then calls the real futex wake for the rest of n (OS-thread
//     waiters in the kernel); returns the total.  A wake with a bitset other
//     than FUTEX_BITSET_MATCH_ANY wakes every fiber of the address (their
//     bitsets are not kept: a spurious wake-up for the ones that do not match,
//     never a lost one) and passes the whole n to the kernel.
//   FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP: every fiber parked on
//     the address(es) is woken (spuriously: they re-check), then the kernel's.
//   Every other number or op, any call from an OS thread (waits), a child
//     forked from a fiber, and everything when FIBER_KNOB_NO_FUTEX_INTERPOSE
//     is on: the real syscall() with the six arguments unchanged.
//
// Wakes the interposer does not see.  glibc's own futex calls (its internal
// INTERNAL_SYSCALL, never syscall()), inline `syscall` instructions, another
// process's wake of a shared futex, a wake through another mapping of the
// same page: none reaches this lot.  A parked fiber therefore re-checks the
// value by itself, first after kRecheckNs (1 ms), doubling to the lot's
// kMaxRecheckNs (~67 ms) (I-FX2): such a wake is seen within that period if
// it changed the value, and returns 0.  A wake that leaves the value
// unchanged is not seen until a wake we do see or the timeout.
//
// Process-shared futexes (no FUTEX_PRIVATE_FLAG) are handled, not passed
// through: libstdc++'s std::future uses exactly those ops on private memory,
// so passing them through would leave std::future blocking the KLT.  A futex
// really shared with another process works through the re-check above
// (bounded, ~67 ms worst case, latency, never a hang).
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

#include "fiber/detail/futex_lot.hpp"
#include "real_symbol.hpp"
#include "runtime.hpp"

// libc's syscall(), read by the trampoline below with a plain load (an x86-64
// load is the relaxed load of next_symbol: idempotent, every thread finds the
// same pointer).  C linkage and hidden: the assembly names it PC-relatively.
using syscall_fn = long (*)(long, ...);
extern "C" {
__attribute__((visibility("hidden"))) std::atomic<syscall_fn> fiber_real_syscall_fn{nullptr};
}
static_assert(sizeof(std::atomic<syscall_fn>) == sizeof(void*), "the trampoline loads it as one word");

namespace fiber::detail {
namespace {

basic_futex_lot<native_seam> g_futex_lot;  // zero storage is a valid, empty lot; constant-initialised
constexpr std::uint64_t kRecheckNs = 1000000;  // I-FX2: first self re-check after 1 ms

std::atomic<bool> g_forked{false};

// A raw `syscall` instruction with syscall(2)'s errno convention: the
// fallback when libc's syscall() is not known (a fully static program, or a
// call made while this thread runs dlsym).
long raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  if (static_cast<unsigned long>(ret) > static_cast<unsigned long>(-4096L)) {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return ret;
}

void in_child() noexcept {
  // relaxed (both): the child has one thread.  Its KLTs are gone: plain futex calls.
  if (g_rt.load(std::memory_order_relaxed)) g_forked.store(true, std::memory_order_relaxed);
}

__attribute__((constructor)) void resolve_at_load() {
  next_symbol(fiber_real_syscall_fn, "syscall");
  pthread_atfork(nullptr, nullptr, in_child);
}

// ---- who waits, and until when --------------------------------------------------

// The calling fiber, or nullptr (an OS thread, a fork child, the knob).
fcb* futex_fiber() noexcept {
  if (knobs.no_futex_interpose.load(std::memory_order_relaxed)) return nullptr;  // relaxed: a test knob
  if (g_forked.load(std::memory_order_relaxed)) return nullptr;                  // relaxed: see in_child
  return current_fiber();
}

int fail(int e) noexcept {
  errno = e;
  return -1;
}

// The timeout as a CLOCK_MONOTONIC deadline (seam.hpp), as the kernel reads
// it: FUTEX_WAIT relative, FUTEX_WAIT_BITSET absolute on its clock.  False:
// EINVAL (the kernel's timespec check).
bool futex_deadline(int cmd, bool realtime, const struct timespec* t, std::uint64_t* out) noexcept {
  *out = kNoDeadline;
  if (t == nullptr) return true;
  if (t->tv_sec < 0 || t->tv_nsec < 0 || t->tv_nsec >= 1000000000L) return false;
  const std::uint64_t now = native_seam::now_ns();
  const auto secs = static_cast<std::uint64_t>(t->tv_sec);
  if (secs > (kNoDeadline >> 1) / 1000000000u) return true;  // centuries away: no deadline
  const std::uint64_t ns = secs * 1000000000u + static_cast<std::uint64_t>(t->tv_nsec);
  if (cmd == FUTEX_WAIT) {
    *out = now + ns;
  } else if (!realtime) {
    *out = ns;  // absolute CLOCK_MONOTONIC: the seam's own clock
  } else {
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    const std::uint64_t rt_ns =
        static_cast<std::uint64_t>(rt.tv_sec) * 1000000000u + static_cast<std::uint64_t>(rt.tv_nsec);
    *out = ns <= rt_ns ? now : now + (ns - rt_ns);
  }
  return true;
}

std::uint32_t load_word(const std::uint32_t* w) noexcept {
  // relaxed: ordered by the lot's fences (I-FX1) - enqueue()'s fence before
  // the re-check, the waker's fence (wake()) after its store.
  return __atomic_load_n(w, __ATOMIC_RELAXED);
}

// ---- the fiber's wait ---------------------------------------------------------------

// The fiber half of FUTEX_WAIT/FUTEX_WAIT_BITSET: syscall()'s return value.
long fiber_futex_wait(const std::uint32_t* w, int op, std::uint32_t val, const struct timespec* t,
                      std::uint32_t bitset) noexcept {
  const int cmd = op & FUTEX_CMD_MASK;
  if (cmd == FUTEX_WAIT_BITSET && bitset == 0) return fail(EINVAL);
  if (reinterpret_cast<std::uintptr_t>(w) % alignof(std::uint32_t) != 0) return fail(EINVAL);
  if (w == nullptr) return fail(EFAULT);
  std::uint64_t deadline;
  if (!futex_deadline(cmd, (op & FUTEX_CLOCK_REALTIME) != 0, t, &deadline)) return fail(EINVAL);
  const int r = g_futex_lot.wait(w, [w, val] { return load_word(w) != val; }, deadline, kRecheckNs);
  return r == 0 ? 0 : fail(r);
}

// ---- wakes ----------------------------------------------------------------------------

long futex_wake(long a1, long op, long a3, long a4, long a5, long a6) noexcept {
  const auto* w = reinterpret_cast<const std::uint32_t*>(a1);
  const int cmd = static_cast<int>(op) & FUTEX_CMD_MASK;
  // The kernel refuses these itself (EINVAL, ENOSYS): its answer, unchanged.
  if ((op & FUTEX_CLOCK_REALTIME) || reinterpret_cast<std::uintptr_t>(w) % 4 != 0 ||
      (cmd == FUTEX_WAKE_BITSET && static_cast<std::uint32_t>(a6) == 0))
    return real_syscall(SYS_futex, a1, op, a3, a4, a5, a6);
  // The kernel wakes at least one even for n <= 0.
  const int n = static_cast<int>(a3);
  const unsigned want = n <= 0 ? 1u : static_cast<unsigned>(n);
  const bool any = cmd == FUTEX_WAKE || static_cast<std::uint32_t>(a6) == FUTEX_BITSET_MATCH_ANY;
  const unsigned fibers = g_futex_lot.wake(w, any && want != INT_MAX ? want : g_futex_lot.kAll);
  const long rest = any ? static_cast<long>(want) - static_cast<long>(fibers) : n;
  if (any && rest <= 0) return static_cast<long>(fibers);
  const long k = real_syscall(SYS_futex, a1, op, rest, a4, a5, a6);
  if (k < 0) return fibers != 0 ? static_cast<long>(fibers) : k;
  return k + static_cast<long>(fibers);
}

long futex_call(long a1, long op, long a3, long a4, long a5, long a6) noexcept {
  switch (static_cast<int>(op) & FUTEX_CMD_MASK) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET:
      if (futex_fiber() == nullptr) break;
      return fiber_futex_wait(reinterpret_cast<const std::uint32_t*>(a1), static_cast<int>(op),
                              static_cast<std::uint32_t>(a3), reinterpret_cast<const struct timespec*>(a4),
                              static_cast<std::uint32_t>(a6));
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET:
      if (knobs.no_futex_interpose.load(std::memory_order_relaxed)) break;  // relaxed: a test knob
      return futex_wake(a1, op, a3, a4, a5, a6);
    case FUTEX_WAKE_OP:
      if (a5 % 4 == 0) g_futex_lot.wake(reinterpret_cast<const void*>(a5), g_futex_lot.kAll);
      [[fallthrough]];
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
      if (a1 % 4 == 0) g_futex_lot.wake(reinterpret_cast<const void*>(a1), g_futex_lot.kAll);  // spurious: they re-check
      break;
    default:
      break;
  }
  return real_syscall(SYS_futex, a1, op, a3, a4, a5, a6);
}

}  // namespace

long real_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
  if (syscall_fn f = next_symbol(fiber_real_syscall_fn, "syscall")) return f(nr, a1, a2, a3, a4, a5, a6);
  return raw_syscall(nr, a1, a2, a3, a4, a5, a6);  // no dlsym answer: a static program, or inside dlsym
}

void interpose_futex_init() noexcept { next_symbol(fiber_real_syscall_fn, "syscall"); }

}  // namespace fiber::detail

// syscall() itself: a trampoline that leaves every register and the stack
// as the caller made them, so a pass-through is libc's syscall() reached by
// one compare and one indirect jump (the caller's six argument registers and
// anything it put on the stack forwarded unchanged, errno set by libc).
// SYS_futex goes to fiber_syscall_futex, anything before libc's function is
// known to fiber_syscall_unresolved: both take (nr, a1..a6) like syscall() -
// a variadic call of integer arguments has the plain call's layout (rax, the
// vector register count, is not an argument).  r11 is the scratch register
// (neither an argument nor preserved).
extern "C" __attribute__((visibility("hidden"), used)) long fiber_syscall_futex(long, long a1, long a2, long a3,
                                                                              long a4, long a5, long a6) noexcept {
  return fiber::detail::futex_call(a1, a2, a3, a4, a5, a6);
}

extern "C" __attribute__((visibility("hidden"), used)) long fiber_syscall_unresolved(long nr, long a1, long a2, long a3,
                                                                                   long a4, long a5, long a6) noexcept {
  return fiber::detail::real_syscall(nr, a1, a2, a3, a4, a5, a6);
}

#define FIBER_STR2(x) #x
#define FIBER_STR(x) FIBER_STR2(x)
__asm__(
    ".pushsection .text\n"
    ".globl syscall\n"
    ".type syscall, @function\n"
    ".p2align 4\n"
    "syscall:\n"
    ".cfi_startproc\n"
    "  endbr64\n"
    "  cmpq $" FIBER_STR(SYS_futex) ", %rdi\n"
    "  je fiber_syscall_futex\n"
    "  movq fiber_real_syscall_fn(%rip), %r11\n"
    "  testq %r11, %r11\n"
    "  jz fiber_syscall_unresolved\n"
    "  jmp *%r11\n"
    ".cfi_endproc\n"
    ".size syscall, .-syscall\n"
    ".popsection\n");
