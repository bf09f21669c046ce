// core/src/interpose_sleep.cpp - nanosleep, clock_nanosleep, usleep and sleep
// from a fiber park the fiber on the runtime's timers (as fiber_sleep_ns),
// instead of putting its KLT - and every fiber queued on it - to sleep; and
// sched_yield from a fiber yields the fiber (the other ways a fiber gives its
// CPU away).
//
// sched_yield: a program that waits for another party with
// `while (!ready) sched_yield();` - libstdc++'s std::atomic::wait spins so
// before it sleeps in the futex - means "let the others run".  In a fiber the
// others are first the fibers queued on its KLT: the fiber goes to the tail of
// the run queue as with fiber_yield (on one cooperative KLT the kernel's
// sched_yield would never let the fiber it waits for run at all).  When no
// other fiber was runnable the KLT's thread then yields to the kernel too, as
// the caller asked.  A fiber inside a preemption-disabled section (a runtime
// lock, fiber_preempt_disable) never switches: it gets the kernel's call.
//
// What a fiber sees: the full duration (the wake-up lateness of any timed
// park, at most about one quantum), never EINTR from the runtime's ticks.  A
// program signal with a handler of its own interrupts the sleep whatever
// SA_RESTART says, as signal(7) says for the sleeps (io_interrupt.hpp):
// EINTR with the time left in `rem` (relative sleeps), sleep() returns the
// seconds left, usleep -1/EINTR.
// CLOCK_REALTIME with TIMER_ABSTIME is converted to a monotonic deadline at
// the call: a later change of the wall clock does not move it (documented).
// Clocks other than CLOCK_MONOTONIC, CLOCK_REALTIME and CLOCK_BOOTTIME (CPU
// clocks) go to libc.  OS threads, the KLTs' scheduler, a forked child and
// the test knob FIBER_KNOB_NO_IO_INTERPOSE get libc unchanged.
//
// Linking: as signals.cpp (interposition by archive pull-in or lookup order).
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "interpose.hpp"
#include "io_fiber.hpp"
#include "io_interrupt.hpp"
#include "io_real.hpp"
#include "runtime.hpp"

namespace fiber::detail {

namespace {

__attribute__((constructor)) void resolve_sleep_symbols() {
  (void)FIBER_REAL(nanosleep);
  (void)FIBER_REAL(clock_nanosleep);
  (void)FIBER_REAL(usleep);
  (void)FIBER_REAL(sleep);
  (void)FIBER_REAL(sched_yield);
}

constexpr std::uint64_t kNs = 1000000000u;

std::uint64_t ns_of(const struct timespec& t) noexcept {
  auto s = static_cast<std::uint64_t>(t.tv_sec);
  if (s > (kNoDeadline - 1) / kNs - 1) return kNoDeadline - 1;  // about 584 years: forever
  return s * kNs + static_cast<std::uint64_t>(t.tv_nsec);
}

bool valid(const struct timespec* t) noexcept {
  return t && t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < static_cast<long>(kNs);
}

// The fiber parks until the monotonic deadline or a program signal that
// came since `since` (io_interrupt.hpp).  Returns the nanoseconds left: 0
// when the deadline passed.
std::uint64_t park_until(std::uint64_t deadline, std::uint64_t since) noexcept {
  parker& p = native_seam::current_parker();
  intr_guard g(p);
  bool interrupted = g.enter(since, false);  // linked, then checked (I-INT1)
  native_seam::note_wait(p, wait_kind::sleep, nullptr);
  for (;;) {
    if (interrupted || intr_pending(since, false)) {
      std::uint64_t now = native_seam::now_ns();
      return deadline > now ? deadline - now : 1;  // interrupted: never "0 left"
    }
    if (p.park_until(deadline)) return 0;  // spurious wake-ups loop (I-P4)
  }
}

void to_timespec(std::uint64_t ns, struct timespec* t) noexcept {
  t->tv_sec = static_cast<time_t>(ns / kNs);
  t->tv_nsec = static_cast<long>(ns % kNs);
}

std::uint64_t after(std::uint64_t ns) noexcept {
  std::uint64_t now = native_seam::now_ns();
  return ns > kNoDeadline - 1 - now ? kNoDeadline - 1 : now + ns;
}

std::uint64_t wall_ns() noexcept {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return ns_of(t);
}

}  // namespace

// The fiber's clock_nanosleep; returns an error number as clock_nanosleep
// does, and on EINTR the time left in *rem (relative sleeps only).
int fiber_clock_sleep(clockid_t clk, int flags, const struct timespec* req, struct timespec* rem) noexcept {
  std::uint64_t since = intr_begin();
  if (!valid(req)) return EINVAL;
  std::uint64_t d = ns_of(*req);
  if (flags & TIMER_ABSTIME) {
    if (clk == CLOCK_REALTIME) {
      std::uint64_t w = wall_ns();
      d = d > w ? after(d - w) : 0;
    }
  } else {
    d = after(d);
  }
  std::uint64_t left = park_until(d, since);
  if (left == 0) return 0;
  if (rem && !(flags & TIMER_ABSTIME)) to_timespec(left, rem);
  return EINTR;
}

}  // namespace fiber::detail

using namespace fiber::detail;

extern "C" {

__attribute__((visibility("default"))) int nanosleep(const struct timespec* req, struct timespec* rem) {
  if (io_interposing()) {
    int r = fiber_clock_sleep(CLOCK_MONOTONIC, 0, req, rem);
    if (r == 0) return 0;
    fresh_errno() = r;
    return -1;
  }
  if (auto f = FIBER_REAL(nanosleep)) return f(req, rem);
  return static_cast<int>(syscall(SYS_nanosleep, req, rem));
}

__attribute__((visibility("default"))) int clock_nanosleep(clockid_t clk, int flags,
                                                           const struct timespec* req,
                                                           struct timespec* rem) {
  bool ours = clk == CLOCK_MONOTONIC || clk == CLOCK_REALTIME || clk == CLOCK_BOOTTIME;
  if (ours && io_interposing()) return fiber_clock_sleep(clk, flags, req, rem);
  if (auto f = FIBER_REAL(clock_nanosleep)) return f(clk, flags, req, rem);
  long r = syscall(SYS_clock_nanosleep, clk, flags, req, rem);
  return r == 0 ? 0 : fresh_errno();
}

__attribute__((visibility("default"))) int usleep(useconds_t us) {
  if (io_interposing()) {
    std::uint64_t since = intr_begin();
    if (park_until(after(static_cast<std::uint64_t>(us) * 1000u), since) == 0) return 0;
    fresh_errno() = EINTR;
    return -1;
  }
  if (auto f = FIBER_REAL(usleep)) return f(us);
  struct timespec t{static_cast<time_t>(us / 1000000u), static_cast<long>(us % 1000000u) * 1000};
  return static_cast<int>(syscall(SYS_nanosleep, &t, nullptr));
}

__attribute__((visibility("default"))) int sched_yield(void) {
  if (io_interposing()) {
    klt* k = this_klt();
    fcb* f = k->current;
    if (!f->gate.in_section()) {
      // relaxed (both): this KLT's own counter, written only by this thread
      // (count_switch); a switch in between made it move.
      std::uint64_t before = k->switches.load(std::memory_order_relaxed);
      switch_out(klt_action::yield);
      if (this_klt()->switches.load(std::memory_order_relaxed) != before || this_klt() != k) return 0;
    }
  }
  if (auto f = FIBER_REAL(sched_yield)) return f();
  return static_cast<int>(syscall(SYS_sched_yield));
}

__attribute__((visibility("default"))) unsigned int sleep(unsigned int s) {
  if (io_interposing()) {  // interrupted: the whole seconds left, as glibc's sleep (truncated)
    std::uint64_t since = intr_begin();
    return static_cast<unsigned>(park_until(after(static_cast<std::uint64_t>(s) * kNs), since) / kNs);
  }
  if (auto f = FIBER_REAL(sleep)) return f(s);
  struct timespec t{static_cast<time_t>(s), 0}, rem{0, 0};
  if (syscall(SYS_nanosleep, &t, &rem) == 0) return 0;
  return static_cast<unsigned>(rem.tv_sec) + (rem.tv_nsec > 0 ? 1 : 0);
}

}  // extern "C"
