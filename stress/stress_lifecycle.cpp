// stress/stress_lifecycle.cpp - the lifecycle campaign (issue 14): init and
// shutdown cycles racing fiber_create / fiber_join / fiber_detach /
// fiber_get_stats from OS threads and from fibers, with the rule of
// lifecycle_gate.hpp (L1..L4) checked on every call:
//
//   codes   an OS-thread create returns 0 or EAGAIN; join 0 or ESRCH; detach
//           0 or ESRCH; stats 0 or EINVAL.  Calls from fibers always succeed
//           (their runtime waits for them).
//   values  a join that returns 0 gets the value the fiber returned.
//   ESRCH   a join of a fiber the caller created is ESRCH only if a shutdown
//           began after the create returned (the fiber's runtime is gone).
//   lost    every fiber whose create returned 0 has run by the time the first
//           shutdown that began after that create returned has returned.
//   memory  nothing freed while in use: run it under the asan preset.
//
// The main thread cycles: fiber_init (EBUSY when an OS thread's create already
// initialised a runtime with the defaults), a detached "parent" fiber that
// creates and joins children until a little after the shutdown began, a random
// pause, fiber_shutdown.  --plant-bug makes some fibers skip recording that
// they ran (a negative control: the "lost" check must fire).
#include <getopt.h>

#include <fiber/detail/testing.h>  // fiber_get_stats
#include <fiber/fiber.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

struct options {
  double seconds = 5;
  int threads = 2;
  unsigned klts = 2;
  unsigned timeslice_us = 1000;
  unsigned cycle_ms = 20;
  double status_every = 2;
  bool plant = false;
};
options g_opt;

std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_begun{0}, g_done{0};  // shutdowns begun / returned
std::atomic<long> g_fail{0};

struct counters {
  std::atomic<long> created{0}, eagain{0}, joined{0}, join_esrch{0}, detached{0},
      detach_esrch{0}, stats_ok{0}, stats_einval{0}, fiber_creates{0}, implicit_inits{0},
      cycles{0}, ran{0};
};
counters g_n;

void fail(const char* what, unsigned long long a = 0, unsigned long long b = 0) {
  g_fail.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count read at the end
  std::fprintf(stderr, "stress_lifecycle: FAIL: %s (%llu, %llu)\n", what, a, b);
}

void bump(std::atomic<long>& c) { c.fetch_add(1, std::memory_order_relaxed); }  // statistics

// One created fiber.  Owned by its creator; the fiber only sets `ran`.
struct record {
  std::uint64_t token = 0;
  std::uint64_t begun_at_create = 0;  // g_begun right after create returned
  std::atomic<bool> ran{false};
};

void* body(void* p) {
  auto* r = static_cast<record*>(p);
  void* ret = reinterpret_cast<void*>(r->token);
  bool skip = g_opt.plant && r->token % 53 == 0;  // the planted bug: a "lost" fiber
  bump(g_n.ran);
  if (!skip) r->ran.store(true, std::memory_order_release);  // release: pairs with check_ran
  return ret;  // r may be freed from here on
}

std::atomic<std::uint64_t> g_tokens{1};

// A record may be retired once a shutdown that began after its create
// returned has returned: by then its fiber must have run ("lost").
bool retire(record* r, bool final_check) {
  if (!final_check && g_done.load(std::memory_order_acquire) <= r->begun_at_create) return false;
  if (!r->ran.load(std::memory_order_acquire))  // acquire: pairs with body's release
    fail("lost: a fiber whose create returned 0 never ran before shutdown returned", r->token,
         r->begun_at_create);
  delete r;
  return true;
}

std::mutex g_left_mu;
std::vector<record*> g_left;  // records still pending when their thread ended

void os_thread(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<record*> pending;
  fiber_attr_t det;
  fiber_attr_init(&det);
  det.detached = 1;
  while (!g_stop.load(std::memory_order_relaxed)) {  // relaxed: a stop hint
    unsigned op = rng() % 8;
    if (op == 7) {
      fiber_stats_t s;
      int rc = fiber_get_stats(&s);
      if (rc == 0) bump(g_n.stats_ok);
      else if (rc == EINVAL) bump(g_n.stats_einval);
      else fail("stats: unexpected code", static_cast<unsigned>(rc));
      continue;
    }
    auto* r = new record;
    r->token = g_tokens.fetch_add(1, std::memory_order_relaxed);  // relaxed: uniqueness only
    fiber_t f = 0;
    const std::uint64_t begun_before = g_begun.load(std::memory_order_acquire);  // acquire: as below
    int rc = fiber_create(&f, op < 2 ? &det : nullptr, body, r);
    r->begun_at_create = g_begun.load(std::memory_order_acquire);  // acquire: pairs with main's bump
    if (rc == EAGAIN) {
      bump(g_n.eagain);
      delete r;
      continue;
    }
    if (rc != 0) {
      fail("create: unexpected code", static_cast<unsigned>(rc));
      delete r;
      continue;
    }
    bump(g_n.created);
    if (op >= 2 && op < 4) {
      rc = fiber_detach(f);
      if (rc == 0) bump(g_n.detached);
      else if (rc == ESRCH) bump(g_n.detach_esrch);
      else fail("detach: unexpected code", static_cast<unsigned>(rc));
    } else if (op >= 4) {
      void* got = nullptr;
      rc = fiber_join(f, &got);
      if (rc == 0) {
        bump(g_n.joined);
        if (got != reinterpret_cast<void*>(r->token)) fail("join: wrong value", r->token);
      } else if (rc == ESRCH) {
        bump(g_n.join_esrch);
        if (g_begun.load(std::memory_order_acquire) == begun_before)  // acquire: as above
          fail("join: ESRCH although no shutdown began since the create", r->token);
      } else {
        fail("join: unexpected code", static_cast<unsigned>(rc));
      }
    }
    pending.push_back(r);
    for (std::size_t i = 0; i < pending.size();) {
      if (retire(pending[i], false)) {
        pending[i] = pending.back();
        pending.pop_back();
      } else {
        ++i;
      }
    }
  }
  std::lock_guard<std::mutex> g(g_left_mu);
  g_left.insert(g_left.end(), pending.begin(), pending.end());
}

// A fiber of each cycle: creates and joins children (from a fiber every call
// must succeed, also while the shutdown waits for it), until a little after
// the cycle's shutdown began.
struct parent_arg {
  std::uint64_t cycle_begun;
};

void* parent(void* p) {
  const std::uint64_t begun = static_cast<parent_arg*>(p)->cycle_begun;
  delete static_cast<parent_arg*>(p);
  int after = 0;
  while (after < 50) {
    if (g_begun.load(std::memory_order_relaxed) != begun) ++after;  // relaxed: a hint
    record r;
    r.token = g_tokens.fetch_add(1, std::memory_order_relaxed);  // relaxed: uniqueness only
    fiber_t c = 0;
    int rc = fiber_create(&c, nullptr, body, &r);
    if (rc != 0) {
      fail("fiber-side create failed", static_cast<unsigned>(rc));
      break;
    }
    bump(g_n.fiber_creates);
    void* got = nullptr;
    rc = fiber_join(c, &got);
    if (rc != 0 || got != reinterpret_cast<void*>(r.token)) fail("fiber-side join", static_cast<unsigned>(rc));
    if (!r.ran.load(std::memory_order_acquire))  // acquire: pairs with body's release
      fail("lost: a fiber joined by a fiber did not record that it ran", r.token);
  }
  return nullptr;
}

void one_cycle(std::mt19937& rng) {
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = g_opt.klts;
  c.timeslice_us = g_opt.timeslice_us;
  int rc = fiber_init(&c);
  if (rc == EBUSY) bump(g_n.implicit_inits);  // an OS thread's create initialised it
  else if (rc != 0) fail("init: unexpected code", static_cast<unsigned>(rc));
  fiber_attr_t det;
  fiber_attr_init(&det);
  det.detached = 1;
  fiber_t pf = 0;
  auto* pa = new parent_arg{g_begun.load(std::memory_order_relaxed)};  // relaxed: main writes it
  rc = fiber_create(&pf, &det, parent, pa);
  if (rc != 0) {
    delete pa;
    if (rc != EAGAIN) fail("parent create: unexpected code", static_cast<unsigned>(rc));
  }
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % (g_opt.cycle_ms * 1000 + 1)));
  g_begun.fetch_add(1, std::memory_order_release);  // release: pairs with the threads' acquire
  rc = fiber_shutdown();
  if (rc != 0) fail("shutdown: unexpected code", static_cast<unsigned>(rc));
  g_done.fetch_add(1, std::memory_order_release);  // release: pairs with retire()'s acquire
  bump(g_n.cycles);
}

void report(const char* tag, double t) {
  auto v = [](std::atomic<long>& c) { return c.load(std::memory_order_relaxed); };  // statistics
  std::printf("stress_lifecycle: %s t=%.1fs cycles=%ld created=%ld eagain=%ld joined=%ld "
              "join_esrch=%ld detached=%ld detach_esrch=%ld stats=%ld/%ld fiber_creates=%ld "
              "implicit_inits=%ld ran=%ld fail=%ld\n",
              tag, t, v(g_n.cycles), v(g_n.created), v(g_n.eagain), v(g_n.joined), v(g_n.join_esrch),
              v(g_n.detached), v(g_n.detach_esrch), v(g_n.stats_ok), v(g_n.stats_einval),
              v(g_n.fiber_creates), v(g_n.implicit_inits), v(g_n.ran), v(g_fail));
  std::fflush(stdout);
}

int usage(const char* argv0, int rc) {
  std::printf("usage: %s [--seconds S] [--threads T] [--klts K] [--timeslice US] [--cycle-ms M]\n"
              "          [--status-every S] [--plant-bug] [--help]\n"
              "init/shutdown cycles racing create/join/detach from OS threads and fibers;\n"
              "exit 0 only if every check held (see the file's header).\n", argv0);
  return rc;
}

bool parse(int argc, char** argv, int* rc) {
  static const option longs[] = {
      {"seconds", required_argument, nullptr, 's'}, {"threads", required_argument, nullptr, 't'},
      {"klts", required_argument, nullptr, 'k'},    {"timeslice", required_argument, nullptr, 'q'},
      {"cycle-ms", required_argument, nullptr, 'c'}, {"status-every", required_argument, nullptr, 'r'},
      {"plant-bug", no_argument, nullptr, 'p'},     {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  for (int o; (o = getopt_long(argc, argv, "", longs, nullptr)) != -1;) {
    switch (o) {
      case 's': g_opt.seconds = std::atof(optarg); break;
      case 't': g_opt.threads = std::atoi(optarg); break;
      case 'k': g_opt.klts = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'q': g_opt.timeslice_us = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'c': g_opt.cycle_ms = static_cast<unsigned>(std::atoi(optarg)); break;
      case 'r': g_opt.status_every = std::atof(optarg); break;
      case 'p': g_opt.plant = true; break;
      case 'h': *rc = usage(argv[0], 0); return false;
      default: *rc = usage(argv[0], 2); return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 0;
  if (!parse(argc, argv, &rc)) return rc;
  std::vector<std::thread> ts;
  for (int i = 0; i < g_opt.threads; ++i) ts.emplace_back(os_thread, 1234u + static_cast<unsigned>(i));
  std::mt19937 rng(99);
  const auto start = clk::now();
  auto next_status = g_opt.status_every;
  auto elapsed = [&] { return std::chrono::duration<double>(clk::now() - start).count(); };
  while (elapsed() < g_opt.seconds) {
    one_cycle(rng);
    if (elapsed() >= next_status) {
      report("status", elapsed());
      next_status += g_opt.status_every;
    }
  }
  g_stop.store(true, std::memory_order_relaxed);  // relaxed: a stop hint
  for (auto& t : ts) t.join();
  rc = fiber_shutdown();  // an OS thread's create may have started one more runtime
  if (rc != 0 && rc != EINVAL) fail("final shutdown: unexpected code", static_cast<unsigned>(rc));
  g_done.fetch_add(1, std::memory_order_release);  // release: pairs with retire()'s acquire
  for (record* r : g_left) retire(r, true);
  if (g_n.created.load() == 0 || g_n.cycles.load() == 0 || g_n.fiber_creates.load() == 0)
    fail("no progress: nothing was created or no cycle completed");
  const bool ok = g_fail.load() == 0;
  report(ok ? "PASS" : "FAIL", elapsed());
  return ok ? 0 : 1;
}
