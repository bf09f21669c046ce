// stress/stress.cpp - hammers the runtime and every primitive at once, on real
// KLTs with preemption, with OS threads taking part, for a given time.
//
// Workloads (all concurrently), each self-checking:
//   lock     fibers and OS threads take one fiber::mutex; inside, a plain
//            owner word and a plain counter detect a second owner (mutual
//            exclusion, I-M1).  Reported like the kernel's locktorture:
//            Total, per-worker Max/Min acquisitions, Fail count.
//   buffer   bounded buffer with two condition variables; every sequence
//            number is consumed exactly once (no lost wake-up, I-C*).
//   sem      K permits; a plain in-use counter never exceeds K.
//   barrier  rounds of N fibers; all see the same round number.
//   churn    create/join/detach of short fibers that malloc, printf to
//            /dev/null, throw and catch, and check errno.
//   sleep    fibers sleep random times and are never woken early.
//
//   fiber_stress [--seconds S] [--klts K] [--fibers F] [--threads T] [--timeslice US]
//                [--policy fifo|runnext] [--mix lock,buffer,...] [--status S]
//                [--plant-bug 1] [--help]
// While it runs it prints a one-line status every --status seconds (as the
// kernel's locktorture does): elapsed time, lock Total/Max/Min/Fail, the other
// workloads' counts and the runtime's preemptions.  At the end, the report.
// Exit status 0 only if every check held and every worker made progress.
#include <fiber/fiber.hpp>
#include <fiber/stats.h>
#include <getopt.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

struct options {
  int seconds = 5;
  unsigned klts = 0;
  int fibers = 16;
  int threads = 2;
  unsigned timeslice_us = 1000;
  int policy = FIBER_POLICY_FIFO;
  bool plant = false;  // --plant-bug: lock workers skip the mutex (negative control)
  unsigned mix = 63;   // --mix: bit set of workloads (kLock...), all by default
  int status_s = 5;    // --status: seconds between status lines (0: none)
};
bool g_plant = false;

std::atomic<bool> g_stop{false};
std::atomic<long> g_fail{0};

void fail(const char* what) {
  g_fail.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "stress: FAIL: %s\n", what);
}

// ---- lock torture ----------------------------------------------------------
struct lock_torture {
  fiber::mutex m;
  long owner = 0;       // guarded by m
  long counter = 0;     // guarded by m
  // One slot per worker, written by it only; atomic (relaxed) because the
  // status line reads them while the workers run.
  std::unique_ptr<std::atomic<long>[]> acquisitions;
  std::size_t workers = 0;
  void work(int me) {
    while (!g_stop.load(std::memory_order_relaxed)) {
      std::unique_lock<fiber::mutex> g(m, std::defer_lock);
      if (!g_plant || me % 2 == 0) g.lock();
      if (owner != 0) fail("lock: two owners at once");
      owner = me + 1;
      for (volatile int i = 0; i < 50; ++i) {
      }
      // Sometimes switch away while holding the mutex (waiters park on it,
      // not on the KLT); always under --plant-bug, so the control is reliable.
      if (g_plant || counter % 64 == 0) fiber::this_fiber::yield();
      ++counter;
      if (owner != me + 1) fail("lock: owner changed inside the critical section");
      owner = 0;
      // relaxed: a statistic, read by the status line and, after the joins
      // (which order it), by the report.
      acquisitions[static_cast<std::size_t>(me)].fetch_add(1, std::memory_order_relaxed);
    }
  }
};

// ---- bounded buffer ----------------------------------------------------------
struct buffer_torture {
  fiber::mutex m;
  fiber::condition_variable not_full, not_empty;
  std::vector<long> ring = std::vector<long>(16);
  std::size_t head = 0, count = 0;  // guarded by m
  long next = 0;                    // guarded by m: producers' sequence
  std::vector<unsigned char> seen;  // guarded by m
  bool closing = false;             // guarded by m
  void produce() {
    for (;;) {
      std::unique_lock<fiber::mutex> lk(m);
      not_full.wait(lk, [&] { return count < ring.size() || closing; });
      if (closing) return;
      ring[(head + count) % ring.size()] = next++;
      ++count;
      not_empty.notify_one();
      if (g_stop.load(std::memory_order_relaxed)) return;
    }
  }
  void consume() {
    for (;;) {
      std::unique_lock<fiber::mutex> lk(m);
      not_empty.wait(lk, [&] { return count > 0 || closing; });
      if (count == 0) return;
      long v = ring[head];
      head = (head + 1) % ring.size();
      --count;
      if (static_cast<std::size_t>(v) >= seen.size()) seen.resize(static_cast<std::size_t>(v) * 2 + 64);
      if (seen[static_cast<std::size_t>(v)]++) fail("buffer: item consumed twice");
      not_full.notify_one();
    }
  }
  void close() {
    std::lock_guard<fiber::mutex> g(m);
    closing = true;
    not_full.notify_all();
    not_empty.notify_all();
  }
  long check() {  // after all joined: every produced item consumed once
    long missing = 0;
    for (long i = 0; i < next; ++i)
      if (i >= static_cast<long>(seen.size()) || seen[static_cast<std::size_t>(i)] != 1) ++missing;
    if (missing) fail("buffer: items lost");
    return next;
  }
};

// ---- semaphore -------------------------------------------------------------
struct sem_torture {
  static constexpr int kPermits = 3;
  fiber::counting_semaphore<> sem{kPermits};
  std::atomic<int> in_use{0};
  std::atomic<long> rounds{0};
  void work() {
    while (!g_stop.load(std::memory_order_relaxed)) {
      sem.acquire();
      if (in_use.fetch_add(1, std::memory_order_relaxed) + 1 > kPermits) fail("sem: too many holders");
      fiber::this_fiber::yield();
      in_use.fetch_sub(1, std::memory_order_relaxed);
      sem.release();
      rounds.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

// ---- barrier ---------------------------------------------------------------
struct barrier_torture {
  static constexpr int kParties = 4;
  fiber::barrier bar{kParties};
  std::atomic<long> round{0};
  std::atomic<int> arrived{0};
  long rounds_done = 0;
  void work(int rounds) {
    for (int r = 0; r < rounds; ++r) {
      long seen = round.load(std::memory_order_relaxed);
      if (arrived.fetch_add(1, std::memory_order_relaxed) + 1 == kParties) {
        arrived.store(0, std::memory_order_relaxed);
        round.fetch_add(1, std::memory_order_relaxed);
      }
      bar.arrive_and_wait();
      if (round.load(std::memory_order_relaxed) != seen + 1) fail("barrier: released before all arrived");
      bar.arrive_and_wait();
    }
  }
};

// ---- churn -----------------------------------------------------------------
std::atomic<long> g_churned{0};
FILE* g_devnull = nullptr;

void* churn_child(void* arg) {
  long v = reinterpret_cast<long>(arg);
  std::unique_ptr<char[]> p(new char[static_cast<std::size_t>(64 + v % 512)]);
  std::memset(p.get(), static_cast<int>(v), 64);
  std::fprintf(g_devnull, "churn %ld %s\n", v, "payload");
  // errno is per fiber across preemption (I4).  Only an asynchronous
  // preemption may land here, and it resumes on this KLT (I3); a voluntary
  // call could migrate, and compiled code caches errno's TLS address across
  // calls (a documented limit), so no runtime call sits between set and check.
  errno = static_cast<int>(v % 1000);
  for (volatile int i = 0; i < 2000; ++i) {
  }
  if (errno != static_cast<int>(v % 1000)) fail("churn: errno changed under the fiber");
  try {
    if (v % 3 == 0) throw std::runtime_error("churn");
  } catch (const std::runtime_error& e) {
    fiber::this_fiber::yield();  // switched out inside a catch block
    if (std::strcmp(e.what(), "churn") != 0) fail("churn: caught exception changed");
    if (std::uncaught_exceptions() != 0) fail("churn: exception state leaked");
  }
  g_churned.fetch_add(1, std::memory_order_relaxed);
  return arg;
}

void churn() {
  long v = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    fiber_t ids[8];
    for (auto& id : ids) {
      if (fiber_create(&id, nullptr, churn_child, reinterpret_cast<void*>(++v)) != 0) fail("churn: create");
    }
    for (int i = 0; i < 8; ++i) {
      if (i % 4 == 3) {
        if (fiber_detach(ids[i]) != 0) fail("churn: detach");
        continue;
      }
      void* r = nullptr;
      if (fiber_join(ids[i], &r) != 0) fail("churn: join");
    }
  }
}

// ---- sleepers ----------------------------------------------------------------
std::atomic<long> g_slept{0};
void sleeper(unsigned seed) {
  std::minstd_rand rng(seed);
  while (!g_stop.load(std::memory_order_relaxed)) {
    auto d = std::chrono::microseconds(50 + rng() % 2000);
    auto t0 = clk::now();
    fiber::this_fiber::sleep_for(d);
    if (clk::now() - t0 < d) fail("sleep: woke early");
    g_slept.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---- options -----------------------------------------------------------------
enum workload : unsigned { kLock = 1, kBuffer = 2, kSem = 4, kBarrier = 8, kChurn = 16, kSleep = 32, kAll = 63 };
const char* const kWorkloadNames[] = {"lock", "buffer", "sem", "barrier", "churn", "sleep"};

const char kUsage[] =
    "usage: fiber_stress [options]   (the stress suite: stress/stress.cpp)\n"
    "  -s, --seconds S      run time (default 5)\n"
    "  -k, --klts K         kernel-level threads (default 0: one per CPU)\n"
    "  -f, --fibers F       lock-torture fibers (default 16)\n"
    "  -t, --threads T      lock-torture OS threads (default 2)\n"
    "  -q, --timeslice US   preemption quantum in us (default 1000; 0: cooperative)\n"
    "      --policy P       fifo | runnext (default fifo)\n"
    "  -m, --mix LIST       workloads, comma separated: lock,buffer,sem,barrier,churn,sleep\n"
    "                       (default all)\n"
    "      --status S       a status line every S seconds (default 5; 0: none)\n"
    "      --plant-bug 1    negative control: half the lock workers skip the mutex\n"
    "  -h, --help           this text\n";

[[noreturn]] void usage_error(const char* what, const char* arg) {
  std::fprintf(stderr, "fiber_stress: %s %s\n%s", what, arg, kUsage);
  std::exit(2);
}

unsigned parse_mix(const char* text) {
  unsigned mix = 0;
  std::string s = text;
  for (std::size_t at = 0; at <= s.size();) {
    std::size_t comma = std::min(s.find(',', at), s.size());
    std::string name = s.substr(at, comma - at);
    unsigned bit = 0;
    for (unsigned i = 0; i < 6; ++i)
      if (name == kWorkloadNames[i]) bit = 1u << i;
    if (name == "all") bit = kAll;
    if (bit == 0) usage_error("--mix: unknown workload", name.c_str());
    mix |= bit;
    at = comma + 1;
  }
  return mix;
}

int parse_int(const char* opt, const char* v, int lo) {
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < lo || n > 1000000) usage_error(opt, v);
  return static_cast<int>(n);
}

options parse(int argc, char** argv) {
  enum { kPolicy = 256, kStatus, kPlant };
  static const ::option kOpts[] = {
      {"seconds", required_argument, nullptr, 's'}, {"klts", required_argument, nullptr, 'k'},
      {"fibers", required_argument, nullptr, 'f'},  {"threads", required_argument, nullptr, 't'},
      {"timeslice", required_argument, nullptr, 'q'}, {"policy", required_argument, nullptr, kPolicy},
      {"mix", required_argument, nullptr, 'm'},     {"status", required_argument, nullptr, kStatus},
      {"plant-bug", required_argument, nullptr, kPlant}, {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  options o;
  for (int ch; (ch = ::getopt_long(argc, argv, "s:k:f:t:q:m:h", kOpts, nullptr)) != -1;) {
    switch (ch) {
      case 's': o.seconds = parse_int("--seconds", ::optarg, 1); break;
      case 'k': o.klts = static_cast<unsigned>(parse_int("--klts", ::optarg, 0)); break;
      case 'f': o.fibers = parse_int("--fibers", ::optarg, 1); break;
      case 't': o.threads = parse_int("--threads", ::optarg, 0); break;
      case 'q': o.timeslice_us = static_cast<unsigned>(parse_int("--timeslice", ::optarg, 0)); break;
      case 'm': o.mix = parse_mix(::optarg); break;
      case kStatus: o.status_s = parse_int("--status", ::optarg, 0); break;
      case kPlant: o.plant = parse_int("--plant-bug", ::optarg, 0) != 0; break;
      case kPolicy:
        if (std::strcmp(::optarg, "fifo") != 0 && std::strcmp(::optarg, "runnext") != 0)
          usage_error("--policy: fifo or runnext, not", ::optarg);
        o.policy = std::strcmp(::optarg, "runnext") == 0 ? FIBER_POLICY_RUNNEXT : FIBER_POLICY_FIFO;
        break;
      case 'h': std::fputs(kUsage, stdout); std::exit(0);
      default: std::fputs(kUsage, stderr); std::exit(2);
    }
  }
  if (::optind < argc) usage_error("unexpected argument", argv[::optind]);
  return o;
}

// ---- the campaign ------------------------------------------------------------
struct campaign {
  explicit campaign(const options& opt) : o(opt) {}
  const options& o;
  lock_torture lt;
  buffer_torture bt;
  sem_torture st;
  barrier_torture brt;
  std::vector<fiber::thread> fs, prod, cons;
  std::vector<std::thread> ts;
  std::thread os_consumer;

  bool on(unsigned w) const { return (o.mix & w) != 0; }

  void start() {
    const int nlock = on(kLock) ? o.fibers : 0, nthreads = on(kLock) ? o.threads : 0;
    lt.workers = static_cast<std::size_t>(nlock + nthreads);
    lt.acquisitions.reset(new std::atomic<long>[lt.workers]());
    for (int i = 0; i < nlock; ++i) fs.emplace_back([this, i] { lt.work(i); });
    for (int i = 0; i < nthreads; ++i) ts.emplace_back([this, nlock, i] { lt.work(nlock + i); });
    if (on(kBuffer)) {
      for (int i = 0; i < 3; ++i) prod.emplace_back([this] { bt.produce(); });
      for (int i = 0; i < 3; ++i) cons.emplace_back([this] { bt.consume(); });
      os_consumer = std::thread([this] { bt.consume(); });  // an OS thread waits on the same condvar
    }
    if (on(kSem))
      for (int i = 0; i < 6; ++i) fs.emplace_back([this] { st.work(); });
    const int barrier_rounds = 200 * o.seconds;
    if (on(kBarrier))
      for (int i = 0; i < barrier_torture::kParties; ++i) fs.emplace_back([this, barrier_rounds] { brt.work(barrier_rounds); });
    if (on(kChurn))
      for (int i = 0; i < 2; ++i) fs.emplace_back([] { churn(); });
    if (on(kSleep))
      for (int i = 0; i < 4; ++i) fs.emplace_back([i] { sleeper(static_cast<unsigned>(i) + 1); });
  }

  void stop() {
    g_stop.store(true, std::memory_order_relaxed);  // relaxed: a flag polled by the workers; joins order the rest
    for (auto& t : prod) t.join();
    if (on(kBuffer)) bt.close();
    for (auto& t : cons) t.join();
    if (os_consumer.joinable()) os_consumer.join();
    for (auto& t : fs) t.join();
    for (auto& t : ts) t.join();
  }

  struct lock_totals { long total = 0, mx = 0, mn = 0; };
  lock_totals lock_counts() const {
    lock_totals r;
    for (std::size_t i = 0; i < lt.workers; ++i) {
      const long a = lt.acquisitions[i].load(std::memory_order_relaxed);  // relaxed: a statistic
      r.total += a;
      r.mx = std::max(r.mx, a);
      r.mn = i == 0 ? a : std::min(r.mn, a);
    }
    return r;
  }

  // One line, locktorture style; read while the workers run (atomic counters only).
  void status(double elapsed) const {
    const lock_totals l = lock_counts();
    fiber_stats_t s{};
    fiber_get_stats(&s);
    std::printf("stress [%4.0fs/%ds]: lock Total: %ld Max/Min: %ld/%ld Fail: %ld | sem %ld barrier %ld "
                "churn %ld sleep %ld | preemptions %llu switches %llu\n",
                elapsed, o.seconds, l.total, l.mx, l.mn, g_fail.load(std::memory_order_relaxed),
                st.rounds.load(std::memory_order_relaxed), brt.round.load(std::memory_order_relaxed),
                g_churned.load(std::memory_order_relaxed), g_slept.load(std::memory_order_relaxed),
                static_cast<unsigned long long>(s.preemptions), static_cast<unsigned long long>(s.switches));
    std::fflush(stdout);
  }

  void run_for() const {
    const auto t0 = clk::now(), end = t0 + std::chrono::seconds(o.seconds);
    auto next = o.status_s > 0 ? t0 + std::chrono::seconds(o.status_s) : end;
    while (clk::now() < end) {
      std::this_thread::sleep_until(std::min(next, end));
      if (o.status_s > 0 && clk::now() >= next && clk::now() < end) {
        status(std::chrono::duration<double>(clk::now() - t0).count());
        next += std::chrono::seconds(o.status_s);
      }
    }
  }

  // The final report and verdict (after stop()).
  bool report() {
    long items = on(kBuffer) ? bt.check() : 0;
    fiber_stats_t s{};
    fiber_get_stats(&s);
    const lock_totals l = lock_counts();
    if (on(kLock) && l.total != lt.counter) fail("lock: counter differs from the sum of acquisitions");
    if (on(kLock) && l.mn == 0) fail("lock: a worker starved (0 acquisitions)");
    std::printf("stress: %ds, %llu KLTs, timeslice %u us, policy %s\n", o.seconds,
                static_cast<unsigned long long>(s.klts), o.timeslice_us,
                o.policy == FIBER_POLICY_RUNNEXT ? "runnext" : "fifo");
    if (on(kLock))
      std::printf("lock:    Total: %ld  Max/Min: %ld/%ld  Fail: %ld  (%d fibers + %d OS threads)\n", l.total,
                  l.mx, l.mn, g_fail.load(), o.fibers, o.threads);
    if (on(kBuffer)) std::printf("buffer:  items %ld, each consumed once\n", items);
    std::printf("sem:     rounds %ld\nbarrier: rounds %ld\nchurn:   fibers %ld\nsleep:   sleeps %ld\n",
                st.rounds.load(), brt.round.load(), g_churned.load(), g_slept.load());
    std::printf("runtime: ticks %llu preemptions %llu deferred count/pc/stack %llu/%llu/%llu switches %llu\n",
                static_cast<unsigned long long>(s.ticks), static_cast<unsigned long long>(s.preemptions),
                static_cast<unsigned long long>(s.deferred_count), static_cast<unsigned long long>(s.deferred_pc),
                static_cast<unsigned long long>(s.deferred_stack), static_cast<unsigned long long>(s.switches));
    return g_fail.load() == 0 && (!on(kBuffer) || items > 0) && (!on(kSem) || st.rounds.load() > 0) &&
           (!on(kChurn) || g_churned.load() > 0) && (!on(kSleep) || g_slept.load() > 0);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  g_devnull = std::fopen("/dev/null", "w");
  g_plant = o.plant;
  if (fiber_set_policy(o.policy) != 0) return 2;
  fiber::runtime rt({o.klts, std::chrono::microseconds(o.timeslice_us)});
  campaign c(o);
  c.start();
  c.run_for();
  c.stop();
  const bool ok = c.report();
  std::printf("%s\n", ok ? "stress: PASS" : "stress: FAIL");
  return ok ? 0 : 1;
}
