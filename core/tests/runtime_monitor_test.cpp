// core/tests/runtime_monitor_test.cpp - the runtime monitor (core/src/monitor.hpp):
// fibers stranded behind a KLT that takes no scheduling step are taken by
// the other KLTs (issue 14 item 5, policy I-R5), the watchdog reports a
// stalled KLT once per incident and never a healthy one (issue 17 item 4),
// and the monitor does not keep an idle program busy (I-MON3).
#include <dirent.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <fiber/fiber.hpp>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

// ---------------------------------------------------------------- helpers

// Sends fd 2 to a memory file for the scope; text() reads what was written.
class stderr_capture {
 public:
  stderr_capture() {
    std::fflush(stderr);
    fd_ = memfd_create("fiber-test-stderr", 0);
    saved_ = dup(STDERR_FILENO);
    if (fd_ >= 0 && saved_ >= 0) dup2(fd_, STDERR_FILENO);
  }
  ~stderr_capture() {
    restore();
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0 && saved_ >= 0; }
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  std::string text() const {
    std::string s;
    char buf[4096];
    off_t off = 0;
    for (ssize_t n; (n = pread(fd_, buf, sizeof buf, off)) > 0; off += n)
      s.append(buf, static_cast<std::size_t>(n));
    return s;
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
};

constexpr const char* kWatchdogTag = "fiber: watchdog:";

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// The blocking calls these tests make in fibers go to the kernel directly:
// libc's read and nanosleep are interposed and would park the fiber
// (interpose_io.cpp); these tests need a KLT that is really blocked, as by a
// call the runtime cannot see (one made inside libc, a regular file).
ssize_t klt_blocking_read(int fd, void* buf, std::size_t n) { return syscall(SYS_read, fd, buf, n); }

void sleep_ms(unsigned ms) {
  struct timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
  while (syscall(SYS_nanosleep, &ts, &ts) != 0) {
  }
}

// The monitor thread's voluntary context switches (-1: no such thread).
long monitor_wakeups() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  long result = -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name != "fiber-monitor") continue;
    std::ifstream st(base + "/status");
    for (std::string line; std::getline(st, line);)
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) result = std::stol(line.substr(24));
  }
  closedir(d);
  return result;
}

fiber_config_t watchdog_config(unsigned klts, unsigned slice_us, unsigned watchdog_ms) {
  fiber_config_t c = config(klts, slice_us);
  c.watchdog_ms = watchdog_ms;
  return c;
}

// ------------------------------------------------- stranded fibers (14.5)

enum class block_kind { pipe_read, nanosleep, cpu_spin };
constexpr unsigned kWorkers = 8;

struct stranded {
  block_kind kind = block_kind::pipe_read;
  int fds[2] = {-1, -1};
  std::atomic<bool> stop{false};
  std::atomic<bool> blocking{false};
  std::atomic<bool> unblocked{false};
  std::array<std::atomic<std::uint64_t>, kWorkers> count{};
  std::array<fiber_t, kWorkers> workers{};
  std::array<std::atomic<unsigned>, kWorkers> klt_seen{};  // bit k: ran on KLT k
};

struct worker_arg {
  stranded* s;
  unsigned i;
};
std::array<worker_arg, kWorkers> g_worker_args;

void* yielding_worker(void* p) {
  auto* a = static_cast<worker_arg*>(p);
  while (!a->s->stop.load(std::memory_order_relaxed)) {
    a->s->count[a->i].fetch_add(1, std::memory_order_relaxed);
    fiber_yield();
  }
  return nullptr;
}

// Creates the workers on its own KLT's queue (another KLT steals half of
// them), then blocks that KLT without a scheduling step.
void* blocker(void* p) {
  auto* s = static_cast<stranded*>(p);
  for (unsigned i = 0; i < kWorkers; ++i) {
    g_worker_args[i] = {s, i};
    fiber_create(&s->workers[i], nullptr, yielding_worker, &g_worker_args[i]);
  }
  s->blocking.store(true, std::memory_order_release);
  switch (s->kind) {
    case block_kind::pipe_read: {
      char c;
      ssize_t r = klt_blocking_read(s->fds[0], &c, 1);  // blocks the KLT until the test writes
      (void)r;
      break;
    }
    case block_kind::nanosleep: sleep_ms(1200); break;
    case block_kind::cpu_spin: spin_for(1200 * kMs); break;  // never yields (cooperative mode)
  }
  s->unblocked.store(true, std::memory_order_release);
  return nullptr;
}

class MonitorStranded : public runtime_test, public ::testing::WithParamInterface<block_kind> {};

// Issue 14 item 5: 8 yielding workers on 2 KLTs; one fiber blocks its KLT
// for ~1 s.  Before the monitor, the workers queued behind it made no
// progress for the whole block (the other KLT is busy, so it never steals).
// Cooperative mode (timeslice 0): no worker is ever pinned (I3 would keep a
// preempted one on the blocked KLT: the stated limit).
TEST_P(MonitorStranded, EveryWorkerProgressesWhileOneKltIsBlocked) {
  stranded s;
  s.kind = GetParam();
  ASSERT_EQ(pipe(s.fds), 0);
  start(2, 0);
  fiber_t b = spawn(blocker, &s);
  ASSERT_NE(b, 0u);
  while (!s.blocking.load(std::memory_order_acquire)) sleep_ms(1);
  sleep_ms(150);  // the hand-off bound (20 ms) and a period, with room for a loaded machine
  std::array<std::uint64_t, kWorkers> before{};
  for (unsigned i = 0; i < kWorkers; ++i) before[i] = s.count[i].load(std::memory_order_relaxed);
  sleep_ms(300);
  unsigned stuck = 0;
  std::string which;
  for (unsigned i = 0; i < kWorkers; ++i) {
    if (s.count[i].load(std::memory_order_relaxed) == before[i]) {
      ++stuck;
      which += " w" + std::to_string(i);
    }
  }
  bool still_blocked = !s.unblocked.load(std::memory_order_acquire);
  if (s.kind == block_kind::pipe_read) {
    ASSERT_EQ(write(s.fds[1], "x", 1), 1);
  }
  s.stop.store(true, std::memory_order_relaxed);
  for (fiber_t w : s.workers) join(w);
  join(b);
  close(s.fds[0]);
  close(s.fds[1]);
  ASSERT_TRUE(still_blocked) << "the blocker returned before the measurement ended (machine too slow?)";
  EXPECT_EQ(stuck, 0u) << "workers that made no progress in 300 ms while a KLT was blocked:" << which;
}

INSTANTIATE_TEST_SUITE_P(Blockers, MonitorStranded,
                         ::testing::Values(block_kind::pipe_read, block_kind::nanosleep, block_kind::cpu_spin),
                         [](const ::testing::TestParamInfo<block_kind>& i) {
                           switch (i.param) {
                             case block_kind::pipe_read: return std::string("PipeRead");
                             case block_kind::nanosleep: return std::string("Nanosleep");
                             case block_kind::cpu_spin: return std::string("CooperativeSpin");
                           }
                           return std::string("?");
                         });

// ------------------------------------------------------- watchdog (17.4)

struct stuck_fiber {
  int fds[2] = {-1, -1};
  bool disable_preemption = false;
  unsigned spin_ms = 0;  // 0: block in read() on the pipe instead
  std::atomic<std::uint64_t> blocked_at{0};
  fiber_t self = 0;
};

void* stuck_body(void* p) {
  auto* s = static_cast<stuck_fiber*>(p);
  s->self = fiber_self();
  s->blocked_at.store(now_ns(), std::memory_order_release);
  if (s->spin_ms != 0) {
    if (s->disable_preemption) fiber_preempt_disable();
    spin_for(s->spin_ms * kMs);
    if (s->disable_preemption) fiber_preempt_enable();
  } else {
    char c;
    ssize_t r = klt_blocking_read(s->fds[0], &c, 1);
    (void)r;
  }
  return nullptr;
}

class MonitorWatchdog : public runtime_test {
 protected:
  void TearDown() override {
    unsetenv("FIBER_WATCHDOG");
    runtime_test::TearDown();
  }
  // Runs a stuck fiber for hold_ms under `cfg`; returns the captured stderr
  // and (report_ms) how long after the fiber got stuck the first report came.
  std::string run_stuck(const fiber_config_t& cfg, stuck_fiber& s, unsigned hold_ms, long* report_ms) {
    stderr_capture cap;
    EXPECT_TRUE(cap.ok());
    EXPECT_EQ(pipe(s.fds), 0);
    EXPECT_EQ(fiber_init(&cfg), 0);
    fiber_t f = spawn(stuck_body, &s);
    EXPECT_NE(f, 0u);
    while (s.blocked_at.load(std::memory_order_acquire) == 0) sleep_ms(1);
    std::uint64_t t0 = s.blocked_at.load(std::memory_order_acquire);
    *report_ms = -1;
    while (now_ns() - t0 < hold_ms * kMs) {
      if (*report_ms < 0 && cap.text().find(kWatchdogTag) != std::string::npos)
        *report_ms = static_cast<long>((now_ns() - t0) / kMs);
      sleep_ms(2);
    }
    if (s.spin_ms == 0) {
      EXPECT_EQ(write(s.fds[1], "x", 1), 1);
    }
    join(f);
    EXPECT_EQ(fiber_shutdown(), 0);
    close(s.fds[0]);
    close(s.fds[1]);
    cap.restore();
    return cap.text();
  }
};

// A fiber blocked in read() is reported within the bound (never before it),
// once, naming KLT, fiber and the reason the monitor could tell.
TEST_F(MonitorWatchdog, BlockedFiberReportedOnceWithinTheBound) {
  constexpr unsigned kBound = 200;
  stuck_fiber s;
  long report_ms = -1;
  std::string err = run_stuck(watchdog_config(1, 4000, kBound), s, 4 * kBound, &report_ms);
  ASSERT_EQ(count_of(err, kWatchdogTag), 1) << err;
  std::printf("report after %ld ms: %s", report_ms, err.c_str());
  EXPECT_GE(report_ms, static_cast<long>(kBound)) << err;
  // Period kBound/4: a report by 1.5 bounds; plus room for a loaded machine.
  EXPECT_LE(report_ms, static_cast<long>(kBound * 3 / 2 + 250)) << err;
  EXPECT_NE(err.find("KLT 0 took no scheduling step"), std::string::npos) << err;
  EXPECT_NE(err.find("running fiber " + std::to_string(s.self)), std::string::npos) << err;
  EXPECT_NE(err.find("blocked in the kernel"), std::string::npos) << err;
  // The report comes with the dump (issue 17): the stuck fiber's line in it.
  EXPECT_NE(err.find("fiber dump: pid "), std::string::npos) << err;
  EXPECT_NE(err.find("fiber " + std::to_string(s.self) + " "), std::string::npos) << err;
}

// A runaway preemption-disabled section on one of two KLTs: reported with
// that reason (ticks refused), once.
TEST_F(MonitorWatchdog, PreemptDisabledSpinReported) {
  stuck_fiber s;
  s.spin_ms = 700;
  s.disable_preemption = true;
  long report_ms = -1;
  std::string err = run_stuck(watchdog_config(2, 4000, 200), s, 700, &report_ms);
  ASSERT_EQ(count_of(err, kWatchdogTag), 1) << err;
  std::printf("report after %ld ms: %s", report_ms, err.c_str());
  EXPECT_GE(report_ms, 200) << err;
  EXPECT_NE(err.find("running fiber " + std::to_string(s.self)), std::string::npos) << err;
  if (kPreemptive) {
    EXPECT_NE(err.find("preemption-disabled section"), std::string::npos) << err;
  }
}

// Cooperative mode (timeslice 0): a fiber that spins without yielding is
// reported once with the reason "cooperative mode, no ticks".  On a machine
// too loaded to give the spin most of a CPU, explain()'s CPU-time reasons
// come first ("it ran only", or "blocked in the kernel" under 10 %); then the
// test says so and checks the report only.  Its control is
// HealthyBusyProgramIsNeverReported (spinning fibers under ticks).
TEST_F(MonitorWatchdog, SpinInCooperativeModeReportedAsNeverYielding) {
  stuck_fiber s;
  s.spin_ms = 700;
  long report_ms = -1;
  std::string err = run_stuck(watchdog_config(1, 0, 200), s, 700, &report_ms);
  ASSERT_EQ(count_of(err, kWatchdogTag), 1) << err;
  std::printf("report after %ld ms: %s", report_ms, err.substr(0, err.find('\n') + 1).c_str());
  EXPECT_GE(report_ms, 200) << err;
  EXPECT_NE(err.find("running fiber " + std::to_string(s.self)), std::string::npos) << err;
  if (err.find("it ran only") != std::string::npos || err.find("blocked in the kernel") != std::string::npos) {
    std::printf("machine overloaded: a CPU-time reason came first\n");
    return;
  }
  EXPECT_NE(err.find("it is running (cooperative mode, no ticks): the fiber never yields"), std::string::npos)
      << err;
}

// FIBER_WATCHDOG overrides the config: on (config off), off (config on), and
// a bad value is ignored with a warning (the config applies).
TEST_F(MonitorWatchdog, EnvironmentOverridesTheConfig) {
  long report_ms = -1;
  {
    setenv("FIBER_WATCHDOG", "0.15", 1);
    stuck_fiber s;
    std::string err = run_stuck(watchdog_config(1, 4000, 0), s, 450, &report_ms);
    EXPECT_EQ(count_of(err, kWatchdogTag), 1) << "FIBER_WATCHDOG=0.15 did not turn it on: " << err;
    EXPECT_NE(err.find("(bound 150 ms)"), std::string::npos) << err;
  }
  {
    setenv("FIBER_WATCHDOG", "0", 1);
    stuck_fiber s;
    std::string err = run_stuck(watchdog_config(1, 4000, 100), s, 350, &report_ms);
    EXPECT_EQ(count_of(err, kWatchdogTag), 0) << "FIBER_WATCHDOG=0 did not turn it off: " << err;
  }
  {
    setenv("FIBER_WATCHDOG", "soon", 1);
    stuck_fiber s;
    std::string err = run_stuck(watchdog_config(1, 4000, 100), s, 350, &report_ms);
    EXPECT_NE(err.find("FIBER_WATCHDOG=soon ignored"), std::string::npos) << err;
    EXPECT_EQ(count_of(err, kWatchdogTag), 1) << "the config's bound should apply: " << err;
  }
}

// No false positives: CPU-bound fibers being preempted, fibers sleeping and
// yielding, KLTs going idle and waking, over ~1 s with a 150 ms bound (a
// CPU-bound KLT steps once per 4 ms of its CPU time: 150 ms leaves room for
// a KLT that gets a tenth of a core on a loaded machine).
struct healthy {
  std::atomic<bool> stop{false};
};

void* cpu_bound(void* p) {
  auto* h = static_cast<healthy*>(p);
  while (!h->stop.load(std::memory_order_relaxed)) spin(2000);  // preempted by ticks
  return nullptr;
}
void* sleeper(void* p) {
  auto* h = static_cast<healthy*>(p);
  while (!h->stop.load(std::memory_order_relaxed)) fiber_sleep_ns(3 * kMs);
  return nullptr;
}
void* yielder(void* p) {
  auto* h = static_cast<healthy*>(p);
  while (!h->stop.load(std::memory_order_relaxed)) fiber_yield();
  return nullptr;
}

// A fiber spinning in code outside the preemption allow-list (a dlopen'ed
// module, as a library would be): every tick is deferred, so the KLT takes
// no step, and the report says why.  Negative control: the same spin with
// the module on the allow-list is preempted, so nothing is reported.
using module_spin_fn = int (*)(const int*, unsigned long long);
struct module_spinner {
  module_spin_fn spin = nullptr;
  int stop = 0;
  std::atomic<bool> started{false};
  fiber_t self = 0;
};
void* module_spin_body(void* p) {
  auto* m = static_cast<module_spinner*>(p);
  m->self = fiber_self();
  m->started.store(true, std::memory_order_release);
  m->spin(&m->stop, ~0ull >> 2);  // until stop
  return nullptr;
}

// A copy of the spin module under a neutral name: its own file name starts
// with "libfiber", which the allow-list refuses (EPERM: libfiber itself).
std::string spin_module_copy() {
  char tmpl[] = "/tmp/fiber-wd-XXXXXX.so";
  int fd = mkstemps(tmpl, 3);
  if (fd < 0) return {};
  std::ifstream in(FIBER_TEST_SPIN_MODULE, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bool ok = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  close(fd);
  return ok ? std::string(tmpl) : std::string();
}

TEST_F(MonitorWatchdog, SpinOutsideTheAllowListReportedAsDeferredTicks) {
  FIBER_SKIP_WITHOUT_PREEMPTION();  // cooperative: no ticks to defer
  const std::string path = spin_module_copy();
  ASSERT_FALSE(path.empty());
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed (allow-list ranges)
  unlink(path.c_str());
  ASSERT_NE(h, nullptr) << dlerror();
  auto spin = reinterpret_cast<module_spin_fn>(dlsym(h, "fiber_test_module_spin"));
  ASSERT_NE(spin, nullptr);
  for (bool allowed : {false, true}) {
    stderr_capture cap;
    ASSERT_TRUE(cap.ok());
    fiber_config_t c = watchdog_config(1, 4000, 150);
    ASSERT_EQ(fiber_init(&c), 0);
    if (allowed) {
      ASSERT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(spin)), 0);
    }
    module_spinner m;
    m.spin = spin;
    fiber_t f = spawn(module_spin_body, &m);
    while (!m.started.load(std::memory_order_acquire)) sleep_ms(1);
    sleep_ms(500);
    __atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);  // relaxed: a flag, no data
    join(f);
    ASSERT_EQ(fiber_shutdown(), 0);
    cap.restore();
    std::string err = cap.text();
    // On a loaded machine (the 2-core CI VM shared by parallel tests) the
    // spinning KLT may get too little CPU: explain() then gives a CPU-time
    // reason first ("ran only", "blocked in the kernel"), and a preemptible
    // spin may even be reported.  Those runs are printed, not failed.
    const bool starved = err.find("it ran only") != std::string::npos ||
                         err.find("blocked in the kernel") != std::string::npos;
    if (allowed) {
      EXPECT_EQ(err.find("ticks are deferred"), std::string::npos) << "preemptible spin deferred:\n" << err;
      if (!starved) {
        EXPECT_EQ(count_of(err, kWatchdogTag), 0) << "preemptible spin reported:\n" << err;
      }
      continue;
    }
    ASSERT_EQ(count_of(err, kWatchdogTag), 1) << err;
    std::printf("%s", err.substr(0, err.find('\n') + 1).c_str());
    EXPECT_NE(err.find("running fiber " + std::to_string(m.self) + ":"), std::string::npos) << err;
    // The dump's KLT line counts the ticks and the refused ones.
    const std::size_t at = err.find("klt 0 running fiber");
    ASSERT_NE(at, std::string::npos) << err;
    const std::size_t t = err.find(" ticks ", at), d = err.find(" deferred ", at);
    ASSERT_TRUE(t != std::string::npos && d != std::string::npos) << err;
    const long ticks = std::atol(err.c_str() + t + 7), deferred = std::atol(err.c_str() + d + 10);
    std::printf("%s\n", err.substr(at, err.find('\n', at) - at).c_str());
    // (At most one tick may land before the fiber enters the module.)
    EXPECT_GE(deferred + 1, ticks) << "ticks were taken inside the module:\n" << err;
    if (starved) {
      std::printf("machine overloaded: a CPU-time reason came first\n");
      continue;
    }
    EXPECT_GT(deferred, 0) << "no tick deferred:\n" << err;
    EXPECT_NE(err.find("ticks are deferred (code outside the preemption allow-list"), std::string::npos) << err;
  }
}

// The reason "it runs no fiber": a KLT stuck in its scheduler context, between
// two picks.  The runtime never waits there except in its idle sleep (flagged idle,
// skipped by design); foreign code can (a program's signal handler blocking
// when it lands there, a debugger), but not reliably on demand
// (papers/design.md section 12), so the test knob FIBER_KNOB_SCHED_STALL makes
// the KLT loop sleep before its next pick while it is on.  Two incidents, each
// reported once with that reason; the same program without the stall (the
// control) is never reported.
constexpr int kKnobSchedStall = 14;  // FIBER_KNOB_SCHED_STALL (testing.h)
constexpr const char* kNoFiberReason =
    "running fiber 0: it runs no fiber (stuck in the runtime's scheduler)";

struct stall_probe {
  std::atomic<bool> ran{false};
};

void* mark_ran(void* p) {
  static_cast<stall_probe*>(p)->ran.store(true, std::memory_order_release);
  return nullptr;
}

class MonitorSchedStall : public MonitorWatchdog {
 protected:
  void TearDown() override {
    fiber_test_set_knob(kKnobSchedStall, 0);
    MonitorWatchdog::TearDown();
  }
  // Two incidents of hold_ms each (the KLT stalls before picking a fiber
  // created meanwhile) when `stall`, else the same steps without it.
  // Returns stderr; *ran_during: the fibers ran while the KLT was held.
  std::string two_incidents(bool stall, unsigned bound_ms, unsigned hold_ms, bool* ran_during) {
    stderr_capture cap;
    EXPECT_TRUE(cap.ok());
    // The held KLT sleeps in the kernel: a spare KLT (I-MON4) would run the
    // fiber meanwhile; this test is about the report of the held KLT.
    fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);
    fiber_config_t c = watchdog_config(1, 4000, bound_ms);
    EXPECT_EQ(fiber_init(&c), 0);
    *ran_during = false;
    for (int incident = 0; incident < 2; ++incident) {
      sleep_ms(50);  // the KLT goes idle; the incident starts when the create wakes it
      fiber_test_set_knob(kKnobSchedStall, stall ? 1 : 0);
      stall_probe p;
      fiber_t f = spawn(mark_ran, &p);
      sleep_ms(hold_ms);
      if (p.ran.load(std::memory_order_acquire)) *ran_during = true;
      fiber_test_set_knob(kKnobSchedStall, 0);
      join(f);
      EXPECT_TRUE(p.ran.load(std::memory_order_acquire));
    }
    EXPECT_EQ(fiber_shutdown(), 0);
    cap.restore();
    return cap.text();
  }
};

TEST_F(MonitorSchedStall, KltStuckInItsSchedulerIsReportedOncePerIncident) {
  constexpr unsigned kBound = 150;
  bool ran_during = true;
  std::string err = two_incidents(true, kBound, 5 * kBound, &ran_during);
  std::printf("%s", err.substr(0, err.find('\n') + 1).c_str());
  EXPECT_FALSE(ran_during) << "the knob did not hold the KLT: the fiber ran";
  EXPECT_EQ(count_of(err, kWatchdogTag), 2) << "want one report per incident:\n" << err;
  EXPECT_EQ(count_of(err, kNoFiberReason), 2) << err;
  EXPECT_EQ(count_of(err, "KLT 0 took no scheduling step"), 2) << err;
  // The dump that comes with it shows the KLT in its scheduler.
  EXPECT_NE(err.find("klt 0 scheduling"), std::string::npos) << err;
}

// The control: the same program, the KLT not held, is never reported.
TEST_F(MonitorSchedStall, SameProgramWithoutTheStallIsNotReported) {
  bool ran_during = false;
  std::string err = two_incidents(false, 150, 750, &ran_during);
  EXPECT_TRUE(ran_during) << "without the stall the fibers run at once";
  EXPECT_EQ(count_of(err, kWatchdogTag), 0) << err;
}

TEST_F(MonitorWatchdog, HealthyBusyProgramIsNeverReported) {
  FIBER_SKIP_WITHOUT_PREEMPTION();  // CPU-bound fibers need ticks to take steps
  stderr_capture cap;
  ASSERT_TRUE(cap.ok());
  fiber_config_t c = watchdog_config(2, 4000, 150);
  ASSERT_EQ(fiber_init(&c), 0);
  for (int round = 0; round < 2; ++round) {
    healthy h;
    std::vector<fiber_t> fs;
    for (int i = 0; i < 3; ++i) fs.push_back(spawn(cpu_bound, &h));
    for (int i = 0; i < 3; ++i) fs.push_back(spawn(sleeper, &h));
    fs.push_back(spawn(yielder, &h));
    sleep_ms(350);
    h.stop.store(true, std::memory_order_relaxed);
    for (fiber_t f : fs) join(f);
    sleep_ms(150);  // every KLT idle
  }
  ASSERT_EQ(fiber_shutdown(), 0);
  cap.restore();
  std::string err = cap.text();
  EXPECT_EQ(count_of(err, kWatchdogTag), 0) << err;
}

// ----------------------------------------------------- cost (I-MON2, I-MON3)

TEST_F(runtime_test, MonitorOnlyWhenThereIsSomethingToWatch) {
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // read at fiber_init
  start(1, 4000);
  EXPECT_EQ(monitor_wakeups(), -1) << "one KLT, no spare KLTs and no watchdog: no monitor thread";
  ASSERT_EQ(fiber_shutdown(), 0);
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 0);
  start(1, 4000);
  EXPECT_GE(monitor_wakeups(), 0) << "one KLT: the monitor runs (it turns spare KLTs on)";
  ASSERT_EQ(fiber_shutdown(), 0);
  start(2, 4000);
  EXPECT_GE(monitor_wakeups(), 0) << "two KLTs: the monitor runs";
  ASSERT_EQ(fiber_shutdown(), 0);
  EXPECT_EQ(monitor_wakeups(), -1) << "fiber_shutdown joins the monitor";
}

// An idle program: the monitor sleeps until a KLT wakes (no periodic wake-ups).
TEST_F(runtime_test, IdleProgramDoesNotWakeTheMonitor) {
  start(2, 4000);
  sleep_ms(100);  // the KLTs reach their idle sleep; the monitor sees it and sleeps
  long before = monitor_wakeups();
  sleep_ms(500);  // 50 periods
  long after = monitor_wakeups();
  ASSERT_GE(before, 0);
  std::printf("monitor wake-ups in 500 ms of idleness: %ld\n", after - before);
  EXPECT_LE(after - before, 2) << "the monitor woke " << after - before << " times in 500 ms of idleness";
  // And it still works after the deep sleep: a KLT that wakes wakes it.
  fiber_t f = spawn([](void*) -> void* { fiber_sleep_ns(20 * kMs); return nullptr; });
  join(f);
  EXPECT_GT(monitor_wakeups(), after) << "a KLT leaving idle did not wake the monitor";
}

}  // namespace

// The C++ API's runtime::options::watchdog reaches fiber_config_t: a fiber
// blocked in read() under fiber::runtime with a 150 ms watchdog is reported;
// the same program with the option left at 0 is not (its negative control).
TEST_F(MonitorWatchdog, CxxRuntimeOptionTurnsTheWatchdogOn) {
  for (unsigned ms : {150u, 0u}) {
    stderr_capture cap;
    ASSERT_TRUE(cap.ok());
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    {
      fiber::runtime::options o;
      o.klts = 1;
      o.watchdog = std::chrono::milliseconds(ms);
      fiber::runtime rt(o);
      fiber::thread t([&] {
        char c;
        ssize_t r = klt_blocking_read(fds[0], &c, 1);
        (void)r;
      });
      sleep_ms(450);
      ASSERT_EQ(write(fds[1], "x", 1), 1);
      t.join();
    }
    close(fds[0]);
    close(fds[1]);
    cap.restore();
    EXPECT_EQ(count_of(cap.text(), kWatchdogTag), ms ? 1 : 0) << "watchdog " << ms << " ms: " << cap.text();
  }
}
