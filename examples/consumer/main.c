#include <fiber/fiber.h>
#include <stdio.h>
static fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
static long counter;
static void *work(void *arg) {
  for (int i = 0; i < 10000; i++) { fiber_mutex_lock(&m); counter++; fiber_mutex_unlock(&m); }
  return arg;
}
int main(void) {
  fiber_t f[8];
  for (long i = 0; i < 8; i++) if (fiber_create(&f[i], NULL, work, (void *)i)) return 1;
  for (int i = 0; i < 8; i++) { void *r; if (fiber_join(f[i], &r) || (long)r != i) return 1; }
  fiber_shutdown();
  printf("consumer: counter = %ld\n", counter);
  return counter == 80000 ? 0 : 1;
}
