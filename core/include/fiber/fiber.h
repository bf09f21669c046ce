/* fiber/fiber.h - the C API of fiber: preemptive user-level threads (fibers)
 * on a few kernel-level threads (KLTs), M:N.
 *
 * What it does: fiber_create() starts a fiber that runs on one of `klts`
 * kernel threads the library creates.  Each KLT gets a timer tick every
 * `timeslice_us` of its CPU time; a fiber running user code when the tick
 * lands is preempted and goes to the tail of its KLT's run queue (FIFO round
 * robin).  Blocking calls (join, sleep, mutex, condition variable, semaphore,
 * barrier) park the calling fiber and its KLT runs others; called from an
 * ordinary OS thread (such as main) they block that thread.
 *
 * Guarantees: every function returns 0 or a pthread-style error number and
 * never crashes on a detectable misuse; fiber ids are not reused while the
 * process lives (a stale id gives ESRCH; ids carry a 40-bit sequence, so they
 * could repeat only after 2^40 creations).  What preemption will not do (the
 * safe-point rules) is in papers/design.md, section 5.
 *
 * Limits: at most 2^24 (16,777,216) fibers exist at once (live, or exited and
 * not yet joined); past that, or when a stack cannot be mapped, fiber_create
 * returns EAGAIN.  The first vm.max_map_count / 2 - 8192 stacks alive at once
 * (24,573 by default; env FIBER_MAX_GUARDED_STACKS overrides) have a guard
 * page; later ones have a canary checked at every switch instead, so their
 * overflow is reported at the next switch rather than at the fault.  A stack is
 * reserved, not committed: a fiber that has not run costs address space.
 * Memory: a stack stays with its control block after the fiber is joined and
 * is reused by later fibers (no system call); stacks are unmapped by
 * fiber_shutdown.  A parked fiber that touched only its top stack page costs
 * about 4.4 KB.  A cached free stack keeps its top page; past 4,096 cached
 * stacks (env FIBER_STACK_CACHE_RESIDENT overrides) one that was seen deeper
 * gives the rest back (MADV_DONTNEED).
 *
 * Lifecycle: fiber_init (optional: the first fiber_create initialises with
 * defaults) ... fiber_shutdown (waits for every fiber, stops the KLTs, frees
 * everything); fiber_init may be called again after it.  A call made from
 * another OS thread while fiber_shutdown runs either completes against the old
 * runtime or fails: fiber_create EAGAIN (until the shutdown returned; then it
 * initialises a new runtime), fiber_join / fiber_detach ESRCH and
 * fiber_get_stats EINVAL once the fibers are gone.  An OS thread blocked in
 * fiber_join gets its value.  Calls from fibers always complete: shutdown
 * waits for their fibers.
 *
 * Example:
 *     static void *work(void *arg) { return arg; }
 *     fiber_t f; void *r;
 *     fiber_create(&f, NULL, work, (void *)42);
 *     fiber_join(f, &r);                  // r == (void *)42
 *     fiber_shutdown();
 */
#ifndef FIBER_FIBER_H
#define FIBER_FIBER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t fiber_t; /* a fiber's id; 0 is never a valid id; ids are not reused */

/* fiber_config_t::migrate_preempted */
#define FIBER_MIGRATE_SCAN 0u   /* default: move unless its stack holds a TLS address */
#define FIBER_MIGRATE_ALWAYS 1u /* move always (no TLS address held across a preemption) */
#define FIBER_MIGRATE_NEVER 2u  /* never move a preempted fiber */

typedef struct fiber_config {
  unsigned klts;         /* kernel-level threads; 0 = number of online CPUs */
  unsigned timeslice_us; /* preemption quantum; 0 = no preemption (cooperative only);
                            else FIBER_MIN_TIMESLICE_US .. 10 s */
  size_t stack_size;     /* default fiber stack size in bytes; 0 = library default */
  unsigned watchdog_ms;  /* 0 = off.  A KLT that takes no scheduling step (runs no
                            switch, yield, park or preemption) for this long is
                            reported on stderr, once per incident: KLT index, the
                            running fiber's id, how long, and why as far as the
                            runtime can tell (blocked in the kernel, preemption
                            disabled, ticks deferred).  FIBER_WATCHDOG=seconds in
                            the environment (e.g. 2 or 0.5; 0 = off) overrides it,
                            read once by fiber_init.  Appended last: code built
                            against an older fiber.h must be rebuilt. */
  unsigned migrate_preempted; /* where a fiber preempted by the quantum may resume (else EINVAL):
                            FIBER_MIGRATE_SCAN (0, the default): on any KLT unless a word of
                            its stack or of the registers the preemption saved points into
                            its KLT's thread-local storage (errno's address, a thread_local's,
                            pthread_self()); such a fiber resumes on its own KLT, so compiled
                            code may keep a TLS address in a register across the preemption.
                            CPU-bound fibers then get fair shares across KLTs (3 on 2 KLTs get
                            2/3 of a CPU each), and the fibers preempted on a KLT that blocks in
                            a call the runtime does not see run elsewhere.  Not seen by the scan:
                            TLS of modules loaded later with dlopen, and TLS addresses kept in
                            the heap or a global (which voluntary switches also let move).
                            FIBER_MIGRATE_ALWAYS (1): always on any KLT, as goroutines do (only
                            for code that holds no TLS address across a preemption point).
                            FIBER_MIGRATE_NEVER (2): always on the KLT it was preempted on;
                            fibers move only at voluntary calls (yield, blocking, create), and
                            CPU-bound fibers keep the KLT their first run placed them on.
                            FIBER_MIGRATE=scan|1|0 in the environment (also always, never)
                            overrides it (read by fiber_init; another value is ignored with a
                            line on stderr).  Appended last. */
  const char *trace_path; /* NULL (default) = no trace.  Else the file the scheduling trace
                            is written to (created or truncated by fiber_init: EINVAL if it
                            cannot be opened).  FIBER_TRACE=file in the environment
                            overrides it (read once by fiber_init; a file that cannot be
                            opened is reported on stderr and the run is not traced).  The
                            file is binary; tools/trace_check.py export turns it into
                            Chrome trace JSON (ui.perfetto.dev) and check verifies it.
                            Records every create, run, leave, park, wake, exit, join and
                            refused tick (32 bytes each, written as the run goes: about 200
                            MB for a million short fibers).  A debugging tool, not free:
                            a mutex+condvar ping-pong used about 1.6x the CPU with it on
                            (papers/verification.md section 4).  Appended last. */
} fiber_config_t;

typedef struct fiber_attr {
  size_t stack_size; /* 0 = the runtime's default */
  int detached;      /* nonzero: created detached */
  const char *name;  /* NULL = unnamed; copied at create (ERANGE if 32 bytes or more) */
} fiber_attr_t;

#define FIBER_DEFAULT_STACK_SIZE ((size_t)256 * 1024) /* default fiber stack */
#define FIBER_MIN_STACK_SIZE ((size_t)16 * 1024)      /* smallest accepted stack_size */
#define FIBER_MAX_STACK_SIZE ((size_t)1 << 30)        /* largest accepted stack_size */
/* Stack overflow: below each fiber stack lies a PROT_NONE guard of
 * FIBER_STACK_GUARD_SIZE bytes (address space, no memory); an overflow into it,
 * or a stack pointer found in it or up to that much below it, ends the process
 * with "fiber: fatal: fiber <id>: stack overflow (...)".  A frame larger than
 * the guard, from code compiled without -fstack-clash-protection, can still
 * write past it before any check sees it: compile code that runs on fibers
 * with -fstack-clash-protection (GCC >= 8, Clang >= 11), which probes every
 * page of a large frame so that no frame can skip the guard. */
#define FIBER_STACK_GUARD_SIZE ((size_t)64 * 1024)
#define FIBER_MAX_KLTS 1024u
#define FIBER_DEFAULT_TIMESLICE_US 4000u /* one jiffy at HZ=250 */
/* Shortest preemptive quantum fiber_init accepts (0, cooperative, is always
 * accepted; 1..FIBER_MIN_TIMESLICE_US-1 are EINVAL).  A tick (timer signal,
 * handler, register save, two switches) cost 12-19 us of CPU on a loaded
 * 2-vCPU VM, so at the bound ticks take up to ~20% of the CPU; a quantum
 * shorter than one tick never lets the fiber run.  Use >= 1000 for work.  Derivation: papers/design.md,
 * "Minimum quantum"; measured with bench/tick_cost.cpp. */
#define FIBER_MIN_TIMESLICE_US 100u

void fiber_config_init(fiber_config_t *cfg); /* fills the defaults */
void fiber_attr_init(fiber_attr_t *attr);
int fiber_init(const fiber_config_t *cfg); /* NULL = defaults. EBUSY if already running,
                                              EINVAL for a bad config (klts, stack_size,
                                              timeslice_us out of bounds). */
int fiber_shutdown(void);                  /* waits for every fiber; EDEADLK from a fiber;
                                              EINVAL if not initialised */
int fiber_create(fiber_t *id, const fiber_attr_t *attr, void *(*start)(void *), void *arg);
                                           /* EINVAL (NULL id/start, bad attr), EAGAIN (no
                                              slot or stack: see Limits; or from an OS
                                              thread while fiber_shutdown runs) */
int fiber_join(fiber_t id, void **retval); /* EDEADLK self, EINVAL detached or already being
                                              joined, ESRCH no such fiber (or its runtime
                                              was shut down) */
int fiber_detach(fiber_t id);              /* EINVAL already detached, ESRCH */
int fiber_yield(void);                     /* 0; outside a fiber: sched_yield */
void fiber_exit(void *retval) __attribute__((noreturn)); /* aborts with a message outside a fiber */
fiber_t fiber_self(void);                  /* 0 when the caller is not a fiber */
int fiber_sleep_ns(uint64_t ns);           /* parks the fiber, not its KLT */

/* --- blocking I/O that parks the fiber (core/src/io_fiber.cpp) -------------
 * From a fiber, these behave as read(2), write(2) and poll(2) - return value,
 * errno, partial counts - but a call that would block parks the calling fiber
 * until the descriptor is ready (or poll's timeout, or SO_RCVTIMEO/SO_SNDTIMEO
 * passes: -1/EAGAIN), and the KLT runs other fibers meanwhile.  A descriptor
 * the program made non-blocking keeps its semantics (-1/EAGAIN).  A write
 * returns when all n bytes are written, or the count written before an error.
 * A parked call is not interrupted by signals (never EINTR).  close() of the
 * descriptor by another fiber or thread wakes the caller (-1/EBADF).  From an
 * OS thread, or in a child forked from a fiber, they are exactly libc's calls.
 * The same code serves libc's read, write, readv, writev, recv*, send*,
 * accept*, connect, poll, select, epoll_wait, nanosleep, clock_nanosleep,
 * usleep and sleep when a fiber calls them (interposed by libfiber); these
 * explicit forms work even where the interposition does not reach (a call
 * made inside libc, a program that binds libc's symbols directly).
 * Regular files have no readiness: a read whose pages are not in the page
 * cache (and fsync, fdatasync, getaddrinfo) runs on the offload pool below
 * while the fiber parks; buffered writes to a regular file run on the KLT.
 * Example:  char b[64]; ssize_t n = fiber_read(sock, b, sizeof b); */
struct pollfd;
ssize_t fiber_read(int fd, void *buf, size_t n);        /* as read(2) */
ssize_t fiber_write(int fd, const void *buf, size_t n); /* as write(2), all of buf */
int fiber_poll(struct pollfd *fds, unsigned long nfds, int timeout_ms); /* as poll(2) */

/* A blocking call the runtime cannot park on (a library's own blocking call,
 * a disk wait): fiber_offload runs fn(arg) on a pool OS thread while the
 * calling fiber parks, and the KLT runs the other fibers meanwhile.  *result
 * (if result is not NULL) gets fn's return value; errno is carried both
 * ways, as if fn had run in the fiber.  fn must not call the fiber API (it
 * runs on an OS thread).  Returns 0, or EINVAL if fn is NULL.  From an OS
 * thread or a forked child fn runs inline.  The pool grows on demand to 64
 * threads (then jobs queue).
 * Example:  void *r; fiber_offload(lookup_user, name, &r); */
int fiber_offload(void *(*fn)(void *), void *arg, void **result);

/* --- preemption control (beyond the contract) ----------------------------- */
/* A section in which the calling fiber is not preempted (nests).  A tick that
 * lands inside is taken at the outermost fiber_preempt_enable().  No-ops
 * outside a fiber; an enable without a matching disable is ignored. */
void fiber_preempt_disable(void);
void fiber_preempt_enable(void);
/* Adds the loaded module (executable or shared object) containing `addr` to
 * the preemption allow-list.  The main executable is always on it; libc,
 * libstdc++, ld.so and libfiber itself can never be added (EPERM).  EINVAL if
 * addr is in no module.  Adding a module already on the list does nothing and
 * returns 0.  The list holds at most 64 executable segments (a module usually
 * has one): ENOMEM when the module's do not fit (nothing is added).  The list
 * may be extended before fiber_init; fiber_shutdown empties it (the main
 * executable is put back by the next fiber_init). */
int fiber_preempt_allow_module(const void *addr);

/* --- runtime options (beyond the contract; call before fiber_init) ------- */
#define FIBER_POLICY_FIFO 0    /* the seed's FIFO round robin (default) */
#define FIBER_POLICY_RUNNEXT 1 /* a created fiber runs next on its KLT (Go's runnext) */
int fiber_set_policy(int policy);        /* EINVAL unknown, EBUSY while running */
int fiber_set_preempt_signal(int signo); /* default SIGPROF; EINVAL, EBUSY while running */
/* Signals.  libfiber defines sigaction(), signal(), pthread_sigmask() and
 * sigprocmask() (the real ones are reached through dlsym(RTLD_NEXT)):
 *  - A handler the program installs for the preemption signal, before or
 *    after fiber_init, is kept: sigaction() reports it, the runtime calls it
 *    for every such signal that is not one of its own ticks (kill, raise,
 *    setitimer, the program's own timers), and fiber_shutdown installs it.
 *    Such a signal arriving while the program has no handler is ignored
 *    (not the default action).  sigset(), sysv_signal() and the raw system
 *    call are not seen and do replace the runtime's handler.
 *  - In a fiber, pthread_sigmask()/sigprocmask() set that fiber's own mask:
 *    it follows the fiber across switches and KLTs and never affects other
 *    fibers.  A fiber may block the preemption signal: it is still
 *    preempted, and a program-sent preemption signal is delivered when the
 *    fiber unblocks it.  A new fiber starts with its creator's mask (a
 *    fiber), or the mask fiber_init's caller had (an OS thread).  A signal
 *    sent to a KLT (pthread_kill, tgkill) is handled by whichever fiber
 *    runs there and does not block it.  OS threads keep libc's behaviour. */

/* --- diagnostics -------------------------------------------------------------
 * Names: at most FIBER_NAME_MAX - 1 bytes, shown by fiber_dump and gdb.
 * fiber_setname: ESRCH no such fiber, ERANGE too long (the name is unchanged);
 * NULL clears it.  fiber_getname: ESRCH, EINVAL NULL buf, ERANGE len too small
 * for the name and its NUL.  A fiber's name dies with it.
 *
 * fiber_dump(fd) writes one line per fiber (id, name, state, what it waits on,
 * pinned, seconds in state) followed by its backtrace, then one line per
 * OS thread blocked in the runtime and one per KLT (what it runs, ticks,
 * deferred ticks); it returns 0 (EINVAL: no runtime, bad fd) and the program
 * goes on.  It allocates nothing and takes none of the runtime's locks; it
 * reads the fiber tables racily (a snapshot, fibers may come and go) and
 * writes with write(2).  Frame names come from dladdr(), which takes the
 * dynamic loader's lock: call it from a signal handler only if that signal
 * cannot interrupt dlopen/dlclose (the runtime's SIGQUIT dump prints bare
 * addresses instead).  Backtraces follow frame pointers (the fiber:: CMake
 * targets and fiber.pc add -fno-omit-frame-pointer).  It must not race with
 * fiber_shutdown.
 *
 * SIGQUIT: when the program has no handler of its own at fiber_init, the
 * runtime installs one that dumps to stderr and exits with status 2 (as Go).
 *
 * Deadlock: when every fiber is parked and nothing can wake one (no timer, no
 * runnable fiber, every other thread of the process parked in the runtime
 * without a deadline) the runtime prints "fiber: all fibers are asleep -
 * deadlock!" and the dump to stderr and exits with status 2; a cycle of
 * fibers waiting on fiber mutexes and joins held by each other is reported
 * ("fiber: deadlock cycle: ...") and the program exits the same way, even
 * while other fibers run.  Both within about 0.3 s (checks every 100 ms;
 * a cycle scan every 300 ms).
 * FIBER_DEADLOCK=0 in the environment turns detection off (=report: print,
 * do not exit). */
#define FIBER_NAME_MAX 32
int fiber_setname(fiber_t id, const char *name);
int fiber_getname(fiber_t id, char *buf, size_t len);
int fiber_dump(int fd);

/* --- synchronisation -------------------------------------------------------- */
/* Opaque storage for the algorithms of core/include/fiber/detail/ (sizes are
 * checked by static_assert in core/src/sync.cpp).  All-zero is the initial,
 * unlocked state, so the static initialisers are zero. */
typedef struct fiber_mutex {
  uint64_t opaque_[6];
} fiber_mutex_t;
#define FIBER_MUTEX_INITIALIZER {{0, 0, 0, 0, 0, 0}}
/* Mutex fairness (detail/mutex.hpp I-M3): an unlock releases the mutex and
 * wakes the longest waiter, which competes with new lockers (barging), so a
 * releasing fiber may re-acquire at once.  Bounded: waiters own the mutex in
 * arrival order, and at most K = 64 acquisitions by parties that did not wait
 * happen between two acquisitions by waiters; after the K-th the next owner
 * is the longest waiter (hand-off).  A caller that starts waiting behind p
 * waiters is overtaken by at most p + 64 * (p + 1) acquisitions.  A fiber on
 * a runtime with 2 or more KLTs spins briefly (a few hundred ns) before
 * parking while the owner runs on another KLT.  trylock also fails (EBUSY)
 * while the mutex is reserved for a waiter. */
int fiber_mutex_init(fiber_mutex_t *m, const void *attr); /* attr must be NULL (EINVAL) */
int fiber_mutex_lock(fiber_mutex_t *m);    /* EDEADLK if the caller already owns it */
int fiber_mutex_trylock(fiber_mutex_t *m); /* EBUSY */
int fiber_mutex_unlock(fiber_mutex_t *m);  /* EPERM if the caller does not own it */
int fiber_mutex_destroy(fiber_mutex_t *m); /* EBUSY if locked or waited on */

typedef struct fiber_cond {
  uint64_t opaque_[6];
} fiber_cond_t;
#define FIBER_COND_INITIALIZER {{0, 0, 0, 0, 0, 0}}
int fiber_cond_init(fiber_cond_t *c, const void *attr); /* attr must be NULL (EINVAL) */
int fiber_cond_wait(fiber_cond_t *c, fiber_mutex_t *m); /* EPERM if m not held by caller */
int fiber_cond_timedwait(fiber_cond_t *c, fiber_mutex_t *m,
                         const struct timespec *abstime); /* CLOCK_MONOTONIC; ETIMEDOUT */
int fiber_cond_signal(fiber_cond_t *c);
int fiber_cond_broadcast(fiber_cond_t *c);
int fiber_cond_destroy(fiber_cond_t *c); /* EBUSY if fibers wait on it */

/* Counting semaphore (FIFO: permits are handed to waiters in arrival order). */
typedef struct fiber_sem {
  uint64_t opaque_[6];
} fiber_sem_t;
int fiber_sem_init(fiber_sem_t *s, unsigned value);  /* EINVAL if value > INT32_MAX */
int fiber_sem_wait(fiber_sem_t *s);
int fiber_sem_trywait(fiber_sem_t *s);               /* EAGAIN */
int fiber_sem_timedwait(fiber_sem_t *s, const struct timespec *abstime); /* ETIMEDOUT */
int fiber_sem_post(fiber_sem_t *s);                  /* EOVERFLOW past INT32_MAX */
int fiber_sem_getvalue(fiber_sem_t *s, int *value);
int fiber_sem_destroy(fiber_sem_t *s);               /* EBUSY if waited on */

/* Barrier: the last of `count` arrivals releases everyone; reusable. */
typedef struct fiber_barrier {
  uint64_t opaque_[6];
} fiber_barrier_t;
#define FIBER_BARRIER_SERIAL_THREAD (-1)
int fiber_barrier_init(fiber_barrier_t *b, const void *attr, unsigned count); /* EINVAL count 0 */
int fiber_barrier_wait(fiber_barrier_t *b); /* FIBER_BARRIER_SERIAL_THREAD for one, 0 others */
int fiber_barrier_destroy(fiber_barrier_t *b); /* EBUSY if waited on */

#ifdef __cplusplus
}
#endif

#endif /* FIBER_FIBER_H */
