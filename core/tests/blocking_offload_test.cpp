// core/tests/blocking_offload_test.cpp - calls with no readiness path run on
// the offload pool while the fiber parks (core/src/offload.cpp, io_file.cpp,
// interpose_offload.cpp).  Built twice, as blocking_io_test.cpp: against
// libfiber.a and libfiber.so.
//
// The measure of "the KLT was not stopped": on one cooperative KLT, the
// offloaded function itself waits (on its pool thread) until another fiber of
// that KLT has counted to kTarget.  Run on the KLT instead
// (FIBER_KNOB_NO_OFFLOAD, the negative control), nothing else runs until it
// returns, so it gives up at its bound and reports how far the count got: 0.
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber/fiber.hpp"
#include "test_util.hpp"

using namespace fiber_test;

namespace {

class blocking_offload_test : public runtime_test {
 protected:
  void TearDown() override {
    fiber_test_set_knob(FIBER_KNOB_NO_OFFLOAD, 0);
    fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 0);
    runtime_test::TearDown();
  }
};

std::uint64_t offloads() {
  fiber_test_io_counters_t c;
  fiber_test_get_io_counters(&c);
  return c.offloads;
}

constexpr int kTarget = 50;
std::atomic<int> g_count{0};
std::atomic<bool> g_stop{false};

void raw_sleep_ms(long ms) {  // the kernel's sleep, never the interposer's
  struct timespec t{ms / 1000, ms % 1000 * 1000000L};
  syscall(SYS_nanosleep, &t, nullptr);
}

// On the pool (or, under the knob, on the KLT): waits up to 2 s for the
// counter, sets errno to a marker, returns what the counter reached.
void* wait_for_counter(void* arg) {
  for (int i = 0; i < 2000 && g_count.load() < kTarget; ++i) raw_sleep_ms(1);
  errno = *static_cast<int*>(arg);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(g_count.load()));
}

void* counter(void*) {
  while (!g_stop.load()) {
    g_count.fetch_add(1);
    fiber_yield();
  }
  return nullptr;
}

struct offload_result {
  int rc = -1, err = 0;
  std::intptr_t reached = -1;
};

void* offloader(void* p) {
  auto* r = static_cast<offload_result*>(p);
  int marker = 4242;
  errno = 7;
  void* ret = nullptr;
  r->rc = fiber_offload(wait_for_counter, &marker, &ret);
  r->err = errno;
  r->reached = reinterpret_cast<std::intptr_t>(ret);
  g_stop.store(true);
  return nullptr;
}

offload_result offload_beside_a_counter() {
  g_count.store(0);
  g_stop.store(false);
  offload_result r;
  fiber_t a = spawn(offloader, &r), b = spawn(counter);
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  join(a);
  join(b);
  return r;
}

TEST_F(blocking_offload_test, OffloadedCallLetsTheOtherFibersOfItsKltRun) {
  start(1, 0);  // one cooperative KLT: only a parked offloader lets the counter run
  const std::uint64_t before = offloads();
  offload_result r = offload_beside_a_counter();
  EXPECT_EQ(r.rc, 0);
  EXPECT_GE(r.reached, kTarget);
  EXPECT_EQ(r.err, 4242);  // errno comes back from the pool thread (I-OFF2)
  EXPECT_EQ(offloads(), before + 1);
}

TEST_F(blocking_offload_test, WithoutThePoolTheCallStopsItsKlt) {
  start(1, 0);
  fiber_test_set_knob(FIBER_KNOB_NO_OFFLOAD, 1);
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the pool alone (no spare KLT, I-MON4)
  const std::uint64_t before = offloads();
  offload_result r = offload_beside_a_counter();
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.reached, 0);  // the counter never ran while the call did
  EXPECT_EQ(offloads(), before);
}

TEST_F(blocking_offload_test, BadInputAndOsThreads) {
  start(1, 0);
  EXPECT_EQ(fiber_offload(nullptr, nullptr, nullptr), EINVAL);
  // An OS thread: fn runs inline, result and errno as a plain call.
  const std::uint64_t before = offloads();
  void* ret = nullptr;
  int marker = 99;
  g_count.store(kTarget);  // nothing to wait for
  EXPECT_EQ(fiber_offload(wait_for_counter, &marker, &ret), 0);
  EXPECT_EQ(errno, 99);
  EXPECT_EQ(reinterpret_cast<std::intptr_t>(ret), kTarget);
  EXPECT_EQ(fiber_offload(wait_for_counter, &marker, nullptr), 0);  // result may be NULL
  EXPECT_EQ(offloads(), before);
}

// Many fibers offload at once on two KLTs: every call returns its own result
// (the pool grows past one thread; jobs are not lost or swapped).
void* echo_arg(void* a) {
  raw_sleep_ms(2);
  return a;
}
void* many_offloads(void* p) {
  auto i = reinterpret_cast<std::intptr_t>(p);
  for (std::intptr_t k = 0; k < 20; ++k) {
    void* ret = nullptr;
    if (fiber_offload(echo_arg, reinterpret_cast<void*>(i * 1000 + k), &ret) != 0) return nullptr;
    if (reinterpret_cast<std::intptr_t>(ret) != i * 1000 + k) return nullptr;
  }
  return reinterpret_cast<void*>(1);
}

TEST_F(blocking_offload_test, ConcurrentOffloadsEachGetTheirOwnResult) {
  start(2, 1000);
  std::vector<fiber_t> ids;
  for (std::intptr_t i = 0; i < 16; ++i) ids.push_back(spawn(many_offloads, reinterpret_cast<void*>(i)));
  for (fiber_t f : ids) EXPECT_EQ(join(f), reinterpret_cast<void*>(1));
}

// ---- the interposed calls --------------------------------------------------

struct file_case {
  std::string path;
  std::string data;
  std::string got;
  int fsync_rc = -1, fdatasync_rc = -1;
  std::uint64_t offloads_fsync = 0, offloads_read = 0, offloads_cached = 0;
};

void* file_ops(void* p) {
  auto* c = static_cast<file_case*>(p);
  int fd = open(c->path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return nullptr;
  if (write(fd, c->data.data(), c->data.size()) != static_cast<ssize_t>(c->data.size())) return nullptr;
  std::uint64_t o = offloads();
  c->fsync_rc = fsync(fd);
  c->fdatasync_rc = fdatasync(fd);
  c->offloads_fsync = offloads() - o;
  // Drop the (clean, synced) pages, then read from the start: not cached.
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  lseek(fd, 0, SEEK_SET);
  c->got.assign(c->data.size(), '\0');
  o = offloads();
  ssize_t n = read(fd, &c->got[0], c->got.size());
  c->offloads_read = offloads() - o;
  if (n != static_cast<ssize_t>(c->data.size())) c->got.clear();
  // Cached now: a second read is served by RWF_NOWAIT on the KLT.
  lseek(fd, 0, SEEK_SET);
  std::string again(c->data.size(), '\0');
  o = offloads();
  struct iovec v[2] = {{&again[0], 100}, {&again[100], again.size() - 100}};
  if (readv(fd, v, 2) != static_cast<ssize_t>(again.size()) || again != c->data) c->got.clear();
  c->offloads_cached = offloads() - o;
  close(fd);
  unlink(c->path.c_str());
  return reinterpret_cast<void*>(1);
}

TEST_F(blocking_offload_test, FsyncAndUncachedFileReadsRunOnThePool) {
  start(1, 1000);
  file_case c;
  c.path = "offload_test." + std::to_string(getpid()) + ".dat";  // the build tree: a disk, not tmpfs
  for (int i = 0; i < 64 * 1024; ++i) c.data.push_back(static_cast<char>('a' + i % 26));
  ASSERT_EQ(join(spawn(file_ops, &c)), reinterpret_cast<void*>(1));
  EXPECT_EQ(c.fsync_rc, 0);
  EXPECT_EQ(c.fdatasync_rc, 0);
  EXPECT_EQ(c.offloads_fsync, 2u);
  EXPECT_EQ(c.got, c.data);  // a full read, not a short NOWAIT one
  // Where the file system keeps no page cache to drop (tmpfs), the read is
  // served from memory and nothing is offloaded; on a disk it is.
  EXPECT_LE(c.offloads_read, 1u);
  std::printf("uncached read offloaded: %llu\n", static_cast<unsigned long long>(c.offloads_read));
  EXPECT_EQ(c.offloads_cached, 0u);
}

TEST_F(blocking_offload_test, FileCallsWithoutInterpositionStayOnTheKlt) {
  start(1, 1000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  file_case c;
  c.path = "offload_test_off." + std::to_string(getpid()) + ".dat";
  for (int i = 0; i < 8192; ++i) c.data.push_back(static_cast<char>('A' + i % 26));
  ASSERT_EQ(join(spawn(file_ops, &c)), reinterpret_cast<void*>(1));
  EXPECT_EQ(c.fsync_rc, 0);
  EXPECT_EQ(c.got, c.data);
  EXPECT_EQ(c.offloads_fsync, 0u);
  EXPECT_EQ(c.offloads_read, 0u);
}

struct gai_case {
  int rc = -1;
  bool found = false;
  std::uint64_t offloaded = 0;
};

void* resolve_localhost(void* p) {
  auto* c = static_cast<gai_case*>(p);
  struct addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  std::uint64_t o = offloads();
  c->rc = getaddrinfo("127.0.0.1", "80", &hints, &res);
  c->offloaded = offloads() - o;
  c->found = c->rc == 0 && res != nullptr && res->ai_family == AF_INET;
  if (res) freeaddrinfo(res);
  return nullptr;
}

TEST_F(blocking_offload_test, GetaddrinfoRunsOnThePool) {
  start(1, 1000);
  gai_case c;
  join(spawn(resolve_localhost, &c));
  EXPECT_EQ(c.rc, 0);
  EXPECT_TRUE(c.found);
  EXPECT_EQ(c.offloaded, 1u);
  gai_case os;  // an OS thread: libc's, nothing offloaded
  resolve_localhost(&os);
  EXPECT_TRUE(os.found);
  EXPECT_EQ(os.offloaded, 0u);
}

// A fiber waiting for the pool is waiting for the outside world: with every
// other fiber parked and every KLT idle, the deadlock detector must not call
// it a deadlock (it would exit the process with status 2).
void* long_offload(void*) {
  void* ret = nullptr;
  fiber_offload([](void*) -> void* { raw_sleep_ms(1500); return reinterpret_cast<void*>(5); }, nullptr, &ret);
  return ret;
}

TEST_F(blocking_offload_test, AFiberWaitingForThePoolIsNotADeadlock) {
  child_result r = run_child(
      [] {
        fiber_config_t c = config(1, 1000);
        if (fiber_init(&c) != 0) return 10;
        fiber_t f = spawn(long_offload);
        void* ret = nullptr;
        if (!f || fiber_join(f, &ret) != 0) return 11;  // the main thread parks in the join too
        fiber_shutdown();
        return ret == reinterpret_cast<void*>(5) ? 0 : 12;
      },
      10);
  EXPECT_EQ(r, child_result::ok) << to_string(r);
}

// The control: the same program with the fiber parked on a semaphore nobody
// posts is reported (exit status 2), so the detector runs in this setting.
void* stuck_on_a_semaphore(void*) {
  static fiber_sem_t s;
  fiber_sem_init(&s, 0);
  fiber_sem_wait(&s);
  return nullptr;
}

TEST_F(blocking_offload_test, ControlAFiberParkedForeverIsADeadlock) {
  const std::uint64_t t0 = now_ns();
  child_result r = run_child(
      [] {
        fiber_config_t c = config(1, 1000);
        if (fiber_init(&c) != 0) return 10;
        fiber_t f = spawn(stuck_on_a_semaphore);
        void* ret = nullptr;
        if (f) fiber_join(f, &ret);
        return 0;  // not reached: the detector exits with status 2
      },
      10);
  EXPECT_EQ(r, child_result::failed) << to_string(r);
  EXPECT_LT(now_ns() - t0, 5000u * 1000000u);
}

// A child forked from a fiber has no pool: fiber_offload and fsync run inline.
void* fork_and_offload(void*) {
  pid_t pid = fork();
  if (pid == 0) {
    void* ret = nullptr;
    if (fiber_offload(echo_arg, reinterpret_cast<void*>(3), &ret) != 0 || ret != reinterpret_cast<void*>(3)) _exit(3);
    if (thread_count() != 1) _exit(4);  // nothing started a pool thread
    _exit(0);
  }
  if (pid < 0) return reinterpret_cast<void*>(1);
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) fiber_sleep_ns(1000000);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(WIFEXITED(st) ? WEXITSTATUS(st) : 99));
}

TEST_F(blocking_offload_test, ForkedChildRunsOffloadsInline) {
  start(1, 1000);
  EXPECT_EQ(join(spawn(fork_and_offload)), nullptr);
}

// The C++ form: a value, void, and an exception carried back to the fiber.
struct cxx_case {
  int value = 0;
  bool thrown = false, void_ran = false;
  std::uint64_t offloaded = 0;
};

void* cxx_offloads(void* p) {
  auto* c = static_cast<cxx_case*>(p);
  std::uint64_t o = offloads();
  c->value = fiber::offload([] { return 6 * 7; });
  fiber::offload([c] { c->void_ran = true; });
  try {
    fiber::offload([]() -> int { throw std::runtime_error("from the pool"); });
  } catch (const std::runtime_error& e) {
    c->thrown = std::string(e.what()) == "from the pool";
  }
  c->offloaded = offloads() - o;
  return nullptr;
}

TEST_F(blocking_offload_test, CxxOffloadReturnsValuesAndRethrows) {
  start(1, 1000);
  cxx_case c;
  join(spawn(cxx_offloads, &c));
  EXPECT_EQ(c.value, 42);
  EXPECT_TRUE(c.void_ran);
  EXPECT_TRUE(c.thrown);
  EXPECT_EQ(c.offloaded, 3u);
}

}  // namespace
