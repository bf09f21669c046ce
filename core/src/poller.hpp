// core/src/poller.hpp - descriptor readiness for parked fibers (not installed).
//
// One epoll instance for the process, watched by one poller thread.  A
// descriptor is added edge-triggered for both directions the first time a
// fiber waits on it (EPOLL_CTL_ADD at every wait; EEXIST is fine - a flag
// that says "registered" would go stale when glibc closes a descriptor by a
// path that is not interposed, fclose say, and its number is reused).  Every
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
// Design note: the first slice.  Weaving epoll into idle_wait (an idle KLT
// sleeps in epoll_wait, an eventfd in the eventcount wakes it) saves the hop
// through the poller thread; not done yet (papers/design.md, "Blocking
// system calls").
#pragma once

#include <cstdint>

#include "fiber/detail/readiness.hpp"
#include "runtime.hpp"

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

// In a forked child: the poller thread is gone.
void io_poller_forget() noexcept;
// 1 once the poller thread runs, else 0: the deadlock detector counts it as
// a thread the runtime knows (deadlock.cpp).
long io_poller_threads() noexcept;

}  // namespace fiber::detail
