// core/src/idle_poll.cpp - the poll sleep of an idle KLT (idle_poll.hpp).
#include "idle_poll.hpp"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "poller.hpp"
#include "real_symbol.hpp"

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

namespace fiber::detail {

namespace {

std::atomic<int> g_kick_fd{-1};
// The role word (I-I3, I-I4).  Process-wide like the epoll instance: the
// poller thread parks on it, and it outlives any one runtime.
native_atomic<std::uint32_t> g_role{0};
std::atomic<bool> g_no_pwait2{false};           // the kernel lacks epoll_pwait2 (before 5.11)
std::atomic<std::uint64_t> g_events{0};         // fiber_test_get_io_counters
std::atomic<std::uint64_t> g_last_poll{0};      // now_ns() when a KLT's poll sleep last returned
native_atomic<std::uint32_t> g_nap{0};          // never changes: the poller's timed naps wait on it
thread_local bool t_sleeping = false;           // this KLT holds the role and sleeps in wait()

constexpr int kMaxEvents = 64;
// The poller thread's nap (while a KLT holds the role, or polled less than
// this long ago): the longest a readiness event may wait for a KLT to come
// back to the poller when every KLT is busy.
constexpr std::uint64_t kStepAsideNs = 1000000;

void nap_until(std::uint64_t deadline_ns) noexcept { native_seam::os_wait(g_nap, 0, deadline_ns); }

// epoll_wait until an absolute CLOCK_MONOTONIC deadline in ns (kNoDeadline:
// none).  Raw system calls: a fiber's epoll_wait is interposed.
int wait_until(int ep, struct epoll_event* evs, std::uint64_t deadline) noexcept {
  std::uint64_t now = deadline == kNoDeadline ? 0 : native_seam::now_ns();
  std::uint64_t left = deadline == kNoDeadline ? 0 : (deadline > now ? deadline - now : 0);
  if (!g_no_pwait2.load(std::memory_order_relaxed)) {  // relaxed: a cached kernel fact
    struct timespec ts{static_cast<time_t>(left / 1000000000u), static_cast<long>(left % 1000000000u)};
    long n = real_syscall(SYS_epoll_pwait2, ep, reinterpret_cast<long>(evs), kMaxEvents,
                          deadline == kNoDeadline ? 0 : reinterpret_cast<long>(&ts), 0, 0);
    if (n >= 0 || errno != ENOSYS) return static_cast<int>(n);
    g_no_pwait2.store(true, std::memory_order_relaxed);  // relaxed: as above
  }
  // Milliseconds, rounded up: never wake before the deadline.
  long ms = deadline == kNoDeadline ? -1 : static_cast<long>((left + 999999u) / 1000000u);
  return static_cast<int>(real_syscall(SYS_epoll_pwait, ep, reinterpret_cast<long>(evs), kMaxEvents, ms, 0, 0));
}

void write_kick(int fd) noexcept {
  std::uint64_t one = 1;
  (void)real_syscall(SYS_write, fd, reinterpret_cast<long>(&one), sizeof one, 0, 0, 0);
}

}  // namespace

bool idle_poll::available() noexcept {
  if (knobs.no_idle_poll.load(std::memory_order_relaxed)) return false;  // relaxed: a test knob
  return g_kick_fd.load(std::memory_order_acquire) >= 0;  // acquire: pairs with idle_poll_attach
}

native_atomic<std::uint32_t>& idle_poll::role() noexcept { return g_role; }

void idle_poll::wait(std::uint64_t deadline) noexcept {
  int ep = io_epfd();
  if (ep < 0) return;  // forgotten (a fork child): spurious, the caller loops
  struct epoll_event evs[kMaxEvents];
  t_sleeping = true;
  int n = wait_until(ep, evs, deadline);
  g_last_poll.store(native_seam::now_ns(), std::memory_order_relaxed);  // relaxed: a hint for the poller thread
  std::uint64_t got = 0;
  for (int i = 0; i < n; ++i) {
    if (idle_poll_is_kick(evs[i])) continue;  // its counter is never read (idle_poll.hpp)
    io_dispatch(evs[i]);  // wakes fibers onto this KLT's queue (make_runnable)
    ++got;
  }
  t_sleeping = false;
  if (got) g_events.fetch_add(got, std::memory_order_relaxed);  // relaxed: a test counter
}

void idle_poll::kick() noexcept {
  // The role holder notifying while it dispatches in wait() is awake already.
  if (t_sleeping) return;
  if (knobs.idle_poll_lose_kick.load(std::memory_order_relaxed)) return;  // relaxed: a planted defect (knob 29)
  int fd = g_kick_fd.load(std::memory_order_acquire);  // acquire: as available()
  if (fd >= 0) write_kick(fd);
}

void idle_poll_attach(int ep) noexcept {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return;
  struct epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    return;
  }
  g_kick_fd.store(fd, std::memory_order_release);  // release: the descriptor is set up before use
}

bool idle_poll_is_kick(const struct epoll_event& ev) noexcept {
  return ev.data.fd == g_kick_fd.load(std::memory_order_relaxed);  // relaxed: set before the poller started
}

void idle_poll_step_aside(bool kick, std::uint64_t until_ms) noexcept {
  if (g_role.load(mo::seq_cst) == 0) return;  // no holder; a kick's sleeper left: it is spent (I-I3)
  if (kick) write_kick(g_kick_fd.load(std::memory_order_relaxed));  // relaxed: as idle_poll_is_kick
  // Naps, not a wake-up from the holder: its release and re-claim come at
  // every idle spell, faster than this thread could be woken for each.
  const std::uint64_t until_ns = until_ms * 1000000u;
  while (g_role.load(mo::relaxed) != 0) {  // relaxed: a nap more or less is all a stale read costs
    std::uint64_t now = native_seam::now_ns();
    if (now >= until_ns) break;
    std::uint64_t nap = now + kStepAsideNs;
    native_seam::os_wait(g_role, 1, nap < until_ns ? nap : until_ns);
  }
}

void idle_poll_await_turn(std::uint64_t until_ms) noexcept {
  if (!idle_poll{}.available()) return;
  const std::uint64_t until_ns = until_ms * 1000000u;
  for (;;) {
    std::uint64_t last = g_last_poll.load(std::memory_order_relaxed);  // relaxed: a hint
    std::uint64_t now = native_seam::now_ns();
    if (now >= until_ns || now - last >= kStepAsideNs) return;
    std::uint64_t nap = last + kStepAsideNs;
    nap_until(nap < until_ns ? nap : until_ns);
  }
}

void idle_poll_forget() noexcept {
  g_kick_fd.store(-1, std::memory_order_relaxed);  // relaxed: the child has one thread
  g_role.store(0, mo::relaxed);
}

std::uint64_t idle_poll_events() noexcept {
  return g_events.load(std::memory_order_relaxed);  // relaxed: a test counter
}

}  // namespace fiber::detail
