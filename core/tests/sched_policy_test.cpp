// core/tests/sched_policy_test.cpp - the multicore policy's option
// (policy.hpp I-R3): fiber_config_t::migrate_preempted and FIBER_MIGRATE.
// FIBER_MIGRATE_NEVER: a CPU-bound fiber never changes KLT; ALWAYS: preempted
// fibers go through the global queue and do (I-R2); SCAN (the default) moves
// them unless they hold a TLS address - the spinner here holds its KLT's
// pthread_self(), the thread control block's address, so SCAN keeps it (the
// scan itself: tls_scan_test.cpp).  The policy's logic itself is checked by
// the simulator (proptests/prop_policy.cpp).
#include <pthread.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

// A fiber that spins without any runtime call (only preemption moves it) and
// notes whether it ever ran on a second KLT (pthread_self is the KLT's).
struct spinner {
  std::atomic<bool>* stop;
  bool moved = false;
};

// pthread_self is declared const: called directly, the compiler reads it
// once for the whole loop (the very TLS caching that I3 protects).  Through a
// volatile pointer it is read afresh each time.
pthread_t (*volatile g_self)() = pthread_self;

void* spin_watch(void* p) {
  auto* s = static_cast<spinner*>(p);
  const pthread_t first = g_self();
  // relaxed: a stop flag; the join orders the result.
  while (!s->stop->load(std::memory_order_relaxed)) {
    if (!pthread_equal(g_self(), first)) s->moved = true;
  }
  return nullptr;
}

// 3 spinners on 2 KLTs for `ms`: does any of them change KLT?
bool any_spinner_moved(unsigned migrate, int ms) {
  fiber_config_t c = config(2, 1000);
  c.migrate_preempted = migrate;
  EXPECT_EQ(fiber_init(&c), 0);
  std::atomic<bool> stop{false};
  spinner s[3] = {{&stop}, {&stop}, {&stop}};
  fiber_t ids[3];
  for (int i = 0; i < 3; ++i) ids[i] = spawn(spin_watch, &s[i]);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  stop.store(true, std::memory_order_relaxed);  // relaxed: see spin_watch
  bool moved = false;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(ids[i], 0u);
    join(ids[i]);
    moved |= s[i].moved;
  }
  EXPECT_EQ(fiber_shutdown(), 0);
  return moved;
}

class SchedPolicy : public runtime_test {
 protected:
  void TearDown() override {
    unsetenv("FIBER_MIGRATE");
    runtime_test::TearDown();
  }
};

TEST_F(SchedPolicy, MigrateOptionValidated) {
  fiber_config_t c;
  fiber_config_init(&c);
  EXPECT_EQ(c.migrate_preempted, FIBER_MIGRATE_SCAN);
  c.migrate_preempted = FIBER_MIGRATE_NEVER + 1;
  EXPECT_EQ(fiber_init(&c), EINVAL);
}

// I3: NEVER never moves a preempted fiber (the control of the next test).
TEST_F(SchedPolicy, PreemptedFibersStayWithNever) { EXPECT_FALSE(any_spinner_moved(FIBER_MIGRATE_NEVER, 300)); }

// With ALWAYS, the 3 spinners rotate through the global queue: with 2 KLTs
// at least one runs on both within a few quanta (1 ms each here).
TEST_F(SchedPolicy, PreemptedFibersMigrateWithAlways) { EXPECT_TRUE(any_spinner_moved(FIBER_MIGRATE_ALWAYS, 300)); }

// SCAN sees the held pthread_self() (the TCB is at the top of the KLT's TLS).
TEST_F(SchedPolicy, ScanKeepsAFiberHoldingItsThreadHandle) {
  EXPECT_FALSE(any_spinner_moved(FIBER_MIGRATE_SCAN, 300));
}

TEST_F(SchedPolicy, EnvironmentOverridesOption) {
  setenv("FIBER_MIGRATE", "1", 1);
  EXPECT_TRUE(any_spinner_moved(FIBER_MIGRATE_NEVER, 300));
  setenv("FIBER_MIGRATE", "always", 1);
  EXPECT_TRUE(any_spinner_moved(FIBER_MIGRATE_SCAN, 300));
  setenv("FIBER_MIGRATE", "0", 1);
  EXPECT_FALSE(any_spinner_moved(FIBER_MIGRATE_ALWAYS, 300));
  setenv("FIBER_MIGRATE", "never", 1);
  EXPECT_FALSE(any_spinner_moved(FIBER_MIGRATE_ALWAYS, 300));
  setenv("FIBER_MIGRATE", "scan", 1);
  EXPECT_FALSE(any_spinner_moved(FIBER_MIGRATE_ALWAYS, 300));
  setenv("FIBER_MIGRATE", "yes", 1);  // ignored with a line on stderr: the config's ALWAYS stands
  EXPECT_TRUE(any_spinner_moved(FIBER_MIGRATE_ALWAYS, 300));
}

}  // namespace
