/* examples/spin_demo.c - the main job: N fibers that spin in plain loops (no
 * calls, no yields) share a few KLTs by timer preemption.  Prints live
 * per-fiber progress and, at the end, each fiber's share and the Jain
 * fairness index.
 *
 *   spin_demo [fibers=8] [klts=2] [timeslice_us=4000] [seconds=3]
 */
#include <fiber/fiber.h>
#include <fiber/detail/testing.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_FIBERS 64

static volatile uint64_t progress[MAX_FIBERS];
static volatile int stop_flag;

static void *spin(void *arg) {
  long i = (long)arg;
  while (!stop_flag) progress[i]++; /* no calls: only preemption lets others run */
  return NULL;
}

static void bar(uint64_t v, uint64_t max) {
  int n = max ? (int)(40 * v / max) : 0;
  for (int i = 0; i < 40; i++) putchar(i < n ? '#' : '.');
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 8;
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
  cfg.timeslice_us = argc > 3 ? (unsigned)atoi(argv[3]) : 4000;
  int seconds = argc > 4 ? atoi(argv[4]) : 3;
  if (n < 1 || n > MAX_FIBERS || seconds < 1) {
    fprintf(stderr, "usage: spin_demo [fibers 1..%d] [klts] [timeslice_us] [seconds]\n", MAX_FIBERS);
    return 2;
  }
  int r = fiber_init(&cfg);
  if (r) { fprintf(stderr, "fiber_init: error %d\n", r); return 1; }
  printf("%d spinning fibers on %u KLTs, timeslice %u us\n", n, cfg.klts, cfg.timeslice_us);
  fiber_t ids[MAX_FIBERS];
  for (long i = 0; i < n; i++)
    if ((r = fiber_create(&ids[i], NULL, spin, (void *)i))) { fprintf(stderr, "fiber_create: %d\n", r); return 1; }
  for (int t = 0; t < seconds * 4; t++) {
    fiber_sleep_ns(250u * 1000 * 1000); /* main is an OS thread: this blocks main only */
    uint64_t max = 1;
    for (int i = 0; i < n; i++) if (progress[i] > max) max = progress[i];
    printf("\n t=%5.2fs\n", (t + 1) / 4.0);
    for (int i = 0; i < n; i++) { printf("  fiber %2d ", i); bar(progress[i], max); printf(" %12llu\n", (unsigned long long)progress[i]); }
    fflush(stdout);
  }
  stop_flag = 1;
  for (int i = 0; i < n; i++) fiber_join(ids[i], NULL);
  fiber_stats_t st;
  fiber_get_stats(&st);
  double sum = 0, sq = 0;
  for (int i = 0; i < n; i++) { sum += (double)progress[i]; sq += (double)progress[i] * (double)progress[i]; }
  double jain = sq > 0 ? sum * sum / (n * sq) : 0;
  printf("\nticks %llu, preemptions %llu, deferred (count/pc/stack) %llu/%llu/%llu\n",
         (unsigned long long)st.ticks, (unsigned long long)st.preemptions,
         (unsigned long long)st.deferred_count, (unsigned long long)st.deferred_pc,
         (unsigned long long)st.deferred_stack);
  printf("Jain fairness index over progress: %.4f (1.0 = perfectly fair)\n", jain);
  fiber_shutdown();
  return st.preemptions > 0 ? 0 : 1;
}
