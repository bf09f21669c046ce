// core/tests/gdb/gdb_target.cpp - a program with parked, named fibers for the
// gdb extension's test (gdb_test.py): "gdb-holder" holds a mutex and waits
// on a semaphore, "gdb-waiter" waits for the mutex inside gdb_target_waits().
// When both are parked, main calls fiber_gdb_ready() (the test's breakpoint).
#include <unistd.h>

#include <atomic>

#include "fiber/fiber.h"

static fiber_mutex_t g_m = FIBER_MUTEX_INITIALIZER;
static fiber_sem_t g_s;
static std::atomic<int> g_locked{0};

extern "C" __attribute__((noinline)) void fiber_gdb_ready(void) { asm volatile("" ::: "memory"); }

extern "C" __attribute__((noinline)) void gdb_target_waits(void) {
  fiber_mutex_lock(&g_m);
  asm volatile("" ::: "memory");
  fiber_mutex_unlock(&g_m);
}

static void* holder(void*) {
  fiber_mutex_lock(&g_m);
  g_locked.store(1);
  fiber_sem_wait(&g_s);
  fiber_mutex_unlock(&g_m);
  return nullptr;
}

static void* waiter(void*) {
  while (g_locked.load() == 0) fiber_yield();
  gdb_target_waits();
  return nullptr;
}

int main() {
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 2;
  if (fiber_init(&c) != 0) return 1;
  fiber_sem_init(&g_s, 0);
  fiber_attr_t a;
  fiber_attr_init(&a);
  fiber_t h, w;
  a.name = "gdb-holder";
  fiber_create(&h, &a, holder, nullptr);
  a.name = "gdb-waiter";
  fiber_create(&w, &a, waiter, nullptr);
  usleep(300 * 1000);
  fiber_gdb_ready();
  fiber_sem_post(&g_s);
  fiber_join(h, nullptr);
  fiber_join(w, nullptr);
  return fiber_shutdown();
}
