// core/src/offload.hpp - blocking calls with no readiness path, run on a pool
// of OS threads while the calling fiber parks (Not installed).
//
// What goes here: a call that may block in the kernel and that epoll cannot
// announce - fsync/fdatasync, a read of a regular file whose pages are not in
// the page cache (io_file.cpp tries RWF_NOWAIT first), getaddrinfo, and
// whatever a program hands to fiber_offload() (a blocking call in a library
// the runtime does not interpose).  Run on the KLT, such a call would stop
// every fiber queued there (with one KLT: the whole program); here the fiber
// parks (diag kind io, so the deadlock detector counts it as waiting for the
// outside world) and the KLT runs the others.  libuv's thread pool and
// tokio's spawn_blocking are the same idea; Go instead hands its P to a new M.
//
// Protocol (I-OFF1..3):
//   I-OFF1 A job lives in the parked fiber's frame.  The worker's last touch of
//          it is the release store of `done`; it then unparks the fiber's
//          parker (type-stable: slots.cpp), never the job (the wait_node
//          grant rule, I-W3).  A token that arrives after the fiber saw
//          `done` is a spurious wake-up for a later park, which every park
//          loop tolerates (parker.hpp).
//   I-OFF2 errno is carried both ways: the worker runs fn with the caller's
//          errno and hands back the errno fn left, as if fn ran in the fiber.
//   I-OFF3 A worker that finds no job sleeps; a submitter wakes one when one
//          sleeps, else starts a thread (at most kOffloadMaxThreads; past that
//          the job waits for a busy one).  With no thread at all (pthread_create
//          failed) the call runs on the KLT, as it would without the pool.
//
// Lifecycle: the first job starts the first worker; workers live as long as
// the process (like the poller: they touch the runtime only to unpark a
// parked, hence live, fiber).  They count as threads the runtime knows
// (deadlock.cpp).  A forked child has no workers: offload_forget() from the
// atfork handler, and the interposers are off there anyway.
#pragma once

namespace fiber::detail {

inline constexpr unsigned kOffloadMaxThreads = 64;

// fn(arg) on a pool thread; the calling fiber parks until it returns.  From
// an OS thread, a fork child, or under FIBER_KNOB_NO_OFFLOAD: fn(arg) inline.
long offload_call(long (*fn)(void*), void* arg) noexcept;
long offload_threads() noexcept;       // pool threads alive (the deadlock census)
unsigned long offload_jobs() noexcept;  // jobs run on a pool thread so far (test counter)
void offload_forget() noexcept;        // in a forked child

}  // namespace fiber::detail
