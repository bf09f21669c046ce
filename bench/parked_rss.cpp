// bench/parked_rss.cpp - what a parked fiber costs in resident memory.
//
//   parked_rss [--fibers 100000] [--klts 1] [--wait cond|mutex] [--boost]
//
// Creates `fibers` fibers that all block on one condition variable (or on
// one mutex the driver holds), waits until every one of them is parked, and
// prints one JSON object: RSS before and after (from /proc/self/statm, so
// page tables are not counted, as in `ps`), and the delta per fiber.  Then it
// wakes them, joins them, and reports the RSS after fiber_shutdown too.  The
// fibers are created from the main thread (an OS thread), so their stacks are
// fresh: this measures the first-use cost, not a warm cache.
//
// --boost runs the same on Boost.Fiber (one thread, fixedsize_stack of 16 KiB,
// its smallest practical size; our fibers use the default 256 KiB stack) when
// the binary was built with it.
//
// Written against the public C API only.  Exit status 1 on a failed API call.
#include <fiber/fiber.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef BENCH_HAVE_BOOST
#include <boost/fiber/all.hpp>
#endif

namespace {

long rss_bytes() {
  long pages = 0, res = 0;
  if (FILE* fp = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(fp, "%ld %ld", &pages, &res) != 2) res = 0;
    std::fclose(fp);
  }
  return res * sysconf(_SC_PAGESIZE);
}

[[noreturn]] void die(const char* what, int e) {
  std::fprintf(stderr, "parked_rss: %s: %s\n", what, std::strerror(e));
  std::exit(1);
}

fiber_mutex_t g_mu;
fiber_cond_t g_cv;
std::atomic<long> g_parked{0};
bool g_go = false;  // guarded by g_mu
bool g_use_mutex = false;

void* waiter(void*) {
  if (g_use_mutex) {  // blocks on the mutex the driver holds
    g_parked.fetch_add(1, std::memory_order_relaxed);  // relaxed: a progress count, polled
    fiber_mutex_lock(&g_mu);
    fiber_mutex_unlock(&g_mu);
    return nullptr;
  }
  fiber_mutex_lock(&g_mu);
  g_parked.fetch_add(1, std::memory_order_relaxed);  // relaxed: under g_mu, read under g_mu
  while (!g_go) fiber_cond_wait(&g_cv, &g_mu);
  fiber_mutex_unlock(&g_mu);
  return nullptr;
}

void settle(long n) {
  // Every waiter counted itself; the last ones may still be on their way into
  // the park: give them a moment (they park within microseconds).
  while (g_parked.load(std::memory_order_relaxed) < n) usleep(1000);  // relaxed: polled count
  usleep(200000);
}

void run_fiber(long n, unsigned klts) {
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = klts;
  if (int e = fiber_init(&cfg)) die("fiber_init", e);
  fiber_mutex_init(&g_mu, nullptr);
  fiber_cond_init(&g_cv, nullptr);
  std::vector<fiber_t> ids(static_cast<std::size_t>(n));
  if (g_use_mutex) fiber_mutex_lock(&g_mu);  // from the OS thread: the fibers block on it
  const long before = rss_bytes();
  for (long i = 0; i < n; ++i)
    if (int e = fiber_create(&ids[static_cast<std::size_t>(i)], nullptr, waiter, nullptr))
      die("fiber_create", e);
  settle(n);
  const long after = rss_bytes();
  if (g_use_mutex) {
    fiber_mutex_unlock(&g_mu);
  } else {
    fiber_mutex_lock(&g_mu);
    g_go = true;
    fiber_cond_broadcast(&g_cv);
    fiber_mutex_unlock(&g_mu);
  }
  for (long i = 0; i < n; ++i)
    if (int e = fiber_join(ids[static_cast<std::size_t>(i)], nullptr)) die("fiber_join", e);
  const long drained = rss_bytes();
  if (int e = fiber_shutdown()) die("fiber_shutdown", e);
  const long down = rss_bytes();
  std::printf("{\"runtime\": \"fiber\", \"klts\": %u, \"wait\": \"%s\", \"fibers\": %ld, "
              "\"rss_before\": %ld, \"rss_parked\": %ld, \"bytes_per_fiber\": %.0f, "
              "\"rss_after_join\": %ld, \"rss_after_shutdown\": %ld}\n",
              klts, g_use_mutex ? "mutex" : "cond", n, before, after,
              static_cast<double>(after - before) / static_cast<double>(n), drained, down);
}

#ifdef BENCH_HAVE_BOOST
void run_boost(long n) {
  boost::fibers::mutex mu;
  boost::fibers::condition_variable cv;
  bool go = false;
  long parked = 0;
  long before = 0, after = 0;
  boost::fibers::fixedsize_stack salloc(16 * 1024);
  std::vector<boost::fibers::fiber> fs;
  fs.reserve(static_cast<std::size_t>(n));
  before = rss_bytes();
  for (long i = 0; i < n; ++i)
    fs.emplace_back(std::allocator_arg, salloc, [&] {
      std::unique_lock<boost::fibers::mutex> lk(mu);
      ++parked;
      cv.wait(lk, [&] { return go; });
    });
  while (parked < n) boost::this_fiber::yield();
  after = rss_bytes();
  {
    std::unique_lock<boost::fibers::mutex> lk(mu);
    go = true;
  }
  cv.notify_all();
  for (auto& f : fs) f.join();
  std::printf("{\"runtime\": \"boost\", \"klts\": 1, \"wait\": \"cond\", \"fibers\": %ld, "
              "\"rss_before\": %ld, \"rss_parked\": %ld, \"bytes_per_fiber\": %.0f}\n",
              n, before, after, static_cast<double>(after - before) / static_cast<double>(n));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  long n = 100000;
  unsigned klts = 1;
  bool boost = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--fibers" && i + 1 < argc) n = std::atol(argv[++i]);
    else if (a == "--klts" && i + 1 < argc) klts = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--wait" && i + 1 < argc) g_use_mutex = std::string(argv[++i]) == "mutex";
    else if (a == "--boost") boost = true;
    else {
      std::fprintf(stderr, "usage: parked_rss [--fibers N] [--klts K] [--wait cond|mutex] [--boost]\n");
      return 2;
    }
  }
  if (n <= 0) return 2;
  if (boost) {
#ifdef BENCH_HAVE_BOOST
    run_boost(n);
    return 0;
#else
    std::fprintf(stderr, "parked_rss: built without Boost.Fiber\n");
    return 1;
#endif
  }
  run_fiber(n, klts);
  return 0;
}
