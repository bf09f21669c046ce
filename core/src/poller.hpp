// core/src/poller.hpp - descriptor readiness for parked fibers (not installed).
//
// One epoll instance for the process, watched by one poller thread.  A
// descriptor is added edge-triggered for both directions the first time a
// fiber waits on it (EPOLL_CTL_ADD; "registered" is then a cached fact, see
// io_facts below for how a stale one - glibc closing a descriptor by a path
// that is not interposed, fclose say, and its number reused - is caught).  Every
// edge bumps the descriptor's readiness object (readiness.hpp, I-RD1..I-RD4)
// and unparks its waiters through the OS-thread wake path (make_runnable).
//
// Lifecycle: the poller starts at the first wait and lives as long as the
// process (it touches the runtime only to wake a parked, hence live, fiber;
// after fiber_shutdown no fiber waits).  It is not counted in
// runtime::internal_threads (it outlives runtimes) but the deadlock detector
// counts it as known (io_poller_threads): a fiber parked on a descriptor is
// itself what vetoes an "all asleep" verdict (deadlock_rules.hpp: a server
// whose fibers all wait on sockets is not deadlocked), so once every such
// fiber is gone, the poller no longer hides a real deadlock.  A forked child has no poller (fork keeps one thread):
// the interposers are off there (interpose_io.cpp).
//
// Idle KLTs sleep in the same instance (idle_poll.hpp): one at a time holds
// the poll role and takes readiness itself, so the poller thread's hop is
// left for when every KLT is busy (and for the sweep).
#pragma once

#include <cstdint>

#include "fiber/detail/readiness.hpp"
#include "runtime.hpp"

struct epoll_event;

namespace fiber::detail {

using readiness = basic_readiness<native_seam>;

enum class io_dir : unsigned char { in = 0, out = 1 };

// The readiness object of (fd, d); nullptr when fd is out of range or memory
// ran out.  Type-stable: never freed while the process lives.
readiness* io_readiness(int fd, io_dir d) noexcept;

// Makes sure the poller runs and fd is registered.  0, or an errno: EPERM
// (fd cannot be polled: a regular file), EBADF, ENOMEM...
int io_register(int fd) noexcept;

// Wakes every waiter of fd in both directions (close() of a descriptor
// another fiber waits on: the waiter retries and gets EBADF).
void io_notify_all(int fd) noexcept;

// The instance, or -1 before the poller started (never starts it).
int io_epfd() noexcept;
// Handles one event of the instance: readiness notifies its descriptor's
// waiters, the interrupt eventfd wakes the interruptible parks (the poller
// thread, and an idle KLT in its poll sleep, idle_poll.cpp).
void io_dispatch(const struct epoll_event& ev) noexcept;

// Starts the poller if it does not run (0, or an errno).
int io_poller_start() noexcept;

// ---- facts cached per descriptor (io_fiber.cpp skips its slow path) -------
//
// The slow path of a parking call costs three system calls: fcntl(F_GETFL)
// (did the user make it non-blocking?), getsockopt(SO_RCVTIMEO/SO_SNDTIMEO)
// and epoll_ctl(ADD).  Their answers are cached as facts, only ever in the
// direction that is safe to be wrong about: "registered", "blocking and no
// receive timeout" (kFactPlainIn), "blocking and no send timeout"
// (kFactPlainOut).  A stale fact can only make a call park when it should
// have returned EAGAIN at once, park past a timeout, or park unregistered -
// never return a wrong result.  Facts are forgotten by every invalidating
// call the runtime sees (io_facts_forget: fcntl F_SETFL/F_DUPFD, ioctl
// FIONBIO, setsockopt SO_*TIMEO, close, dup/dup2/dup3 onto the number, a new
// socket/pipe/accepted descriptor: interpose_fd.cpp), and they expire at each
// sweep of the poller (about every kSweepMs): for each descriptor with
// parked callers the poller re-checks the facts itself (raw system calls) and,
// when one is false, forgets them and wakes the callers, which take the slow
// path.  So a change behind the runtime's back (a raw system call, libc's
// internal close of a number another open then reuses, another process
// setting O_NONBLOCK on a shared file description) costs a parked call at
// most about two sweeps' delay and a retry.
constexpr unsigned kFactRegistered = 1, kFactPlainIn = 2, kFactPlainOut = 4;
constexpr int kSweepMs = 1000;
// The facts of fd valid now (0: none).
unsigned io_facts(int fd) noexcept;
// Before a slow path: a stamp; after it, io_facts_store adds `facts` unless an
// invalidating call (or a sweep) came in between.
std::uint64_t io_facts_stamp(int fd) noexcept;
void io_facts_store(int fd, std::uint64_t stamp, unsigned facts) noexcept;
void io_facts_forget(int fd) noexcept;
std::uint32_t io_sweeps() noexcept;  // sweeps so far (fiber_test_get_io_counters)
// A caller parks on fd (+1) / is back (-1): the sweep checks such descriptors.
void io_parked(int fd, int delta) noexcept;

// In a forked child: the poller thread is gone.
void io_poller_forget() noexcept;
// 1 once the poller thread runs, else 0: the deadlock detector counts it as
// a thread the runtime knows (deadlock.cpp).
long io_poller_threads() noexcept;

}  // namespace fiber::detail
