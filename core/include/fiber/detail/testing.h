/* fiber/detail/testing.h - test-only knobs.
 *
 * The knobs switch one preemption-safety protection off so that a test can
 * show the protection is what makes its positive twin pass (negative
 * controls).  Never use them in a program.  The runtime's counters are public:
 * fiber/stats.h (included here for the tests that use both). */
#ifndef FIBER_DETAIL_TESTING_H
#define FIBER_DETAIL_TESTING_H

#include <stdint.h>

#include "fiber/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fiber_test_knob {
  FIBER_KNOB_NO_PC_CHECK = 1,       /* preempt anywhere, libc included */
  FIBER_KNOB_NO_COUNT_CHECK = 2,    /* ignore preempt_count (runtime locks, user sections) */
  FIBER_KNOB_NO_ERRNO_SWAP = 3,     /* errno shared by the fibers of a KLT */
  FIBER_KNOB_NO_EH_SWAP = 4,        /* C++ exception globals shared by the fibers of a KLT */
  FIBER_KNOB_NO_STACK_CHECK = 5,    /* preempt with too little stack room */
  FIBER_KNOB_MIGRATE_PREEMPTED = 6, /* preempted fibers go to the global queue (may migrate);
                                       read once by fiber_init: the migrate_preempted option */
  FIBER_KNOB_DEADLOCK_NO_THREAD_CHECK = 7, /* deadlock detector ignores threads outside the runtime */
  FIBER_KNOB_NO_IO_INTERPOSE = 8,   /* a fiber's read, write, poll, sleep... go straight to libc */
  FIBER_KNOB_NO_LOCK_INTERPOSE = 9, /* fibers call libc's pthread/sem locks directly (may block the KLT) */
  FIBER_KNOB_NO_LOCK_HOLD = 10,     /* holders of interposed libc locks stay preemptible */
  FIBER_KNOB_NO_STACK_CACHE = 11, /* no slot caches, no arenas: a mapping per fiber, unmapped at exit */
  FIBER_KNOB_UNGUARDED_STACKS = 12, /* new stacks are unguarded (canary), as past the guarded budget */
  FIBER_KNOB_TRIM_ALL = 13, /* every free stack entering the global pool is trimmed (if seen deep) */
  FIBER_KNOB_SCHED_STALL = 14, /* a KLT's scheduler loop stalls before each pick while on, as
                                 foreign code stuck in the scheduler context would (the
                                 watchdog's "runs no fiber" reason; monitor.cpp) */
  FIBER_KNOB_NO_SIGNAL_INTERRUPT = 16, /* program signals never interrupt a fiber's parked call (EINTR) */
  FIBER_KNOB_NO_FUTEX_INTERPOSE = 15, /* syscall(SYS_futex) from fibers goes to the kernel (blocks the KLT) */
  /* Planted scheduler defects for the trace checker (core/src/trace.cpp, tools/trace_check.py);
     they act only while tracing is on (FIBER_TRACE): */
  FIBER_KNOB_TRACE_LOSE_WAKE = 17, /* the wake of a fiber in a timed park is lost; its timeout wakes it */
  FIBER_KNOB_TRACE_NO_COMMIT = 18, /* a park is never committed: the fiber is requeued at once (spins) */
  FIBER_KNOB_MUTEX_NO_SPIN = 19, /* fiber mutexes never spin before parking (Seam::spin_useful) */
  FIBER_KNOB_NO_OFFLOAD = 20, /* calls with no readiness path (fsync, uncached file reads, getaddrinfo,
                                fiber_offload) run on the calling KLT instead of the pool */
  /* Planted sync defects for the linearizability checker (stress/stress_lin.cpp,
     tools/lin_check.py); hooks in core/src/sync.cpp: */
  FIBER_KNOB_LIN_TRYLOCK_LIES = 21, /* fiber_mutex_trylock on a busy mutex reports success (0)
                                       without taking it, one busy trylock in 16 */
  FIBER_KNOB_LIN_SEM_POST_TWICE = 22, /* fiber_sem_post adds two permits, one post in 64 */
  /* Planted fiber-mutex defects for the trace checker's lock rules (core/include/fiber/detail/mutex.hpp,
     core/src/trace_lock.cpp); like 17 and 18 they act only while tracing is on: */
  FIBER_KNOB_MUTEX_WAKE_TAIL = 23,     /* an unlock wakes or grants the queue's tail, not its head (I-M3 a) */
  FIBER_KNOB_MUTEX_NO_STARVATION = 24, /* the K-th barge never sets kHandoff: waiters starve (I-M3 b) */
  FIBER_KNOB_MUTEX_DOUBLE_OWNER = 25,  /* one contended lock in four enters without the mutex (I-M1);
                                          one of the two owners' unlocks then fails with EPERM */
  FIBER_KNOB_NO_MONITOR_HANDOFF = 26,  /* the monitor never hands a stalled KLT's fibers to others (read at
                                          fiber_init): a test sees what the scheduler alone does */
  FIBER_KNOB_OS_WAKE_LINGER = 27,      /* an OS thread that wakes a fiber lingers 200 ms after its idle notify,
                                          inside the wake's gated section (L2): shutdown must wait for it */
  FIBER_KNOB_NO_IDLE_POLL = 28,        /* idle KLTs never sleep in the I/O poller: readiness always hops
                                          through the poller thread (core/src/idle_poll.hpp) */
  FIBER_KNOB_IDLE_POLL_LOSE_KICK = 29, /* planted defect: a KLT asleep in the poller is never kicked (I-I3),
                                          so new work from another thread does not wake it */
  FIBER_KNOB_NO_SPARE_KLT = 30         /* the monitor turns no spare KLT on (read at every pass; at fiber_init
                                          it also keeps a 1-KLT runtime without a monitor): the fibers of a
                                          runtime whose every KLT is blocked in the kernel wait for it */
};
void fiber_test_set_knob(int knob, int on);

/* Stack system calls since the process started (core/src/stacks.cpp).  A fiber created
 * without any of them ran on a reused stack. */
typedef struct fiber_test_stack_counters_s {
  uint64_t own_maps;   /* stacks mapped one by one (mmap + mprotect) */
  uint64_t arena_maps; /* arenas mapped (one mmap each, for 64 stacks) */
  uint64_t carved;     /* stacks carved from an arena (one mprotect if guarded) */
  uint64_t trims;      /* cached stacks trimmed with madvise (MADV_DONTNEED) */
  uint64_t warm_starts; /* fibers that started on a stack another fiber exited on (the stash) */
} fiber_test_stack_counters_t;
void fiber_test_get_stack_counters(fiber_test_stack_counters_t *out);

/* Blocking-call bookkeeping (core/src/io_fiber.cpp, poller.cpp): slow paths taken before a
 * park (fcntl/getsockopt/epoll_ctl: no cached facts) and the poller's sweeps so far. */
typedef struct fiber_test_io_counters_s {
  uint64_t slow_paths;
  uint64_t sweeps;
  uint64_t offloads; /* calls run on the offload pool (core/src/offload.cpp) */
  uint64_t klt_polled; /* readiness events an idle KLT took in its poll sleep (core/src/idle_poll.cpp) */
} fiber_test_io_counters_t;
void fiber_test_get_io_counters(fiber_test_io_counters_t *out);

/* Spare KLTs (core/src/monitor.cpp): started since the process started, turned on so far
 * (each time a stall needed one), and on now. */
typedef struct fiber_test_spare_counters_s {
  uint64_t started;
  uint64_t turned_on;
  uint64_t on_now;
} fiber_test_spare_counters_t;
void fiber_test_get_spare_counters(fiber_test_spare_counters_t *out);


#ifdef __cplusplus
}
#endif

#endif
