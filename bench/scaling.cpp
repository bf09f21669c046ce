// bench/scaling.cpp - how fiber scales with the number of KLTs: one run of one
// workload at one KLT count, printed as one JSON object on stdout, so that a
// driver (bench/scaling.sh) can sweep KLT counts on a many-core machine and
// papers/scripts/scaling_table.py can put fiber beside its peers (Go's skynet
// from bench/go/skynet.go, run by the same driver) as ratios.
//
//   scaling --workload skynet --klts 4 [--size 1000000]
//       a 10-ary spawn tree of `size` leaves (fiber_create + fiber_join, the
//       classic skynet); reports seconds and microseconds per fiber, and the
//       page faults taken during the timed tree.  --trees N times N trees
//       after the untimed warm-up and reports the median (each in "trees").
//   scaling --workload cpu --klts 4 [--fibers 16] [--work 200000000]
//       `fibers` CPU-bound fibers sharing `work` iterations of an LCG; reports
//       seconds (speed-up = seconds at 1 KLT / seconds at N, computed by the table).
//   scaling --workload fair --klts 2 [--fibers 8] [--seconds 3]
//       `fibers` spinning fibers for `seconds`; reports each fiber's progress,
//       the Jain index (sum x)^2 / (n sum x^2) and max/min share.
//   --migrate 0|1|2 fiber_config_t::migrate_preempted: 0 FIBER_MIGRATE_SCAN (the
//                   default: a preempted fiber may change KLT unless its stack
//                   holds a TLS address), 1 ALWAYS, 2 NEVER.  --policy fifo|runnext: the spawn
//                   order (fiber_set_policy).  Both are echoed in the JSON.
//
// Written against the public C API only (what an outside program sees).  The
// quantum is the default unless --timeslice says otherwise.  Exit status 1 on
// a failed API call or a wrong skynet sum; timing never fails a run.
#include <fiber/fiber.h>
#include <fiber/stats.h>
#include <getopt.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

struct options {
  std::string workload = "skynet";
  unsigned klts = 1;
  unsigned timeslice_us = FIBER_DEFAULT_TIMESLICE_US;
  std::uint64_t size = 1000000;
  unsigned fibers = 0;  // 0: the workload's default
  std::uint64_t work = 200000000;
  double seconds = 3.0;
  unsigned migrate = 0;
  std::string policy = "fifo";
  unsigned trees = 1;  // skynet: timed trees after the warm-up; the median is reported
};


double now_s() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const char* what, int e) {
  std::fprintf(stderr, "scaling: %s: %s\n", what, std::strerror(e));
  std::exit(1);
}

// Page faults the process took so far (the timed tree's share: stacks first
// touched in it).
long minor_faults() {
  struct rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// --- skynet --------------------------------------------------------------------
struct sk_arg {
  std::uint64_t num, size;
};

void* sk_fiber(void* p) {
  const sk_arg a = *static_cast<const sk_arg*>(p);
  if (a.size == 1) return reinterpret_cast<void*>(static_cast<std::uintptr_t>(a.num));
  const std::uint64_t sub = a.size / 10;
  sk_arg args[10];
  fiber_t ids[10];
  for (unsigned i = 0; i < 10; ++i) {
    args[i] = {a.num + i * sub, sub};
    if (int e = fiber_create(&ids[i], nullptr, sk_fiber, &args[i])) die("fiber_create", e);
  }
  std::uint64_t sum = 0;
  for (unsigned i = 0; i < 10; ++i) {
    void* r = nullptr;
    if (int e = fiber_join(ids[i], &r)) die("fiber_join", e);
    sum += reinterpret_cast<std::uintptr_t>(r);
  }
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(sum));
}

std::uint64_t tree_fibers(std::uint64_t size) {  // fibers in a tree with `size` leaves
  std::uint64_t n = 0;
  for (std::uint64_t s = size; s >= 1; s /= 10) {
    n += size / s;
    if (s == 1) break;
  }
  return n;
}

void run_skynet(const options& o) {
  sk_arg root{0, o.size};
  fiber_t id;
  void* r = nullptr;
  // An untimed warm-up tree, as bench_skynet and the Go peer do (stack caches).
  if (int e = fiber_create(&id, nullptr, sk_fiber, &root)) die("fiber_create", e);
  if (int e = fiber_join(id, &r)) die("fiber_join", e);
  const std::uint64_t want = o.size * (o.size - 1) / 2;
  std::vector<std::pair<double, long>> runs;  // seconds, page faults of each tree
  std::string each;
  for (unsigned i = 0; i < o.trees; ++i) {
    const long faults0 = minor_faults();
    const double t0 = now_s();
    if (int e = fiber_create(&id, nullptr, sk_fiber, &root)) die("fiber_create", e);
    if (int e = fiber_join(id, &r)) die("fiber_join", e);
    runs.emplace_back(now_s() - t0, minor_faults() - faults0);
    const auto got = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(r));
    if (got != want) {
      std::fprintf(stderr, "scaling: skynet sum %llu, expected %llu\n",
                   static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
      std::exit(1);
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", runs.back().first);
    each += buf;
  }
  std::sort(runs.begin(), runs.end());
  const auto [t, faults] = runs[runs.size() / 2];  // the median tree
  const std::uint64_t n = tree_fibers(o.size);
  std::printf("{\"workload\":\"skynet\",\"impl\":\"fiber\",\"klts\":%u,\"size\":%llu,"
              "\"fibers\":%llu,\"seconds\":%.6f,\"us_per_fiber\":%.4f,\"policy\":\"%s\",\"migrate\":%u,"
              "\"faults\":%ld,\"trees\":[%s]}\n",
              o.klts, static_cast<unsigned long long>(o.size), static_cast<unsigned long long>(n),
              t, t * 1e6 / static_cast<double>(n), o.policy.c_str(), o.migrate, faults, each.c_str());
}

// --- CPU-bound and fairness -------------------------------------------------------
struct alignas(64) progress {
  std::atomic<std::uint64_t> n{0};
};
std::atomic<bool> g_stop{false};

struct cpu_arg {
  std::uint64_t iters;
  progress* p;
};

void* cpu_fiber(void* v) {
  auto* a = static_cast<cpu_arg*>(v);
  std::uint64_t x = reinterpret_cast<std::uintptr_t>(v);
  for (std::uint64_t i = 0; i < a->iters; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(x));  // keeps the loop alive
}

void* spin_fiber(void* v) {
  auto* a = static_cast<cpu_arg*>(v);
  std::uint64_t x = 1;
  // relaxed: a progress counter read once after g_stop; the join orders the final read.
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 1000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
    a->p->n.store(a->p->n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(x));
}

void run_cpu(const options& o) {
  const unsigned nf = o.fibers ? o.fibers : 16;
  std::vector<cpu_arg> args(nf, cpu_arg{o.work / nf, nullptr});
  std::vector<fiber_t> ids(nf);
  double t0 = now_s();
  for (unsigned i = 0; i < nf; ++i)
    if (int e = fiber_create(&ids[i], nullptr, cpu_fiber, &args[i])) die("fiber_create", e);
  for (unsigned i = 0; i < nf; ++i)
    if (int e = fiber_join(ids[i], nullptr)) die("fiber_join", e);
  double t = now_s() - t0;
  std::printf("{\"workload\":\"cpu\",\"impl\":\"fiber\",\"klts\":%u,\"fibers\":%u,"
              "\"work\":%llu,\"seconds\":%.6f,\"policy\":\"%s\",\"migrate\":%u}\n",
              o.klts, nf, static_cast<unsigned long long>(o.work), t, o.policy.c_str(), o.migrate);
}

void run_fair(const options& o) {
  const unsigned nf = o.fibers ? o.fibers : 8;
  std::vector<progress> prog(nf);
  std::vector<cpu_arg> args(nf);
  std::vector<fiber_t> ids(nf);
  g_stop.store(false, std::memory_order_relaxed);  // relaxed: before any fiber exists
  for (unsigned i = 0; i < nf; ++i) {
    args[i] = {0, &prog[i]};
    if (int e = fiber_create(&ids[i], nullptr, spin_fiber, &args[i])) die("fiber_create", e);
  }
  struct timespec ts{static_cast<time_t>(o.seconds), static_cast<long>((o.seconds - static_cast<double>(static_cast<time_t>(o.seconds))) * 1e9)};
  nanosleep(&ts, nullptr);
  g_stop.store(true, std::memory_order_relaxed);  // relaxed: the fibers only need to see it eventually
  for (unsigned i = 0; i < nf; ++i)
    if (int e = fiber_join(ids[i], nullptr)) die("fiber_join", e);
  double sum = 0, sq = 0, mx = 0, mn = 1e300;
  std::string list;
  for (unsigned i = 0; i < nf; ++i) {
    const auto x = static_cast<double>(prog[i].n.load(std::memory_order_relaxed));  // relaxed: joined
    sum += x;
    sq += x * x;
    if (x > mx) mx = x;
    if (x < mn) mn = x;
    list += (i ? "," : "") + std::to_string(static_cast<unsigned long long>(x));
  }
  const double jain = sq > 0 ? sum * sum / (nf * sq) : 0.0;
  fiber_stats_t st{};
  if (int e = fiber_get_stats(&st)) die("fiber_get_stats", e);
  std::printf("{\"workload\":\"fair\",\"impl\":\"fiber\",\"klts\":%u,\"fibers\":%u,\"seconds\":%.3f,"
              "\"timeslice_us\":%u,\"jain\":%.4f,\"max_over_min\":%.3f,\"progress\":[%s],"
              "\"policy\":\"%s\",\"migrate\":%u,\"preemptions\":%llu,\"pinned_tls\":%llu}\n",
              o.klts, nf, o.seconds, o.timeslice_us, jain, mn > 0 ? mx / mn : 0.0, list.c_str(),
              o.policy.c_str(), o.migrate, static_cast<unsigned long long>(st.preemptions),
              static_cast<unsigned long long>(st.pinned_tls));
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: scaling --workload skynet|cpu|fair [--klts N] [--timeslice US]\n"
               "               [--size LEAVES] [--fibers N] [--work ITERS] [--seconds S]\n"
               "               [--migrate 0|1|2] [--policy fifo|runnext] [--trees N]\n"
               "One run of one workload at one KLT count; one JSON object on stdout.\n");
}

options parse(int argc, char** argv) {
  options o;
  static const struct option kOpts[] = {
      {"workload", required_argument, nullptr, 'w'}, {"klts", required_argument, nullptr, 'k'},
      {"timeslice", required_argument, nullptr, 't'}, {"size", required_argument, nullptr, 's'},
      {"fibers", required_argument, nullptr, 'f'},   {"work", required_argument, nullptr, 'W'},
      {"seconds", required_argument, nullptr, 'S'},  {"help", no_argument, nullptr, 'h'},
      {"migrate", required_argument, nullptr, 'm'},  {"policy", required_argument, nullptr, 'p'},
      {"trees", required_argument, nullptr, 'T'},
      {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "w:k:t:s:f:W:S:hm:p:T:", kOpts, nullptr)) != -1;) {
    switch (c) {
      case 'w': o.workload = optarg; break;
      case 'k': o.klts = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10)); break;
      case 't': o.timeslice_us = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10)); break;
      case 's': o.size = std::strtoull(optarg, nullptr, 10); break;
      case 'f': o.fibers = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10)); break;
      case 'W': o.work = std::strtoull(optarg, nullptr, 10); break;
      case 'S': o.seconds = std::strtod(optarg, nullptr); break;
      case 'm': o.migrate = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10)); break;
      case 'p': o.policy = optarg; break;
      case 'T': o.trees = static_cast<unsigned>(std::strtoul(optarg, nullptr, 10)); break;
      case 'h': usage(stdout); std::exit(0);
      default: usage(stderr); std::exit(2);
    }
  }
  if ((o.workload != "skynet" && o.workload != "cpu" && o.workload != "fair") ||
      (o.policy != "fifo" && o.policy != "runnext") || o.trees == 0) {
    usage(stderr);
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = o.klts;
  cfg.timeslice_us = o.timeslice_us;
  cfg.migrate_preempted = o.migrate;
  if (o.policy == "runnext")
    if (int e = fiber_set_policy(FIBER_POLICY_RUNNEXT)) die("fiber_set_policy", e);
  if (int e = fiber_init(&cfg)) die("fiber_init", e);
  if (o.workload == "skynet") run_skynet(o);
  else if (o.workload == "cpu") run_cpu(o);
  else run_fair(o);
  if (int e = fiber_shutdown()) die("fiber_shutdown", e);
  return 0;
}
