// stress/stress_blocking.cpp - libc's blocking locks inside fibers under a
// short quantum (issue 12 item 1; core/src/interpose_locks.cpp).
//
// Fibers (and a few OS threads) move items through bounded queues, each a
// std::deque guarded by a std::mutex with two std::condition_variables (not
// full / not empty); every producer also bumps a shared counter under a
// std::shared_mutex, and readers check it under the shared lock.  The first
// --wires fiber consumers do not record what they take: each forwards it
// through its own wire (even: a pipe, odd: a loopback TCP connection) to a
// relay fiber that reads the other end with plain read() and records it, so
// items also cross parked reads and writes (the I/O poller, an idle KLT's
// poll sleep: core/src/idle_poll.hpp).  The first --raw-wires relays read
// with syscall(SYS_read) instead, a call the runtime cannot see: it blocks
// the KLT, and the monitor's spare KLTs (core/src/monitor.hpp I-MON4) run
// the other fibers meanwhile; with --no-spare (the test knob) a run on one
// KLT hangs there, the control that this path is exercised.  Checks:
//   lost/dup  for every producer, the consumers together received exactly the
//             items it produced: same count, same sum, same sum of squares;
//   counter   the writers' counter equals the number of items produced;
//   torn      a reader never sees the counter pair half-updated;
//   hang      the program ends within --hang-after s (default --seconds +
//             30; an alarm), and the runtime's watchdog (watchdog_ms) reports
//             a stalled KLT.
// --plant-bug: consumers drop one item in 5000 without recording it (the
// "lost" check must fire: a negative control of the checker).
// ASan: build with the asan preset; the items are heap-allocated.
#include <fiber/fiber.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "fiber/detail/testing.h"
#include "stress_init.hpp"

namespace {

struct options {
  double seconds = 4;
  unsigned klts = 0;  // all CPUs
  unsigned timeslice_us = 100;
  unsigned producers = 8, consumers = 8, queues = 4, os_threads = 2, wires = 4, raw_wires = 0;
  double hang_after = 0;  // 0: seconds + 30
  bool plant = false;
  bool no_spare = false;
};
options g_opt;

struct item {
  unsigned producer;
  std::uint64_t seq;
};

struct queue {
  std::mutex mu;
  std::condition_variable not_full, not_empty;
  std::deque<std::unique_ptr<item>> q;  // guarded by mu; nullptr: end of stream
  static constexpr std::size_t kCap = 16;
};

struct tally {
  std::atomic<std::uint64_t> count{0}, sum{0}, sq{0};
};

std::vector<std::unique_ptr<queue>> g_queues;
std::unique_ptr<tally[]> g_made, g_got;  // per producer
std::atomic<bool> g_stop{false};
std::atomic<unsigned> g_producers_left{0};
std::shared_mutex g_rw;
std::uint64_t g_ctr_a = 0, g_ctr_b = 0;  // guarded by g_rw
std::atomic<std::uint64_t> g_torn{0};
struct wire {
  int in = -1, out = -1;  // the consumer writes `in`, the relay reads `out`
};
std::vector<wire> g_wires;  // one per forwarding consumer
std::atomic<std::uint64_t> g_wire_errors{0}, g_relayed{0};

void record(tally& t, std::uint64_t v) {
  t.count.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after every join
  t.sum.fetch_add(v, std::memory_order_relaxed);
  t.sq.fetch_add(v * v, std::memory_order_relaxed);
}

void produce(unsigned p) {
  for (std::uint64_t seq = 0; !g_stop.load(std::memory_order_relaxed); ++seq) {  // relaxed: a flag
    queue& q = *g_queues[(p + seq) % g_queues.size()];
    {
      std::unique_lock<std::mutex> g(q.mu);
      q.not_full.wait(g, [&] { return q.q.size() < queue::kCap; });
      q.q.push_back(std::make_unique<item>(item{p, seq}));
    }
    q.not_empty.notify_one();
    record(g_made[p], seq);
    {
      std::unique_lock<std::shared_mutex> g(g_rw);
      ++g_ctr_a;
      ++g_ctr_b;
    }
    if ((seq & 15) == 0) {
      std::shared_lock<std::shared_mutex> g(g_rw);
      if (g_ctr_a != g_ctr_b) g_torn.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
    }
  }
  // The last producer closes every queue (one end marker per consumer).
  if (g_producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {  // acq_rel: the last one sees all
    for (unsigned c = 0; c < g_opt.consumers + g_opt.os_threads; ++c) {
      queue& q = *g_queues[c % g_queues.size()];
      std::lock_guard<std::mutex> g(q.mu);
      q.q.push_back(nullptr);
      q.not_empty.notify_all();
    }
  }
}

// Both ends of a wire: a pipe, or a loopback TCP connection (plain system
// calls, before the runtime starts).
bool make_wire(bool tcp, wire& w) {
  int fd[2];
  if (!tcp) {
    if (pipe(fd) != 0) return false;
    w.out = fd[0], w.in = fd[1];
    return true;
  }
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 1) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return false;
  w.in = socket(AF_INET, SOCK_STREAM, 0);
  if (w.in < 0 || connect(w.in, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  w.out = accept(l, nullptr, nullptr);
  close(l);
  return w.out >= 0;
}

// A plain blocking write of the whole buffer (interposed in a fiber: it parks).
bool write_all(int fd, const char* p, std::size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k <= 0) return false;
    p += k, n -= static_cast<std::size_t>(k);
  }
  return true;
}

// The relay of wire w: records every item read from it until EOF.
void relay(unsigned w) {
  std::uint64_t rec[2];
  char* p = reinterpret_cast<char*>(rec);
  std::size_t have = 0;
  const bool raw = w < g_opt.raw_wires;  // the runtime cannot see it: the KLT blocks
  for (;;) {
    ssize_t k = raw ? syscall(SYS_read, g_wires[w].out, p + have, sizeof rec - have)
                    : read(g_wires[w].out, p + have, sizeof rec - have);
    if (raw && k < 0 && errno == EINTR) continue;  // a tick landed in it (no SA_RESTART)
    if (k == 0 && have == 0) break;  // EOF at a record boundary
    if (k <= 0) {
      g_wire_errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
      break;
    }
    have += static_cast<std::size_t>(k);
    if (have < sizeof rec) continue;
    record(g_got[rec[0]], rec[1]);
    g_relayed.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
    have = 0;
  }
  close(g_wires[w].out);
}

void consume(unsigned c) {
  queue& q = *g_queues[c % g_queues.size()];
  const int out = c < g_wires.size() ? g_wires[c].in : -1;  // a forwarding consumer's wire
  std::uint64_t n = 0;
  for (;;) {
    std::unique_ptr<item> it;
    {
      std::unique_lock<std::mutex> g(q.mu);
      q.not_empty.wait(g, [&] { return !q.q.empty(); });
      it = std::move(q.q.front());
      q.q.pop_front();
    }
    q.not_full.notify_all();
    if (!it) break;
    if (g_opt.plant && ++n % 5000 == 0) continue;  // planted bug: dropped unrecorded
    if (out < 0) {
      record(g_got[it->producer], it->seq);
      continue;
    }
    std::uint64_t rec[2] = {it->producer, it->seq};
    if (!write_all(out, reinterpret_cast<const char*>(rec), sizeof rec))
      g_wire_errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
  }
  if (out >= 0) close(out);  // EOF for the relay
}

void* fiber_producer(void* a) {
  produce(static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(a)));
  return nullptr;
}
void* fiber_relay(void* a) {
  relay(static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(a)));
  return nullptr;
}
void* fiber_consumer(void* a) {
  consume(static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(a)));
  return nullptr;
}

void parse(int argc, char** argv) {
  static option longopts[] = {{"seconds", required_argument, nullptr, 's'},
                              {"klts", required_argument, nullptr, 'k'},
                              {"timeslice", required_argument, nullptr, 't'},
                              {"producers", required_argument, nullptr, 'p'},
                              {"consumers", required_argument, nullptr, 'c'},
                              {"threads", required_argument, nullptr, 'o'},
                              {"wires", required_argument, nullptr, 'w'},
                              {"raw-wires", required_argument, nullptr, 'r'},
                              {"hang-after", required_argument, nullptr, 'h'},
                              {"no-spare", no_argument, nullptr, 'n'},
                              {"plant-bug", no_argument, nullptr, 'b'},
                              {nullptr, 0, nullptr, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "", longopts, nullptr)) != -1;) {
    switch (ch) {
      case 's': g_opt.seconds = std::atof(optarg); break;
      case 'k': g_opt.klts = static_cast<unsigned>(std::atoi(optarg)); break;
      case 't': g_opt.timeslice_us = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'p': g_opt.producers = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'c': g_opt.consumers = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'o': g_opt.os_threads = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'w': g_opt.wires = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'r': g_opt.raw_wires = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'h': g_opt.hang_after = std::atof(optarg); break;
      case 'n': g_opt.no_spare = true; break;
      case 'b': g_opt.plant = true; break;
      default:
        std::fprintf(stderr, "usage: %s [--seconds S] [--klts N] [--timeslice US] [--producers N] "
                             "[--consumers N] [--threads N] [--wires N] [--raw-wires N] [--hang-after S] [--no-spare] "
                             "[--plant-bug]\n", argv[0]);
        std::exit(2);
    }
  }
  if (g_opt.producers == 0 || g_opt.consumers == 0) g_opt.producers = g_opt.consumers = 1;
  if (g_opt.wires > g_opt.consumers) g_opt.wires = g_opt.consumers;
  if (g_opt.raw_wires > g_opt.wires) g_opt.raw_wires = g_opt.wires;
  if (g_opt.hang_after <= 0) g_opt.hang_after = g_opt.seconds + 30;
}

// SIGALRM: the run did not end within --hang-after seconds.
void on_hang(int) {
  static const char msg[] = "FAIL: hang: the run did not end in time\n";
  ssize_t r = write(STDOUT_FILENO, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

int check() {
  int fails = 0;
  std::uint64_t total = 0;
  for (unsigned p = 0; p < g_opt.producers + g_opt.os_threads; ++p) {
    tally &m = g_made[p], &g = g_got[p];
    total += m.count.load();
    if (m.count.load() != g.count.load() || m.sum.load() != g.sum.load() || m.sq.load() != g.sq.load()) {
      std::printf("FAIL: %s: producer %u made %llu, consumers got %llu\n",
                  g.count.load() < m.count.load() ? "lost" : "dup", p,
                  static_cast<unsigned long long>(m.count.load()),
                  static_cast<unsigned long long>(g.count.load()));
      ++fails;
    }
  }
  if (g_ctr_a != total || g_ctr_b != total) {
    std::printf("FAIL: counter: %llu/%llu, items %llu\n", static_cast<unsigned long long>(g_ctr_a),
                static_cast<unsigned long long>(g_ctr_b), static_cast<unsigned long long>(total));
    ++fails;
  }
  if (g_wire_errors.load()) {
    std::printf("FAIL: wire: %llu short reads or writes\n", static_cast<unsigned long long>(g_wire_errors.load()));
    ++fails;
  }
  if (g_torn.load()) {
    std::printf("FAIL: torn: %llu\n", static_cast<unsigned long long>(g_torn.load()));
    ++fails;
  }
  fiber_test_spare_counters_t sp{};
  fiber_test_get_spare_counters(&sp);
  std::printf("%s: %llu items through %u queues, %u+%u producers, %u+%u consumers, %llu of them "
              "relayed through %u wires (%u raw); spare KLTs started %llu, turned on %llu times\n",
              fails ? "FAILED" : "ok", static_cast<unsigned long long>(total), g_opt.queues,
              g_opt.producers, g_opt.os_threads, g_opt.consumers, g_opt.os_threads,
              static_cast<unsigned long long>(g_relayed.load()), g_opt.wires, g_opt.raw_wires,
              static_cast<unsigned long long>(sp.started), static_cast<unsigned long long>(sp.turned_on));
  return fails ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  parse(argc, argv);
  signal(SIGALRM, on_hang);
  alarm(static_cast<unsigned>(g_opt.hang_after));  // hang: SIGALRM ends the run
  if (g_opt.no_spare) fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);
  for (unsigned i = 0; i < g_opt.queues; ++i) g_queues.push_back(std::make_unique<queue>());
  const unsigned np = g_opt.producers + g_opt.os_threads;
  g_made.reset(new tally[np]);
  g_got.reset(new tally[np]);
  g_producers_left.store(np);
  g_wires.resize(g_opt.wires);
  for (unsigned w = 0; w < g_opt.wires; ++w) {
    if (!make_wire(w % 2 == 1, g_wires[w])) {
      std::printf("FAIL: wire %u: %s\n", w, std::strerror(errno));
      return 1;
    }
  }
  if (!stress::start_runtime(g_opt.klts, g_opt.timeslice_us)) return 1;
  std::vector<fiber_t> ids;
  for (unsigned i = 0; i < g_opt.consumers; ++i) {
    fiber_t f;
    if (fiber_create(&f, nullptr, fiber_consumer, reinterpret_cast<void*>(std::uintptr_t{i})) == 0) ids.push_back(f);
  }
  for (unsigned i = 0; i < g_opt.wires; ++i) {
    fiber_t f;
    if (fiber_create(&f, nullptr, fiber_relay, reinterpret_cast<void*>(std::uintptr_t{i})) == 0) ids.push_back(f);
  }
  for (unsigned i = 0; i < g_opt.producers; ++i) {
    fiber_t f;
    if (fiber_create(&f, nullptr, fiber_producer, reinterpret_cast<void*>(std::uintptr_t{i})) == 0) ids.push_back(f);
  }
  if (ids.size() != g_opt.consumers + g_opt.wires + g_opt.producers) {
    std::printf("FAIL: fiber_create\n");
    return 1;
  }
  std::vector<std::thread> os;
  for (unsigned i = 0; i < g_opt.os_threads; ++i) {
    os.emplace_back([i] { produce(g_opt.producers + i); });
    os.emplace_back([i] { consume(g_opt.consumers + i); });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(g_opt.seconds));
  g_stop.store(true, std::memory_order_relaxed);  // relaxed: a flag; the joins order the rest
  for (fiber_t f : ids) fiber_join(f, nullptr);
  for (auto& t : os) t.join();
  fiber_shutdown();
  return check();
}
