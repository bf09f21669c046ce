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
 * never crashes on a detectable misuse; fiber ids are never reused while the
 * process lives (a stale id gives ESRCH).  What preemption will not do (the
 * safe-point rules) is in papers/design.md, section 5.
 *
 * Lifecycle: fiber_init (optional: the first fiber_create initialises with
 * defaults) ... fiber_shutdown (waits for every fiber, stops the KLTs, frees
 * everything); fiber_init may be called again after it.
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
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t fiber_t; /* a fiber's id; 0 is never a valid id; ids are not reused */

typedef struct fiber_config {
  unsigned klts;         /* kernel-level threads; 0 = number of online CPUs */
  unsigned timeslice_us; /* preemption quantum; 0 = no preemption (cooperative only) */
  size_t stack_size;     /* default fiber stack size in bytes; 0 = library default */
} fiber_config_t;

typedef struct fiber_attr {
  size_t stack_size; /* 0 = the runtime's default */
  int detached;      /* nonzero: created detached */
} fiber_attr_t;

#define FIBER_DEFAULT_STACK_SIZE ((size_t)256 * 1024) /* default fiber stack */
#define FIBER_MIN_STACK_SIZE ((size_t)16 * 1024)      /* smallest accepted stack_size */
#define FIBER_MAX_STACK_SIZE ((size_t)1 << 30)        /* largest accepted stack_size */
#define FIBER_MAX_KLTS 1024u
#define FIBER_DEFAULT_TIMESLICE_US 4000u /* one jiffy at HZ=250 */

void fiber_config_init(fiber_config_t *cfg); /* fills the defaults */
void fiber_attr_init(fiber_attr_t *attr);
int fiber_init(const fiber_config_t *cfg); /* NULL = defaults. EBUSY if already running,
                                              EINVAL for a bad config. */
int fiber_shutdown(void);                  /* waits for every fiber; EDEADLK from a fiber;
                                              EINVAL if not initialised */
int fiber_create(fiber_t *id, const fiber_attr_t *attr, void *(*start)(void *), void *arg);
                                           /* EINVAL (NULL id/start, bad attr), EAGAIN */
int fiber_join(fiber_t id, void **retval); /* EDEADLK self, EINVAL detached or already being
                                              joined, ESRCH no such fiber */
int fiber_detach(fiber_t id);              /* EINVAL already detached, ESRCH */
int fiber_yield(void);                     /* 0; outside a fiber: sched_yield */
void fiber_exit(void *retval) __attribute__((noreturn)); /* aborts with a message outside a fiber */
fiber_t fiber_self(void);                  /* 0 when the caller is not a fiber */
int fiber_sleep_ns(uint64_t ns);           /* parks the fiber, not its KLT */

/* --- preemption control (beyond the contract) ----------------------------- */
/* A section in which the calling fiber is not preempted (nests).  A tick that
 * lands inside is taken at the outermost fiber_preempt_enable().  No-ops
 * outside a fiber; an enable without a matching disable is ignored. */
void fiber_preempt_disable(void);
void fiber_preempt_enable(void);
/* Adds the loaded module (executable or shared object) containing `addr` to
 * the preemption allow-list.  The main executable is always on it; libc,
 * libstdc++, ld.so and libfiber itself can never be added (EPERM).  EINVAL if
 * addr is in no module. */
int fiber_preempt_allow_module(const void *addr);

/* --- runtime options (beyond the contract; call before fiber_init) ------- */
#define FIBER_POLICY_FIFO 0    /* the seed's FIFO round robin (default) */
#define FIBER_POLICY_RUNNEXT 1 /* a created fiber runs next on its KLT (Go's runnext) */
int fiber_set_policy(int policy);        /* EINVAL unknown, EBUSY while running */
int fiber_set_preempt_signal(int signo); /* default SIGPROF; EINVAL, EBUSY while running */

/* --- synchronisation -------------------------------------------------------- */
/* Opaque storage for the algorithms of core/include/fiber/detail/ (sizes are
 * checked by static_assert in core/src/sync.cpp).  All-zero is the initial,
 * unlocked state, so the static initialisers are zero. */
typedef struct fiber_mutex {
  uint64_t opaque_[6];
} fiber_mutex_t;
#define FIBER_MUTEX_INITIALIZER {{0, 0, 0, 0, 0, 0}}
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
