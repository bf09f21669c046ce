/* fiber/stats.h - the runtime's counters, for programs that want to see what
 * preemption is doing (how many ticks landed, how many preempted, how many
 * were refused and why).
 *
 * What it does: fiber_get_stats() copies the counters of the running runtime
 * into *out.  Guarantees: each counter is read on its own (relaxed loads of
 * monotonic counters): a snapshot taken while fibers run is not one instant,
 * but every counter only grows while the runtime lives.  It may be called from
 * a fiber or any OS thread, as often as wanted (it takes no lock).
 *
 * Lifecycle: valid between fiber_init (or the first fiber_create) and
 * fiber_shutdown; otherwise it returns EINVAL.  The counters start at 0 with
 * each fiber_init.
 *
 * Example:
 *     fiber_stats_t s;
 *     if (fiber_get_stats(&s) == 0)
 *       printf("%llu of %llu ticks preempted\n",
 *              (unsigned long long)s.preemptions, (unsigned long long)s.ticks);
 */
#ifndef FIBER_STATS_H
#define FIBER_STATS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fiber_stats {
  uint64_t ticks;          /* ticks that found a fiber running */
  uint64_t preemptions;    /* ticks that preempted */
  uint64_t deferred_count; /* refused: preempt_count > 0 */
  uint64_t deferred_pc;    /* refused: PC outside the allow-list */
  uint64_t deferred_stack; /* refused: too little stack room */
  uint64_t switches;       /* fibers run by schedulers */
  uint64_t idle_sleeps;    /* KLT sleeps in the kernel */
  uint64_t klts;
  uint64_t live;           /* fibers created and not yet exited */
  uint64_t pinned_tls;     /* preemptions that kept the fiber on its KLT because its stack
                              held a TLS address (FIBER_MIGRATE_SCAN).  Appended last. */
} fiber_stats_t;

/* 0, or EINVAL if out is NULL or no runtime is initialised. */
int fiber_get_stats(fiber_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
