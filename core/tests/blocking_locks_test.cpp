// core/tests/blocking_locks_test.cpp - libc's blocking locks inside fibers
// (issue 12 item 1; core/src/interpose_locks.cpp, parking_lot.hpp, I9):
//   - the scenario: six fibers sharing a std::mutex under preemption
//     complete on 1, 2 and 4 KLTs;
//   - std::shared_mutex, std::condition_variable producer/consumer,
//     pthread_cond signalled by an OS thread, sem_post from an OS thread;
//   - OS threads and fibers contending the same std::mutex;
//   - a holder is not preempted (I9), timeouts and bad input.
// Each family also runs as a negative control with FIBER_KNOB_NO_LOCK_INTERPOSE
// (fibers call libc directly, the old behaviour) in a forked child with a
// timeout, and must hang there.  Built twice: against the static library
// (fiber_unit_tests) and the shared one (fiber_blocking_locks_shared_tests).
// Workloads run in forked children so that a regression fails by timeout
// instead of hanging ctest.  Never use gtest assertions inside a fiber.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "test_util.hpp"

namespace {

using namespace fiber_test;

constexpr unsigned kPositiveTimeoutS = 30;  // generous: CI shares 2 cores
constexpr unsigned kControlTimeoutS = 2;    // the control must hang, so this is its run time

void set_lock_knobs(bool no_interpose, bool no_hold) {
  fiber_test_set_knob(FIBER_KNOB_NO_LOCK_INTERPOSE, no_interpose ? 1 : 0);
  fiber_test_set_knob(FIBER_KNOB_NO_LOCK_HOLD, no_hold ? 1 : 0);
  // The controls show the interposer alone: without it a KLT blocked in the
  // kernel would get a spare KLT (monitor.hpp I-MON4), which rescues it slowly.
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, no_interpose ? 1 : 0);
}

// Starts the runtime in a child, runs `body` (returns 0 when it behaved).
int with_runtime(unsigned klts, unsigned slice_us, bool no_interpose, int (*body)()) {
  set_lock_knobs(no_interpose, false);
  fiber_config_t c = config(klts, slice_us);
  if (fiber_init(&c) != 0) return 90;
  int r = body();
  if (fiber_shutdown() != 0) return 91;
  return r;
}

child_result run(unsigned klts, bool no_interpose, int (*body)(), unsigned slice_us = 1000) {
  return run_child([=] { return with_runtime(klts, slice_us, no_interpose, body); },
                   no_interpose ? kControlTimeoutS : kPositiveTimeoutS);
}

int spawn_join(unsigned n, void* (*fn)(void*)) {
  std::vector<fiber_t> ids;
  for (unsigned i = 0; i < n; ++i) {
    fiber_t f = spawn(fn, reinterpret_cast<void*>(static_cast<std::uintptr_t>(i)));
    if (!f) return 80;
    ids.push_back(f);
  }
  for (fiber_t f : ids)
    if (fiber_join(f, nullptr) != 0) return 81;
  return 0;
}

// ---- the scenario: six fibers, one std::mutex -------------------------

constexpr unsigned kFibers = 6;
constexpr unsigned kIters = 3000;
std::mutex g_mu;
std::uint64_t g_counter = 0;  // guarded by g_mu

void* mutex_worker(void*) {
  for (unsigned i = 0; i < kIters; ++i) {
    std::lock_guard<std::mutex> g(g_mu);
    std::uint64_t v = g_counter;
    spin_for(20000);  // 20 us inside: ticks land here
    g_counter = v + 1;
  }
  return nullptr;
}

int six_fibers_std_mutex() {
  g_counter = 0;
  if (int r = spawn_join(kFibers, mutex_worker)) return r;
  return g_counter == std::uint64_t{kFibers} * kIters ? 0 : 1;
}

class blocking_locks : public ::testing::TestWithParam<unsigned> {};

TEST_P(blocking_locks, SixFibersStdMutexUnderPreemption) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EQ(run(GetParam(), false, six_fibers_std_mutex), child_result::ok);
}

TEST_P(blocking_locks, SixFibersStdMutexHangWithoutInterposer) {  // negative control
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EQ(run(GetParam(), true, six_fibers_std_mutex), child_result::hung);
}

INSTANTIATE_TEST_SUITE_P(klts, blocking_locks, ::testing::Values(1u, 2u, 4u));

// ---- std::shared_mutex ------------------------------------------------------------

std::shared_mutex g_rw;
std::uint64_t g_a = 0, g_b = 0;  // guarded by g_rw; a writer moves both
std::atomic<unsigned> g_torn{0};

void* rw_worker(void* arg) {
  const bool writer = reinterpret_cast<std::uintptr_t>(arg) < 2;
  for (unsigned i = 0; i < 1500; ++i) {
    if (writer) {
      std::unique_lock<std::shared_mutex> g(g_rw);
      ++g_a;
      spin_for(20000);
      ++g_b;
    } else {
      std::shared_lock<std::shared_mutex> g(g_rw);
      std::uint64_t a = g_a;
      spin_for(20000);
      if (g_b != a) g_torn.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
    }
  }
  return nullptr;
}

int shared_mutex_mix() {
  g_a = g_b = 0;
  if (int r = spawn_join(6, rw_worker)) return r;
  return (g_a == 3000 && g_b == 3000 && g_torn.load() == 0) ? 0 : 1;
}

TEST(blocking_locks_families, SharedMutex) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EQ(run(1, false, shared_mutex_mix), child_result::ok);
  EXPECT_EQ(run(2, false, shared_mutex_mix), child_result::ok);
}

// Without the interposer libc sees two fibers of one KLT as one thread: a
// reader finds "its own" write lock and std::shared_mutex throws EDEADLK, or
// the KLT blocks: either way the program does not complete.
TEST(blocking_locks_families, SharedMutexFailsWithoutInterposer) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_NE(run(1, true, shared_mutex_mix), child_result::ok);
}

// ---- std::condition_variable producer/consumer ----------------------------------------

constexpr unsigned kItems = 20000;
std::mutex g_q_mu;
std::condition_variable g_q_cv;
std::deque<unsigned> g_q;  // guarded by g_q_mu
std::uint64_t g_sum = 0, g_got = 0;  // guarded by g_q_mu

void* producer(void* arg) {
  const unsigned base = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(arg)) * kItems;
  for (unsigned i = 0; i < kItems; ++i) {
    {
      std::unique_lock<std::mutex> g(g_q_mu);
      g_q_cv.wait(g, [] { return g_q.size() < 8; });  // bounded: producers wait too
      g_q.push_back(base + i);
    }
    g_q_cv.notify_all();
  }
  return nullptr;
}

void* consumer(void*) {
  for (unsigned i = 0; i < kItems; ++i) {
    {
      std::unique_lock<std::mutex> g(g_q_mu);
      g_q_cv.wait(g, [] { return !g_q.empty(); });
      g_sum += g_q.front();
      ++g_got;
      g_q.pop_front();
    }
    g_q_cv.notify_all();
  }
  return nullptr;
}

int producer_consumer() {
  g_sum = g_got = 0;
  g_q.clear();
  fiber_t p0 = spawn(producer, reinterpret_cast<void*>(0)), p1 = spawn(producer, reinterpret_cast<void*>(1));
  fiber_t c0 = spawn(consumer), c1 = spawn(consumer);
  if (!p0 || !p1 || !c0 || !c1) return 80;
  for (fiber_t f : {p0, p1, c0, c1}) fiber_join(f, nullptr);
  const std::uint64_t n = 2 * kItems;
  return (g_got == n && g_sum == n * (n - 1) / 2) ? 0 : 1;  // nothing lost, nothing twice
}

TEST(blocking_locks_families, ConditionVariableProducerConsumer) {
  EXPECT_EQ(run(1, false, producer_consumer), child_result::ok);
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EQ(run(2, false, producer_consumer), child_result::ok);
}

TEST(blocking_locks_families, ConditionVariableHangWithoutInterposer) {
  EXPECT_EQ(run(1, true, producer_consumer), child_result::hung);
}

// ---- an OS thread signals a pthread_cond / posts a sem_t -----------------------------
// The OS thread acts only once a second fiber on the same (single) KLT has made
// progress while the first waits: without the mechanism that KLT is blocked
// in libc and the program hangs.

pthread_mutex_t g_pm = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_pc = PTHREAD_COND_INITIALIZER;
bool g_ready = false;  // guarded by g_pm
sem_t g_sem;
std::atomic<unsigned> g_ticks{0};
std::atomic<bool> g_done{false};

void* ticker(void*) {
  while (!g_done.load(std::memory_order_acquire)) {  // acquire: pairs with the waiter's release
    g_ticks.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
    fiber_yield();
  }
  return nullptr;
}

void wait_ticks() {
  while (g_ticks.load(std::memory_order_relaxed) < 1000) std::this_thread::yield();  // relaxed: a count
}

void* cond_waiter(void*) {
  pthread_mutex_lock(&g_pm);
  while (!g_ready) pthread_cond_wait(&g_pc, &g_pm);
  pthread_mutex_unlock(&g_pm);
  g_done.store(true, std::memory_order_release);  // release: pairs with ticker's acquire
  return nullptr;
}

int os_thread_signals_cond() {
  g_ready = false;
  g_done.store(false);
  g_ticks.store(0);
  fiber_t w = spawn(cond_waiter), t = spawn(ticker);
  if (!w || !t) return 80;
  std::thread os([] {
    wait_ticks();
    pthread_mutex_lock(&g_pm);
    g_ready = true;
    pthread_cond_signal(&g_pc);
    pthread_mutex_unlock(&g_pm);
  });
  fiber_join(w, nullptr);
  fiber_join(t, nullptr);
  os.join();
  return 0;
}

TEST(blocking_locks_families, PthreadCondSignalledByOsThread) {
  EXPECT_EQ(run(1, false, os_thread_signals_cond), child_result::ok);
}

TEST(blocking_locks_families, PthreadCondHangWithoutInterposer) {
  EXPECT_EQ(run(1, true, os_thread_signals_cond), child_result::hung);
}

void* sem_waiter(void*) {
  while (sem_wait(&g_sem) != 0) {}
  g_done.store(true, std::memory_order_release);  // release: pairs with ticker's acquire
  return nullptr;
}

int os_thread_posts_sem() {
  g_done.store(false);
  g_ticks.store(0);
  if (sem_init(&g_sem, 0, 0) != 0) return 79;
  fiber_t w = spawn(sem_waiter), t = spawn(ticker);
  if (!w || !t) return 80;
  std::thread os([] {
    wait_ticks();
    sem_post(&g_sem);
  });
  fiber_join(w, nullptr);
  fiber_join(t, nullptr);
  os.join();
  return sem_destroy(&g_sem) == 0 ? 0 : 1;
}

TEST(blocking_locks_families, SemPostFromOsThread) {
  EXPECT_EQ(run(1, false, os_thread_posts_sem), child_result::ok);
}

TEST(blocking_locks_families, SemHangWithoutInterposer) {
  EXPECT_EQ(run(1, true, os_thread_posts_sem), child_result::hung);
}

// ---- OS threads and fibers on one std::mutex ----------------------------------------

int mixed_os_threads_and_fibers() {
  g_counter = 0;
  std::thread a([] { mutex_worker(nullptr); }), b([] { mutex_worker(nullptr); });
  int r = spawn_join(4, mutex_worker);
  a.join();
  b.join();
  if (r) return r;
  return g_counter == std::uint64_t{6} * kIters ? 0 : 1;
}

TEST(blocking_locks_families, OsThreadsAndFibersShareAStdMutex) {
  EXPECT_EQ(run(2, false, mixed_os_threads_and_fibers), child_result::ok);
}

// I-LOT5: an OS thread holding the mutex enters libc's pthread_cond_wait, which
// releases the mutex where no interposer sees it; the fiber waiting for the
// mutex must still get it (its own bounded re-check) and signal the thread.
pthread_cond_t g_pc2 = PTHREAD_COND_INITIALIZER;
std::atomic<bool> g_fiber_waiting{false};

void* take_then_signal(void*) {
  g_fiber_waiting.store(true, std::memory_order_release);  // release: pairs with the thread's acquire
  pthread_mutex_lock(&g_pm);  // held by the OS thread: the fiber parks in the lot
  g_ready = true;
  pthread_cond_signal(&g_pc2);
  pthread_mutex_unlock(&g_pm);
  return nullptr;
}

int hidden_release_in_os_cond_wait() {
  g_ready = false;
  g_fiber_waiting.store(false);
  pthread_mutex_lock(&g_pm);  // this OS thread holds it first
  fiber_t f = spawn(take_then_signal);
  if (!f) return 80;
  while (!g_fiber_waiting.load(std::memory_order_acquire)) std::this_thread::yield();  // acquire: as above
  struct timespec nap{0, 5000000};
  nanosleep(&nap, nullptr);  // let the fiber reach the lot
  while (!g_ready) pthread_cond_wait(&g_pc2, &g_pm);  // libc releases g_pm inside
  pthread_mutex_unlock(&g_pm);
  return fiber_join(f, nullptr) == 0 ? 0 : 1;
}

TEST(blocking_locks_families, MutexReleasedInsideAnOsThreadsCondWait) {
  EXPECT_EQ(run(1, false, hidden_release_in_os_cond_wait), child_result::ok);
}

// An OS thread alone (no runtime running in this process): libc's behaviour.
TEST(blocking_locks_families, OsThreadCallerUnchanged) {
  std::mutex m;
  std::condition_variable cv;
  bool flag = false;
  std::thread t([&] {
    std::lock_guard<std::mutex> g(m);
    flag = true;
    cv.notify_one();
  });
  {
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return flag; });
  }
  t.join();
  pthread_mutex_t em;
  pthread_mutexattr_t at;
  pthread_mutexattr_init(&at);
  pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&em, &at);
  EXPECT_EQ(pthread_mutex_lock(&em), 0);
  EXPECT_EQ(pthread_mutex_lock(&em), EDEADLK);  // libc's own check still runs
  EXPECT_EQ(pthread_mutex_unlock(&em), 0);
  EXPECT_EQ(pthread_mutex_unlock(&em), EPERM);
  pthread_mutex_destroy(&em);
}

// ---- a holder is not preempted (I9) -----------------------------------------------------

std::atomic<bool> g_in_cs{false};
std::atomic<unsigned> g_ran_in_cs{0};

void* long_holder(void*) {
  std::lock_guard<std::mutex> g(g_mu);
  g_in_cs.store(true, std::memory_order_relaxed);  // relaxed: same KLT as the reader (1 KLT)
  spin_for(30 * kMs);  // 30 quanta
  g_in_cs.store(false, std::memory_order_relaxed);
  return nullptr;
}

void* observer(void*) {
  for (int i = 0; i < 50; ++i) {
    if (g_in_cs.load(std::memory_order_relaxed)) g_ran_in_cs.fetch_add(1, std::memory_order_relaxed);
    spin_for(kMs);
  }
  return nullptr;
}

int holder_runs_alone() {
  g_ran_in_cs.store(0);
  fiber_t h = spawn(long_holder), o = spawn(observer);
  if (!h || !o) return 80;
  fiber_join(h, nullptr);
  fiber_join(o, nullptr);
  return g_ran_in_cs.load() == 0 ? 0 : 1;
}

TEST(blocking_locks_hold, HolderIsNotPreempted) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  EXPECT_EQ(run_child([] { return with_runtime(1, 1000, false, holder_runs_alone); }, kPositiveTimeoutS),
            child_result::ok);
}

TEST(blocking_locks_hold, HolderIsPreemptedWithoutTheHold) {  // negative control
  FIBER_SKIP_WITHOUT_PREEMPTION();
  auto body = [] {
    set_lock_knobs(false, true);
    fiber_config_t c = config(1, 1000);
    if (fiber_init(&c) != 0) return 90;
    int r = holder_runs_alone();
    fiber_shutdown();
    return r;
  };
  EXPECT_EQ(run_child(body, kPositiveTimeoutS), child_result::failed);
}

// ---- timeouts and bad input ------------------------------------------------------------

struct timespec in_ms(clockid_t clock, long ms) {
  struct timespec t;
  clock_gettime(clock, &t);
  t.tv_nsec += (ms % 1000) * 1000000L;
  t.tv_sec += ms / 1000 + t.tv_nsec / 1000000000L;
  t.tv_nsec %= 1000000000L;
  return t;
}

std::atomic<int> g_res[8];

void* timed_calls(void*) {
  // g_pm is held by the test's other fiber; g_sem is 0; g_pc is never signalled.
  struct timespec t = in_ms(CLOCK_REALTIME, 20);
  g_res[0].store(pthread_mutex_timedlock(&g_pm, &t));
  t = in_ms(CLOCK_MONOTONIC, 20);
  g_res[1].store(pthread_mutex_clocklock(&g_pm, CLOCK_MONOTONIC, &t));
  struct timespec bad{0, 2000000000L};
  g_res[2].store(pthread_mutex_timedlock(&g_pm, &bad));
  t = in_ms(CLOCK_REALTIME, 20);
  g_res[3].store(sem_timedwait(&g_sem, &t) == -1 ? errno : 0);
  pthread_mutex_t m2 = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&m2);
  t = in_ms(CLOCK_REALTIME, 20);
  g_res[4].store(pthread_cond_timedwait(&g_pc, &m2, &t));
  g_res[5].store(pthread_mutex_unlock(&m2));  // 0: the timed-out wait took m2 back
  g_res[6].store(sem_timedwait(&g_sem, &bad) == -1 ? errno : 0);
  return nullptr;
}

std::atomic<bool> g_have{false};

void* hold_pm(void*) {
  pthread_mutex_lock(&g_pm);
  g_have.store(true, std::memory_order_release);  // release: pairs with the test's acquire
  while (!g_done.load(std::memory_order_acquire)) fiber_yield();  // acquire: pairs with the test
  pthread_mutex_unlock(&g_pm);
  return nullptr;
}

TEST(blocking_locks_bad_input, TimeoutsAndInvalidTimes) {
  auto body = [] {
    set_lock_knobs(false, false);
    fiber_config_t c = config(1, 1000);
    if (fiber_init(&c) != 0) return 90;
    g_done.store(false);
    sem_init(&g_sem, 0, 0);
    fiber_t h = spawn(hold_pm);
    while (!g_have.load(std::memory_order_acquire)) std::this_thread::yield();  // acquire: pairs with hold_pm
    fiber_t t = spawn(timed_calls);
    fiber_join(t, nullptr);
    g_done.store(true, std::memory_order_release);  // release: pairs with hold_pm's acquire
    fiber_join(h, nullptr);
    fiber_shutdown();
    int want[7] = {ETIMEDOUT, ETIMEDOUT, EINVAL, ETIMEDOUT, ETIMEDOUT, 0, EINVAL};
    for (int i = 0; i < 7; ++i)
      if (g_res[i].load() != want[i]) {
        fprintf(stderr, "call %d returned %d, not %d\n", i, g_res[i].load(), want[i]);
        return 10 + i;
      }
    return 0;
  };
  EXPECT_EQ(run_child(body, kPositiveTimeoutS), child_result::ok);
}

}  // namespace
