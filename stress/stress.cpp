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
//                [--policy fifo|runnext] [--plant-bug 1]
// Exit status 0 only if every check held and every worker made progress.
#include <fiber/detail/testing.h>
#include <fiber/fiber.hpp>

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
  std::vector<long> acquisitions;  // one slot per worker, written by it only
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
      ++acquisitions[static_cast<std::size_t>(me)];
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

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--seconds") o.seconds = std::atoi(v);
    else if (k == "--klts") o.klts = static_cast<unsigned>(std::atoi(v));
    else if (k == "--fibers") o.fibers = std::atoi(v);
    else if (k == "--threads") o.threads = std::atoi(v);
    else if (k == "--timeslice") o.timeslice_us = static_cast<unsigned>(std::atoi(v));
    else if (k == "--plant-bug") o.plant = std::atoi(v) != 0;
    else if (k == "--policy") o.policy = std::string(v) == "runnext" ? FIBER_POLICY_RUNNEXT : FIBER_POLICY_FIFO;
    else { std::fprintf(stderr, "stress: unknown option %s\n", k.c_str()); std::exit(2); }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  g_devnull = std::fopen("/dev/null", "w");
  g_plant = o.plant;
  if (fiber_set_policy(o.policy) != 0) return 2;
  fiber::runtime rt({o.klts, std::chrono::microseconds(o.timeslice_us)});
  lock_torture lt;
  buffer_torture bt;
  sem_torture st;
  barrier_torture brt;
  const int nlock = o.fibers, nthreads = o.threads;
  lt.acquisitions.assign(static_cast<std::size_t>(nlock + nthreads), 0);

  std::vector<fiber::thread> fs;
  std::vector<std::thread> ts;
  for (int i = 0; i < nlock; ++i) fs.emplace_back([&lt, i] { lt.work(i); });
  for (int i = 0; i < nthreads; ++i) ts.emplace_back([&lt, nlock, i] { lt.work(nlock + i); });
  std::vector<fiber::thread> prod, cons;
  for (int i = 0; i < 3; ++i) prod.emplace_back([&bt] { bt.produce(); });
  for (int i = 0; i < 3; ++i) cons.emplace_back([&bt] { bt.consume(); });
  std::thread os_consumer([&bt] { bt.consume(); });  // an OS thread waits on the same condvar
  for (int i = 0; i < 6; ++i) fs.emplace_back([&st] { st.work(); });
  const int barrier_rounds = 200 * o.seconds;
  for (int i = 0; i < barrier_torture::kParties; ++i) fs.emplace_back([&brt, barrier_rounds] { brt.work(barrier_rounds); });
  for (int i = 0; i < 2; ++i) fs.emplace_back([] { churn(); });
  for (int i = 0; i < 4; ++i) fs.emplace_back([i] { sleeper(static_cast<unsigned>(i) + 1); });

  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  g_stop.store(true);
  for (auto& t : prod) t.join();
  bt.close();
  for (auto& t : cons) t.join();
  os_consumer.join();
  for (auto& t : fs) t.join();
  for (auto& t : ts) t.join();
  long items = bt.check();

  fiber_stats_t s{};
  fiber_get_stats(&s);
  long total = 0, mx = 0, mn = -1;
  for (long a : lt.acquisitions) {
    total += a;
    mx = std::max(mx, a);
    mn = mn < 0 ? a : std::min(mn, a);
  }
  if (total != lt.counter) fail("lock: counter differs from the sum of acquisitions");
  if (mn == 0) fail("lock: a worker starved (0 acquisitions)");
  std::printf("stress: %ds, %llu KLTs, timeslice %u us, policy %s\n", o.seconds,
              static_cast<unsigned long long>(s.klts), o.timeslice_us,
              o.policy == FIBER_POLICY_RUNNEXT ? "runnext" : "fifo");
  std::printf("lock:    Total: %ld  Max/Min: %ld/%ld  Fail: %ld  (%d fibers + %d OS threads)\n", total,
              mx, mn, g_fail.load(), nlock, nthreads);
  std::printf("buffer:  items %ld, each consumed once\n", items);
  std::printf("sem:     rounds %ld\nbarrier: rounds %ld\nchurn:   fibers %ld\nsleep:   sleeps %ld\n",
              st.rounds.load(), brt.round.load(), g_churned.load(), g_slept.load());
  std::printf("runtime: ticks %llu preemptions %llu deferred count/pc/stack %llu/%llu/%llu switches %llu\n",
              static_cast<unsigned long long>(s.ticks), static_cast<unsigned long long>(s.preemptions),
              static_cast<unsigned long long>(s.deferred_count), static_cast<unsigned long long>(s.deferred_pc),
              static_cast<unsigned long long>(s.deferred_stack), static_cast<unsigned long long>(s.switches));
  bool ok = g_fail.load() == 0 && items > 0 && st.rounds.load() > 0 && g_churned.load() > 0 && g_slept.load() > 0;
  std::printf("%s\n", ok ? "stress: PASS" : "stress: FAIL");
  return ok ? 0 : 1;
}
