/* papers/scripts/readme_deadlock.c - the program whose report is README's "When it hangs"
 * example: two named fibers take two fiber mutexes in opposite orders, main joins the first.
 * The detector names the cycle (rule 2), then finds every party asleep (rule 1), prints the
 * dump and exits with status 2.
 *   gcc -O2 -rdynamic -I core/include papers/scripts/readme_deadlock.c build/release/core/libfiber.a \
 *       -lstdc++ -lpthread -ldl -o /tmp/readme_deadlock && /tmp/readme_deadlock; echo "status $?"
 */
#include <fiber/fiber.h>
#include <stddef.h>

static fiber_mutex_t a = FIBER_MUTEX_INITIALIZER, b = FIBER_MUTEX_INITIALIZER;

static void *transfer(void *arg) {
  fiber_mutex_t *first = arg ? &b : &a, *second = arg ? &a : &b;
  fiber_mutex_lock(first);
  fiber_sleep_ns(50 * 1000 * 1000); /* both hold their first mutex */
  fiber_mutex_lock(second);
  fiber_mutex_unlock(second);
  fiber_mutex_unlock(first);
  return NULL;
}

int main(void) {
  fiber_attr_t at;
  fiber_t x, y;
  fiber_attr_init(&at);
  at.name = "transfer-a-to-b";
  fiber_create(&x, &at, transfer, NULL);
  at.name = "transfer-b-to-a";
  fiber_create(&y, &at, transfer, (void *)1);
  fiber_join(x, NULL);
  fiber_join(y, NULL);
  return fiber_shutdown();
}
