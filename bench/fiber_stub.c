/* bench/fiber_stub.c - linked into the benchmarks only while the fiber
 * library target does not exist (bench/CMakeLists.txt): every entry point
 * answers ENOSYS, so the fiber variants compile against fiber.h and report
 * "fiber_init returned ENOSYS" instead of breaking the Boost/pthread runs. */
#include <errno.h>
#include <string.h>

#include "fiber/fiber.h"

void fiber_config_init(fiber_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->timeslice_us = FIBER_DEFAULT_TIMESLICE_US;
}
int fiber_init(const fiber_config_t *cfg) { (void)cfg; return ENOSYS; }
int fiber_shutdown(void) { return EINVAL; }
int fiber_create(fiber_t *id, const fiber_attr_t *attr, void *(*start)(void *), void *arg) {
  (void)id; (void)attr; (void)start; (void)arg;
  return ENOSYS;
}
int fiber_join(fiber_t id, void **retval) { (void)id; (void)retval; return ENOSYS; }
int fiber_yield(void) { return ENOSYS; }
int fiber_sleep_ns(uint64_t ns) { (void)ns; return ENOSYS; }
int fiber_mutex_init(fiber_mutex_t *m, const void *attr) { (void)m; (void)attr; return ENOSYS; }
int fiber_mutex_lock(fiber_mutex_t *m) { (void)m; return ENOSYS; }
int fiber_mutex_unlock(fiber_mutex_t *m) { (void)m; return ENOSYS; }
int fiber_mutex_destroy(fiber_mutex_t *m) { (void)m; return ENOSYS; }
int fiber_cond_init(fiber_cond_t *c, const void *attr) { (void)c; (void)attr; return ENOSYS; }
int fiber_cond_wait(fiber_cond_t *c, fiber_mutex_t *m) { (void)c; (void)m; return ENOSYS; }
int fiber_cond_signal(fiber_cond_t *c) { (void)c; return ENOSYS; }
int fiber_cond_destroy(fiber_cond_t *c) { (void)c; return ENOSYS; }
int fiber_set_policy(int policy) { (void)policy; return ENOSYS; }
