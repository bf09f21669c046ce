/* core/tests/spin_module.c - a tiny shared object for the allow-list tests
 * (runtime_allow_list_test.cpp).  Its code is preemptible only if the module
 * is on the allow-list: the spin stays in this module's own instructions (no
 * calls; the bound is read with rdtsc, an instruction, not the vDSO). */
#include <x86intrin.h>

/* Spins until *flag is nonzero (returns 1) or `cycles` TSC cycles passed (0). */
int fiber_test_module_spin(const int* flag, unsigned long long cycles) {
  unsigned long long end = __rdtsc() + cycles;
  while (!__atomic_load_n(flag, __ATOMIC_RELAXED)) /* relaxed: a flag, no data */
    if (__rdtsc() > end) return 0;
  return 1;
}
