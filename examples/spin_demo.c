/* examples/spin_demo.c - the main job: N fibers that spin in plain loops (no
 * calls, no yields) share a few KLTs by timer preemption.  Prints live
 * per-fiber progress and, at the end, each fiber's share and the Jain
 * fairness index.  With --csv FILE it also writes every sample (time, fiber,
 * progress so far): the fairness data `tools/fiberctl report` plots.
 *
 *   spin_demo [--fibers N] [--klts K] [--timeslice US] [--seconds S]
 *             [--period MS] [--csv FILE] [--quiet] [--help]
 *   spin_demo [fibers] [klts] [timeslice_us] [seconds]     (positional form)
 */
#include <fiber/fiber.h>
#include <fiber/stats.h>

#include <getopt.h>
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

struct demo_opts {
  int fibers, seconds, period_ms, quiet;
  unsigned klts, timeslice_us;
  const char *csv;
};

static const char kUsage[] =
    "usage: spin_demo [options] | spin_demo [fibers] [klts] [timeslice_us] [seconds]\n"
    "  -n, --fibers N      spinning fibers, 1..64 (default 8)\n"
    "  -k, --klts K        kernel-level threads (default 2)\n"
    "  -q, --timeslice US  preemption quantum in us (default 4000)\n"
    "  -s, --seconds S     run time (default 3)\n"
    "  -p, --period MS     sampling period (default 250)\n"
    "  -c, --csv FILE      write every sample: t_s,fiber,progress\n"
    "      --quiet         no live bars (the summary only)\n"
    "  -h, --help          this text\n";

static int parse(int argc, char **argv, struct demo_opts *o) {
  static const struct option opts[] = {
      {"fibers", required_argument, NULL, 'n'}, {"klts", required_argument, NULL, 'k'},
      {"timeslice", required_argument, NULL, 'q'}, {"seconds", required_argument, NULL, 's'},
      {"period", required_argument, NULL, 'p'}, {"csv", required_argument, NULL, 'c'},
      {"quiet", no_argument, NULL, 'Q'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "n:k:q:s:p:c:h", opts, NULL)) != -1) {
    switch (ch) {
      case 'n': o->fibers = atoi(optarg); break;
      case 'k': o->klts = (unsigned)atoi(optarg); break;
      case 'q': o->timeslice_us = (unsigned)atoi(optarg); break;
      case 's': o->seconds = atoi(optarg); break;
      case 'p': o->period_ms = atoi(optarg); break;
      case 'c': o->csv = optarg; break;
      case 'Q': o->quiet = 1; break;
      case 'h': fputs(kUsage, stdout); exit(0);
      default: fputs(kUsage, stderr); return 2;
    }
  }
  /* The positional form (fibers klts timeslice_us seconds) kept for scripts. */
  if (optind < argc) o->fibers = atoi(argv[optind++]);
  if (optind < argc) o->klts = (unsigned)atoi(argv[optind++]);
  if (optind < argc) o->timeslice_us = (unsigned)atoi(argv[optind++]);
  if (optind < argc) o->seconds = atoi(argv[optind++]);
  if (optind < argc || o->fibers < 1 || o->fibers > MAX_FIBERS || o->seconds < 1 || o->period_ms < 10) {
    fputs(kUsage, stderr);
    return 2;
  }
  return 0;
}

static void sample(const struct demo_opts *o, double t, FILE *csv) {
  uint64_t max = 1;
  for (int i = 0; i < o->fibers; i++) if (progress[i] > max) max = progress[i];
  if (csv)
    for (int i = 0; i < o->fibers; i++) fprintf(csv, "%.3f,%d,%llu\n", t, i, (unsigned long long)progress[i]);
  if (o->quiet) return;
  printf("\n t=%5.2fs\n", t);
  for (int i = 0; i < o->fibers; i++) { printf("  fiber %2d ", i); bar(progress[i], max); printf(" %12llu\n", (unsigned long long)progress[i]); }
  fflush(stdout);
}

int main(int argc, char **argv) {
  struct demo_opts o = {8, 3, 250, 0, 2, 4000, NULL};
  if (parse(argc, argv, &o)) return 2;
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = o.klts;
  cfg.timeslice_us = o.timeslice_us;
  FILE *csv = NULL;
  if (o.csv && !(csv = fopen(o.csv, "w"))) { perror(o.csv); return 2; }
  if (csv) fprintf(csv, "# spin_demo fibers=%d klts=%u timeslice_us=%u\nt_s,fiber,progress\n", o.fibers, o.klts, o.timeslice_us);
  int r = fiber_init(&cfg);
  if (r) { fprintf(stderr, "fiber_init: error %d\n", r); return 1; }
  printf("%d spinning fibers on %u KLTs, timeslice %u us\n", o.fibers, cfg.klts, cfg.timeslice_us);
  fiber_t ids[MAX_FIBERS];
  for (long i = 0; i < o.fibers; i++)
    if ((r = fiber_create(&ids[i], NULL, spin, (void *)i))) { fprintf(stderr, "fiber_create: %d\n", r); return 1; }
  const int samples = o.seconds * 1000 / o.period_ms;
  for (int t = 0; t < samples; t++) {
    fiber_sleep_ns((uint64_t)o.period_ms * 1000 * 1000); /* main is an OS thread: this blocks main only */
    sample(&o, (t + 1) * o.period_ms / 1000.0, csv);
  }
  stop_flag = 1;
  for (int i = 0; i < o.fibers; i++) fiber_join(ids[i], NULL);
  if (csv) fclose(csv);
  fiber_stats_t st;
  fiber_get_stats(&st);
  double sum = 0, sq = 0;
  for (int i = 0; i < o.fibers; i++) { sum += (double)progress[i]; sq += (double)progress[i] * (double)progress[i]; }
  double jain = sq > 0 ? sum * sum / (o.fibers * sq) : 0;
  printf("\nticks %llu, preemptions %llu, deferred (count/pc/stack) %llu/%llu/%llu\n",
         (unsigned long long)st.ticks, (unsigned long long)st.preemptions,
         (unsigned long long)st.deferred_count, (unsigned long long)st.deferred_pc,
         (unsigned long long)st.deferred_stack);
  printf("Jain fairness index over progress: %.4f (1.0 = perfectly fair)\n", jain);
  fiber_shutdown();
  return st.preemptions > 0 ? 0 : 1;
}
