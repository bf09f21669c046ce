/* papers/scripts/icount_driver.c - instruction counts of the hot paths, for
 * before/after comparisons that do not depend on machine load (papers/design.md
 * section 12).  One KLT, cooperative; N operations of one kind:
 *   yield N     two fibers yield N times each
 *   create N    main creates and joins N fibers, one at a time
 *   pingpong N  two fibers hand a turn back and forth N times (mutex + condvar)
 *   lock N      one fiber locks and unlocks a fiber_mutex_t N times (uncontended:
 *               the inline fast paths of core/include/fiber/detail/mutex.hpp)
 * Build against a Release libfiber.a and count with callgrind at two N; the
 * difference divided by the difference in N is the cost per operation:
 *   gcc -O2 -I core/include papers/scripts/icount_driver.c build/release/core/libfiber.a \
 *       -lstdc++ -lpthread -ldl -o /tmp/icount
 *   FIBER_DEADLOCK=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null /tmp/icount create 60000
 */
#include <fiber/fiber.h>
#include <stdlib.h>
#include <string.h>
static long n;
static fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
static fiber_cond_t cv = FIBER_COND_INITIALIZER;
static int turn;
static void *yielder(void *a) { (void)a; for (long i = 0; i < n; ++i) fiber_yield(); return 0; }
static void *nop(void *a) { return a; }
static void *locker(void *a) {
  for (long i = 0; i < n; ++i) { fiber_mutex_lock(&m); fiber_mutex_unlock(&m); }
  return a;
}
static void *pp(void *a) {
  int me = a != 0;
  for (long i = 0; i < n; ++i) {
    fiber_mutex_lock(&m);
    while (turn != me) fiber_cond_wait(&cv, &m);
    turn = 1 - me;
    fiber_cond_signal(&cv);
    fiber_mutex_unlock(&m);
  }
  return 0;
}
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  n = atol(argv[2]);
  fiber_config_t c; fiber_config_init(&c); c.klts = 1; c.timeslice_us = 0;
  fiber_init(&c);
  fiber_t a, b;
  if (!strcmp(argv[1], "yield")) {
    fiber_create(&a, 0, yielder, 0); fiber_create(&b, 0, yielder, 0);
    fiber_join(a, 0); fiber_join(b, 0);
  } else if (!strcmp(argv[1], "create")) {
    for (long i = 0; i < n; ++i) { fiber_create(&a, 0, nop, 0); fiber_join(a, 0); }
  } else if (!strcmp(argv[1], "lock")) {
    fiber_create(&a, 0, locker, 0);
    fiber_join(a, 0);
  } else {
    fiber_create(&a, 0, pp, 0); fiber_create(&b, 0, pp, (void*)1);
    fiber_join(a, 0); fiber_join(b, 0);
  }
  return fiber_shutdown();
}
