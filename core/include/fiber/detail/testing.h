/* fiber/detail/testing.h - test-only knobs and runtime counters.
 *
 * The knobs switch one preemption-safety protection off so that a test can
 * show the protection is what makes its positive twin pass (negative
 * controls).  Never use them in a program. */
#ifndef FIBER_DETAIL_TESTING_H
#define FIBER_DETAIL_TESTING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum fiber_test_knob {
  FIBER_KNOB_NO_PC_CHECK = 1,       /* preempt anywhere, libc included */
  FIBER_KNOB_NO_COUNT_CHECK = 2,    /* ignore preempt_count (runtime locks, user sections) */
  FIBER_KNOB_NO_ERRNO_SWAP = 3,     /* errno shared by the fibers of a KLT */
  FIBER_KNOB_NO_EH_SWAP = 4,        /* C++ exception globals shared by the fibers of a KLT */
  FIBER_KNOB_NO_STACK_CHECK = 5,    /* preempt with too little stack room */
  FIBER_KNOB_MIGRATE_PREEMPTED = 6, /* preempted fibers go to the global queue (may migrate) */
  FIBER_KNOB_DEADLOCK_NO_THREAD_CHECK = 7 /* deadlock detector ignores threads outside the runtime */
};
void fiber_test_set_knob(int knob, int on);

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
} fiber_stats_t;
int fiber_get_stats(fiber_stats_t *out); /* EINVAL if not initialised */

#ifdef __cplusplus
}
#endif

#endif
