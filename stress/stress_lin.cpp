// stress/stress_lin.cpp - records histories of mutex, semaphore and queue
// operations on real KLTs under a short quantum, for the linearizability
// checker (tools/lin_check.py; papers/verification.md, "Linearizability of
// native histories").  Issue 16, Deliver 3.
//
// Objects (--object mutex|sem|queue|all), each shared by --workers fibers:
//   mutex  one fiber_mutex_t: lock / trylock, a critical section of random
//          length, unlock.  Results: 0, EBUSY (trylock), EPERM (unlock).
//   sem    one fiber_sem_t with kSemInit permits: wait / trywait / timedwait
//          (20-200 us) take a permit that is posted back after a random hold;
//          now and then a post followed by a wait.
//   queue  a bounded FIFO (capacity kQueueCap) built from one fiber mutex and
//          two fiber condvars, holding kQueuePrefill values (enqueued and
//          recorded by main) before the workers start: even workers enqueue a
//          value unique to the run and then dequeue one, odd workers dequeue
//          first.  The queue holds prefill + (enqueue-first workers between
//          their two ops) - (dequeue-first workers between theirs) values, so
//          with 0 < prefill < capacity it can be found full and found empty but
//          never leaves every worker blocked.
// Workers run in rounds of --round iterations separated by a fiber barrier per
// object; the rounds are paced so that the run lasts about --seconds.  Between
// rounds no op of that object is pending, so the checker finds a quiescent cut
// at least once per round (it also uses every other one it finds).
// Each op is recorded by stress/history.hpp; at the end the history is
// written to DIR/lin_history.jsonl (--out DIR) and checked by
//   tools/lin_check.py check DIR/lin_history.jsonl
// (the ctests run both through `lin_check.py run`).
//
// Planted bugs (--plant-bug, negative controls of the checker):
//   mutex  FIBER_KNOB_LIN_TRYLOCK_LIES: a busy trylock sometimes returns 0;
//   sem    FIBER_KNOB_LIN_SEM_POST_TWICE: a post sometimes adds two permits;
//   queue  one dequeue in 32 that finds two or more items returns the second.
#include <fiber/detail/testing.h>
#include <fiber/fiber.h>
#include <fiber/stats.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <memory>
#include <vector>

#include "history.hpp"
#include "stress_init.hpp"

namespace {

constexpr unsigned kSemInit = 2;   // permits of the semaphore
constexpr unsigned kQueueCap = 4;  // bounded queue capacity (a larger one widens the search)
constexpr unsigned kQueuePrefill = 2;  // values in the queue before the workers start
enum obj_id : std::uint8_t { kMutex, kSem, kQueue, kObjects };
const char* const kObjNames[kObjects] = {"mutex", "sem", "queue"};

struct options {
  double seconds = 3;
  unsigned klts = 0;  // all CPUs
  unsigned timeslice_us = 100;
  unsigned workers = 6;   // per object
  unsigned iters = 3000;  // per worker (each records one or two ops)
  unsigned round = 8;     // iterations per worker between two barriers
  double status_s = 1;
  std::string out = ".";
  bool objects[kObjects] = {true, true, true};
  int plant = -1;  // obj_id whose planted bug is on, or -1
};
options g_opt;

// --- the bounded FIFO queue under test -----------------------------------------
struct bounded_queue {
  fiber_mutex_t mu = FIBER_MUTEX_INITIALIZER;
  fiber_cond_t not_full = FIBER_COND_INITIALIZER, not_empty = FIBER_COND_INITIALIZER;
  std::int64_t ring[kQueueCap] = {};  // guarded by mu
  unsigned head = 0, size = 0;        // guarded by mu
  unsigned deqs = 0;                  // guarded by mu: counts dequeues for the planted bug
  std::uint64_t full_waits = 0, empty_waits = 0;  // guarded by mu: ops that found it full/empty

  // slow: yield once inside the critical section, as a slower queue would be
  // descheduled there; the other ops then wait for mu, so op intervals overlap.
  void enq(std::int64_t v, bool slow) {
    fiber_mutex_lock(&mu);
    if (slow) fiber_yield();
    full_waits += size == kQueueCap;
    while (size == kQueueCap) fiber_cond_wait(&not_full, &mu);
    ring[(head + size++) % kQueueCap] = v;
    fiber_cond_signal(&not_empty);
    fiber_mutex_unlock(&mu);
  }
  std::int64_t deq(bool slow) {
    fiber_mutex_lock(&mu);
    if (slow) fiber_yield();
    empty_waits += size == 0;
    while (size == 0) fiber_cond_wait(&not_empty, &mu);
    std::int64_t v = ring[head];
    if (g_opt.plant == kQueue && ++deqs % 32 == 0 && size >= 2) {  // planted: out of order
      const unsigned second = (head + 1) % kQueueCap;
      v = ring[second];
      ring[second] = ring[head];
    }
    head = (head + 1) % kQueueCap;
    --size;
    fiber_cond_signal(&not_full);
    fiber_mutex_unlock(&mu);
    return v;
  }
};

// --- shared state ------------------------------------------------------------------
struct object_state {
  fiber_barrier_t rounds;  // the object's workers, between rounds
  std::vector<std::unique_ptr<lin::recorder>> recs;  // owned: freed at exit (ASan's leak check)
};
fiber_mutex_t g_mutex = FIBER_MUTEX_INITIALIZER;
fiber_sem_t g_sem;
bounded_queue g_queue;
object_state g_objs[kObjects];
std::uint64_t g_t0 = 0;  // run start (CLOCK_MONOTONIC ns), written before the workers exist
std::atomic<std::size_t> g_done{0};  // workers finished
std::uint64_t g_preemptions = 0;     // read from fiber_get_stats before the shutdown

struct worker_ctx {
  obj_id obj;
  unsigned index;  // among all workers (the history's worker id)
  lin::recorder* rec;
  std::mt19937_64 rng;
};

// A critical section or hold of random length: none (half the time), a yield
// (a quarter: another fiber of the KLT runs while the object is held), a short
// spin, or a spin longer than a 100 us quantum, so that the holder is preempted
// while it holds.  The yields and preemptions are what make ops overlap.
void hold(std::mt19937_64& rng) {
  const unsigned r = static_cast<unsigned>(rng() % 16);
  if (r < 8) return;
  if (r < 12) {
    fiber_yield();
    return;
  }
  const std::uint64_t ns = r < 15 ? 5000 : 150000;
  // Mostly in this program's code between clock reads: a tick that lands in
  // the vDSO's clock_gettime is refused (PC not on the allow-list).
  for (const std::uint64_t until = lin::now_ns() + ns; lin::now_ns() < until;) {
    for (volatile unsigned i = 0; i < 2000; i = i + 1) {
    }
  }
}

// --- one iteration per object ----------------------------------------------------------
void mutex_iter(worker_ctx& w) {
  const lin::op kind = w.rng() % 5 < 3 ? lin::op::lock : lin::op::trylock;
  std::uint64_t t = lin::now_ns();
  int rc = kind == lin::op::lock ? fiber_mutex_lock(&g_mutex) : fiber_mutex_trylock(&g_mutex);
  w.rec->add(t, kMutex, kind, 0, rc);
  if (rc != 0) return;
  hold(w.rng);
  t = lin::now_ns();
  rc = fiber_mutex_unlock(&g_mutex);
  w.rec->add(t, kMutex, lin::op::unlock, 0, rc);
}

int timed_sem_wait(std::uint64_t ns) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::uint64_t at = static_cast<std::uint64_t>(ts.tv_nsec) + ns;
  ts.tv_sec += static_cast<time_t>(at / 1000000000u);
  ts.tv_nsec = static_cast<long>(at % 1000000000u);
  return fiber_sem_timedwait(&g_sem, &ts);
}

void sem_post_recorded(worker_ctx& w) {
  const std::uint64_t t = lin::now_ns();
  const int rc = fiber_sem_post(&g_sem);
  w.rec->add(t, kSem, lin::op::post, 0, rc);
}

void sem_iter(worker_ctx& w) {
  const unsigned pick = static_cast<unsigned>(w.rng() % 10);
  if (pick == 9) sem_post_recorded(w);  // post first, then take one back below (a wait)
  std::uint64_t t = lin::now_ns();
  int rc;
  lin::op kind;
  std::int64_t arg = 0;
  if (pick < 4 || pick == 9) {
    kind = lin::op::wait;
    rc = fiber_sem_wait(&g_sem);
  } else if (pick < 7) {
    kind = lin::op::trywait;
    rc = fiber_sem_trywait(&g_sem);
  } else {
    kind = lin::op::timedwait;
    arg = static_cast<std::int64_t>(20000 + w.rng() % 180000);
    t = lin::now_ns();
    rc = timed_sem_wait(static_cast<std::uint64_t>(arg));
  }
  w.rec->add(t, kSem, kind, arg, rc);
  if (rc != 0 || pick == 9) return;
  hold(w.rng);
  sem_post_recorded(w);
}

std::int64_t queue_value(unsigned index, std::uint64_t seq) {
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(index) + 1) << 32 | seq);  // unique
}
void enq_recorded(lin::recorder& rec, std::int64_t v, bool slow) {
  const std::uint64_t t = lin::now_ns();
  g_queue.enq(v, slow);
  rec.add(t, kQueue, lin::op::enq, v, 0);
}
void deq_recorded(lin::recorder& rec, bool slow) {
  const std::uint64_t t = lin::now_ns();
  const std::int64_t got = g_queue.deq(slow);
  rec.add(t, kQueue, lin::op::deq, 0, got);
}

void queue_iter(worker_ctx& w, std::uint64_t seq) {
  const bool deq_first = w.index % 2 == 1;
  const unsigned slow = static_cast<unsigned>(w.rng() % 8);  // bit 0: first op, bit 1: second
  if (deq_first) deq_recorded(*w.rec, slow & 1);
  else enq_recorded(*w.rec, queue_value(w.index, seq), slow & 1);
  hold(w.rng);  // a value "in hand" (or a slot): the others fill or drain the queue meanwhile
  if (deq_first) enq_recorded(*w.rec, queue_value(w.index, seq), slow & 2);
  else deq_recorded(*w.rec, slow & 2);
}

// --- workers ------------------------------------------------------------------------
// Round r of every object starts at g_t0 + r * (seconds / rounds): the workers
// sleep until then after the barrier, so the run lasts about --seconds and each
// round starts with every worker contending at once.
void pace(std::uint64_t round) {
  const unsigned rounds = (g_opt.iters + g_opt.round - 1) / g_opt.round;
  const auto start = g_t0 + static_cast<std::uint64_t>(g_opt.seconds * 1e9 * static_cast<double>(round) / rounds);
  const std::uint64_t now = lin::now_ns();
  if (start > now) fiber_sleep_ns(start - now);
}

void* worker_main(void* arg) {
  worker_ctx& w = *static_cast<worker_ctx*>(arg);
  for (unsigned i = 0; i < g_opt.iters; ++i) {
    if (i % g_opt.round == 0) {
      fiber_barrier_wait(&g_objs[w.obj].rounds);
      pace(i / g_opt.round);
    }
    switch (w.obj) {
      case kMutex: mutex_iter(w); break;
      case kSem: sem_iter(w); break;
      default: queue_iter(w, i); break;
    }
  }
  g_done.fetch_add(1, std::memory_order_release);  // release: pairs with progress()'s acquire load
  return nullptr;
}

// --- options, progress, output ----------------------------------------------------------
[[noreturn]] void usage(const char* argv0, int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: %s [--seconds S] [--klts N] [--timeslice US] [--object mutex|sem|queue|all]\n"
               "       [--workers N] [--iters N] [--round N] [--out DIR] [--status S]\n"
               "       [--plant-bug mutex|sem|queue] [--help]\n"
               "Records a history of fiber mutex, semaphore and bounded-queue ops on every KLT\n"
               "and writes DIR/lin_history.jsonl for tools/lin_check.py (defaults: 3 s, all\n"
               "CPUs, 100 us, all objects, 6 workers per object, 3000 iterations per worker,\n"
               "rounds of 8, DIR '.', a progress line every second).  --plant-bug turns on a\n"
               "defect the checker must report: mutex: a busy trylock sometimes succeeds;\n"
               "sem: a post sometimes adds two permits; queue: a dequeue sometimes pops the\n"
               "second item.\n",
               argv0);
  std::exit(status);
}

int object_index(const char* name) {
  for (int i = 0; i < kObjects; ++i)
    if (std::strcmp(name, kObjNames[i]) == 0) return i;
  return -1;
}

void set_objects(const char* argv0, const char* name) {
  const int i = object_index(name);
  if (i < 0 && std::strcmp(name, "all") != 0) usage(argv0, 2);
  for (int j = 0; j < kObjects; ++j) g_opt.objects[j] = i < 0 || i == j;
}

void parse(int argc, char** argv) {
  static option longopts[] = {
      {"seconds", required_argument, nullptr, 's'}, {"klts", required_argument, nullptr, 'k'},
      {"timeslice", required_argument, nullptr, 't'}, {"object", required_argument, nullptr, 'o'},
      {"workers", required_argument, nullptr, 'w'}, {"iters", required_argument, nullptr, 'i'},
      {"round", required_argument, nullptr, 'r'},  {"out", required_argument, nullptr, 'd'},
      {"status", required_argument, nullptr, 'S'}, {"plant-bug", required_argument, nullptr, 'b'},
      {"help", no_argument, nullptr, 'h'},          {nullptr, 0, nullptr, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "h", longopts, nullptr)) != -1;) {
    switch (ch) {
      case 's': g_opt.seconds = std::atof(optarg); break;
      case 'k': g_opt.klts = static_cast<unsigned>(std::atoi(optarg)); break;
      case 't': g_opt.timeslice_us = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'o': set_objects(argv[0], optarg); break;
      case 'w': g_opt.workers = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'i': g_opt.iters = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'r': g_opt.round = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'd': g_opt.out = optarg; break;
      case 'S': g_opt.status_s = std::atof(optarg); break;
      case 'b':
        if ((g_opt.plant = object_index(optarg)) < 0) usage(argv[0], 2);
        break;
      case 'h': usage(argv[0], 0);
      default: usage(argv[0], 2);
    }
  }
  if (g_opt.workers == 0 || g_opt.workers > 4096 || g_opt.round == 0 || g_opt.iters == 0 ||
      g_opt.seconds < 0)
    usage(argv[0], 2);
}

std::size_t ops_recorded(int obj) {
  std::size_t n = 0;
  for (const auto& r : g_objs[obj].recs) n += r->published();
  return n;
}

// One line per --status seconds while the workers run: elapsed time and the ops
// recorded per object so far.  Returns when every worker fiber has been joined.
void progress(const std::vector<fiber_t>& ids) {
  std::uint64_t next = g_t0;
  // acquire: pairs with each worker's release increment (the count only gates
  // the polling; the joins below order the workers' records before the write).
  while (g_done.load(std::memory_order_acquire) < ids.size()) {
    if (g_opt.status_s > 0 && lin::now_ns() >= next) {
      std::printf("lin: %5.1f s", static_cast<double>(lin::now_ns() - g_t0) / 1e9);
      for (int o = 0; o < kObjects; ++o)
        if (g_opt.objects[o]) std::printf("  %s %zu ops", kObjNames[o], ops_recorded(o));
      std::printf("\n");
      std::fflush(stdout);
      next += static_cast<std::uint64_t>(g_opt.status_s * 1e9);
    }
    const timespec tick = {0, 20 * 1000 * 1000};
    nanosleep(&tick, nullptr);  // main is an OS thread: a plain sleep
  }
  for (fiber_t id : ids) fiber_join(id, nullptr);
}

std::string header() {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"fiber_lin_history\":1,\"clock\":\"CLOCK_MONOTONIC\",\"klts\":%u,\"timeslice_us\":%u,"
                "\"workers\":%u,\"plant\":\"%s\",\"objects\":[{\"name\":\"mutex\",\"kind\":\"mutex\"},"
                "{\"name\":\"sem\",\"kind\":\"sem\",\"init\":%u},"
                "{\"name\":\"queue\",\"kind\":\"queue\",\"capacity\":%u}]}",
                g_opt.klts, g_opt.timeslice_us, g_opt.workers, g_opt.plant < 0 ? "none" : kObjNames[g_opt.plant],
                kSemInit, kQueueCap);
  return buf;
}

int write_history() {
  std::vector<const lin::recorder*> recs;
  for (const object_state& o : g_objs)
    for (const auto& r : o.recs) recs.push_back(r.get());
  mkdir(g_opt.out.c_str(), 0777);  // may exist
  const std::string path = g_opt.out + "/lin_history.jsonl";
  const std::vector<const char*> names(kObjNames, kObjNames + kObjects);
  const long n = lin::write_jsonl(path.c_str(), header().c_str(), names, recs, g_t0);
  if (n < 0) {
    std::printf("FAIL: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("lin: %ld ops written to %s; %llu preemptions; queue found full %llu, empty %llu times\n", n,
              path.c_str(), static_cast<unsigned long long>(g_preemptions),
              static_cast<unsigned long long>(g_queue.full_waits),
              static_cast<unsigned long long>(g_queue.empty_waits));
  return 0;
}

// One context and one recorder per worker; then main's prefill of the queue,
// recorded as the ops of one more worker.
void make_workers(std::vector<worker_ctx>& ctx) {
  ctx.reserve(kObjects * g_opt.workers);
  for (int o = 0; o < kObjects; ++o) {
    if (!g_opt.objects[o]) continue;
    fiber_barrier_init(&g_objs[o].rounds, nullptr, g_opt.workers);
    for (unsigned i = 0; i < g_opt.workers; ++i) {
      const auto index = static_cast<unsigned>(ctx.size());
      auto* rec = new lin::recorder(index, 2 * std::size_t{g_opt.iters} + 2);
      g_objs[o].recs.emplace_back(rec);
      const std::uint64_t seed = lin::now_ns() ^ (0x9e3779b97f4a7c15ull * (index + 1));
      ctx.push_back(worker_ctx{static_cast<obj_id>(o), index, rec, std::mt19937_64(seed)});
    }
  }
  if (!g_opt.objects[kQueue]) return;
  const auto index = static_cast<unsigned>(ctx.size());
  auto* rec = new lin::recorder(index, kQueuePrefill);
  g_objs[kQueue].recs.emplace_back(rec);
  for (unsigned i = 0; i < kQueuePrefill; ++i) enq_recorded(*rec, queue_value(index, i), false);
}

}  // namespace

int main(int argc, char** argv) {
  parse(argc, argv);
  alarm(static_cast<unsigned>(g_opt.seconds) + 60);  // hang: SIGALRM ends the run
  fiber_sem_init(&g_sem, kSemInit);
  if (g_opt.plant == kMutex) fiber_test_set_knob(FIBER_KNOB_LIN_TRYLOCK_LIES, 1);
  if (g_opt.plant == kSem) fiber_test_set_knob(FIBER_KNOB_LIN_SEM_POST_TWICE, 1);
  if (!stress::start_runtime(g_opt.klts, g_opt.timeslice_us)) return 1;
  g_t0 = lin::now_ns();  // before the prefill: every recorded time is after it
  std::vector<worker_ctx> ctx;
  make_workers(ctx);
  std::vector<fiber_t> ids(ctx.size());
  for (std::size_t i = 0; i < ctx.size(); ++i) {
    if (fiber_create(&ids[i], nullptr, worker_main, &ctx[i]) != 0) {
      std::printf("FAIL: fiber_create\n");
      return 1;
    }
  }
  progress(ids);
  fiber_stats_t st;
  if (fiber_get_stats(&st) == 0) g_preemptions = st.preemptions;
  fiber_shutdown();
  return write_history();
}
