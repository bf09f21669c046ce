// core/tests/blocking_io_test.cpp - blocking system calls park the fiber, not
// the KLT (core/src/interpose_io.cpp, interpose_sleep.cpp, io_fiber.cpp,
// io_poll.cpp, poller.cpp).  Built twice: against libfiber.a (interposition by
// archive pull-in) and libfiber.so (by lookup order).
//
// Negative controls: FIBER_KNOB_NO_IO_INTERPOSE sends a fiber's calls straight
// to libc, which shows what each test's positive twin depends on: on one KLT
// the call blocks every fiber (a hang, run in a forked child with a timeout),
// or the tick interrupts a sleep (EINTR).  Fibers record results in atomics;
// the test thread asserts (test_util.hpp).
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

class blocking_io_test : public runtime_test {
 protected:
  void TearDown() override {
    fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 0);
    runtime_test::TearDown();
  }
};

// Starts a runtime of `klts` KLTs, runs fn in a fiber, shuts down: for the
// forked negative-control children (no gtest in there).
int run_in_fiber(unsigned klts, unsigned slice_us, void* (*fn)(void*), void* arg = nullptr) {
  fiber_config_t c = config(klts, slice_us);
  if (fiber_init(&c) != 0) return 10;
  fiber_t f = spawn(fn, arg);
  void* r = nullptr;
  if (!f || fiber_join(f, &r) != 0) return 11;
  fiber_shutdown();
  return static_cast<int>(reinterpret_cast<std::intptr_t>(r));
}

// ---- sleep family ---------------------------------------------------------

struct sleep_result {
  std::atomic<int> rc{-2}, err{0};
  std::atomic<std::uint64_t> elapsed{0};
};

enum class sleeper { usleep_, nanosleep_, clock_rel, clock_abs_mono, clock_abs_real };

struct sleep_case {
  sleeper how;
  sleep_result res;
};

void* do_sleep(void* p) {
  auto* c = static_cast<sleep_case*>(p);
  const std::uint64_t ns = 30 * kMs;
  std::uint64_t t0 = now_ns();
  int rc = 0;
  struct timespec rel{0, static_cast<long>(ns)};
  switch (c->how) {
    case sleeper::usleep_: rc = usleep(static_cast<useconds_t>(ns / 1000)); break;
    case sleeper::nanosleep_: rc = nanosleep(&rel, nullptr); break;
    case sleeper::clock_rel: rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, nullptr); break;
    case sleeper::clock_abs_mono:
    case sleeper::clock_abs_real: {
      clockid_t clk = c->how == sleeper::clock_abs_mono ? CLOCK_MONOTONIC : CLOCK_REALTIME;
      struct timespec t;
      clock_gettime(clk, &t);
      t.tv_nsec += static_cast<long>(ns);
      if (t.tv_nsec >= 1000000000) t.tv_sec += 1, t.tv_nsec -= 1000000000;
      rc = clock_nanosleep(clk, TIMER_ABSTIME, &t, nullptr);
      break;
    }
  }
  c->res.err.store(rc == -1 ? errno : rc);
  c->res.rc.store(rc);
  c->res.elapsed.store(now_ns() - t0);
  return nullptr;
}

// A quantum of 1 ms: the tick would interrupt a sleep that blocks the KLT.
TEST_F(blocking_io_test, SleepFamilyTakesTheFullTimeWithoutEintr) {
  start(1, 1000);
  for (sleeper s : {sleeper::usleep_, sleeper::nanosleep_, sleeper::clock_rel, sleeper::clock_abs_mono,
                    sleeper::clock_abs_real}) {
    sleep_case c{s, {}};
    fiber_t f = spawn(do_sleep, &c);
    ASSERT_NE(f, 0u);
    join(f);
    EXPECT_EQ(c.res.rc.load(), 0) << "sleeper " << static_cast<int>(s) << " err " << c.res.err.load();
    EXPECT_GE(c.res.elapsed.load(), 30 * kMs) << "sleeper " << static_cast<int>(s);
  }
}

// Negative control: libc's sleeps on the KLT, interrupted by the tick.
TEST_F(blocking_io_test, SleepWithoutInterpositionIsInterruptedByTheTick) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  start(1, 1000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  int interrupted = 0;
  for (sleeper s : {sleeper::usleep_, sleeper::nanosleep_, sleeper::clock_rel}) {
    sleep_case c{s, {}};
    fiber_t f = spawn(do_sleep, &c);
    ASSERT_NE(f, 0u);
    join(f);
    if (c.res.rc.load() != 0 && c.res.err.load() == EINTR) ++interrupted;
  }
  EXPECT_GT(interrupted, 0);
}

struct progress {
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> count{0}, during{0};
};

void* counter_fiber(void* p) {
  auto* pr = static_cast<progress*>(p);
  while (!pr->done.load()) {
    pr->count.fetch_add(1);
    fiber_yield();
  }
  return nullptr;
}

void* sleeper_fiber(void* p) {
  auto* pr = static_cast<progress*>(p);
  fiber_yield();  // let the counter start
  std::uint64_t c0 = pr->count.load();
  usleep(50 * 1000);
  pr->during.store(pr->count.load() - c0);
  pr->done.store(true);
  return nullptr;
}

std::uint64_t others_progress_while_sleeping() {
  progress pr;
  fiber_t a = spawn(counter_fiber, &pr), b = spawn(sleeper_fiber, &pr);
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  join(b);
  join(a);
  return pr.during.load();
}

// A long quantum, so the negative control is not rescued by a tick.
TEST_F(blocking_io_test, SleepingFiberLetsTheOthersOfItsKltRun) {
  start(1, 200000);
  EXPECT_GT(others_progress_while_sleeping(), 100u);
}

TEST_F(blocking_io_test, SleepWithoutInterpositionStopsTheKlt) {
  start(1, 200000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the interposer alone (no spare KLT, I-MON4)
  EXPECT_EQ(others_progress_while_sleeping(), 0u);
}

// ---- sched_yield ----------------------------------------------------------

// A fiber waits for another with `while (!flag) sched_yield();` on one
// cooperative KLT: the yield must run the other fiber (interpose_sleep.cpp).
// Bounded, so the negative control ends: the number of sched_yield calls the
// waiter made before the flag was set, or kYieldBound when it never was.
constexpr int kYieldBound = 20000;
struct yield_wait {
  std::atomic<bool> flag{false};
  std::atomic<int> calls{0};
};

void* yield_waiter(void* p) {
  auto* w = static_cast<yield_wait*>(p);
  int n = 0;
  while (!w->flag.load() && n < kYieldBound) {
    EXPECT_EQ(sched_yield(), 0);
    ++n;
  }
  w->calls.store(n);
  return nullptr;
}

void* flag_setter(void* p) {
  static_cast<yield_wait*>(p)->flag.store(true);
  return nullptr;
}

// Both fibers are created by a parent fiber, which runs on until it joins:
// created from the OS thread, the waiter would start (and call the kernel's
// sched_yield, with nothing else runnable) before the setter existed.
void* yield_parent(void* p) {
  fiber_t a = spawn(yield_waiter, p), b = spawn(flag_setter, p);  // queued a, b (FIFO)
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  join(a);
  join(b);
  return nullptr;
}

int yields_until_flag() {
  yield_wait w;
  join(spawn(yield_parent, &w));
  return w.calls.load();
}

TEST_F(blocking_io_test, SchedYieldInAFiberRunsTheOtherFibersOfItsKlt) {
  start(1, 0);  // cooperative: nothing but the yield can run the setter
  EXPECT_EQ(yields_until_flag(), 1);
  // No other fiber runnable: the kernel's sched_yield, and it returns 0.
  EXPECT_EQ(join(spawn([](void*) -> void* { return reinterpret_cast<void*>(sched_yield() == 0); })),
            reinterpret_cast<void*>(1));
  EXPECT_EQ(sched_yield(), 0);  // an OS thread: libc's
}

TEST_F(blocking_io_test, SchedYieldWithoutInterpositionNeverRunsTheOthers) {
  start(1, 0);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  // The interposer alone: on a machine so loaded that the spinning KLT gets
  // under a tenth of a CPU, the monitor would count it blocked (I-MON4).
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);
  EXPECT_EQ(yields_until_flag(), kYieldBound);
}

void* bad_sleeps(void*) {
  struct timespec bad{0, 2000000000L};
  errno = 0;
  bool ok = nanosleep(&bad, nullptr) == -1 && errno == EINVAL;
  ok = ok && clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, nullptr) == EINVAL;
  ok = ok && clock_nanosleep(CLOCK_MONOTONIC, 0, nullptr, nullptr) == EINVAL;
  struct timespec zero{0, 0};
  ok = ok && nanosleep(&zero, nullptr) == 0 && sleep(0) == 0;
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(ok ? 1 : 0));
}

TEST_F(blocking_io_test, SleepBadInputIsEinval) {
  start(1, 1000);
  EXPECT_EQ(join(spawn(bad_sleeps)), reinterpret_cast<void*>(1));
  struct timespec bad{0, -1};  // OS thread: libc's answer
  EXPECT_EQ(nanosleep(&bad, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

// ---- pipes -------------------------------------------------------------------

constexpr std::size_t kPipeBytes = 1 << 20;  // 16 times a pipe's capacity

struct pipe_pair {
  int fd[2] = {-1, -1};
  std::atomic<std::uint64_t> sum_read{0}, bytes_read{0};
  std::atomic<long> wrote{0};
};

void* pipe_reader(void* p) {
  auto* pp = static_cast<pipe_pair*>(p);
  std::vector<unsigned char> buf(8192);
  std::uint64_t sum = 0, got = 0;
  for (;;) {
    ssize_t n = read(pp->fd[0], buf.data(), buf.size());
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) sum += buf[static_cast<std::size_t>(i)] * ((got + i) % 7 + 1);
    got += static_cast<std::uint64_t>(n);
  }
  pp->sum_read.store(sum);
  pp->bytes_read.store(got);
  return nullptr;
}

void* pipe_writer(void* p) {
  auto* pp = static_cast<pipe_pair*>(p);
  std::vector<unsigned char> buf(kPipeBytes);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 31 + 7);
  pp->wrote.store(write(pp->fd[1], buf.data(), buf.size()));  // one call, 16 pipes full
  close(pp->fd[1]);
  return nullptr;
}

std::uint64_t expected_sum() {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < kPipeBytes; ++i) s += static_cast<unsigned char>(i * 31 + 7) * (i % 7 + 1);
  return s;
}

// The reader starts first and finds the pipe empty: on one KLT the writer
// can only run if the reader parks.
void* pipe_between_fibers(void*) {
  pipe_pair pp;
  if (pipe(pp.fd) != 0) return reinterpret_cast<void*>(20);
  fiber_t r = spawn(pipe_reader, &pp), w = spawn(pipe_writer, &pp);
  if (!r || !w) return reinterpret_cast<void*>(21);
  fiber_join(r, nullptr);
  fiber_join(w, nullptr);
  close(pp.fd[0]);
  bool ok = pp.wrote.load() == static_cast<long>(kPipeBytes) && pp.bytes_read.load() == kPipeBytes &&
            pp.sum_read.load() == expected_sum();
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(ok ? 0 : 22));
}

TEST_F(blocking_io_test, PipeBetweenFibersOnOneKlt) {
  start(1, 1000);
  EXPECT_EQ(join(spawn(pipe_between_fibers)), nullptr);
}

TEST_F(blocking_io_test, PipeBetweenFibersOnTwoKlts) {
  start(2, 1000);
  EXPECT_EQ(join(spawn(pipe_between_fibers)), nullptr);
}

// Without interposition the reader blocks its KLT in read(), so the writer
// never runs: the child hangs.  Now and then (about once in 90 runs on a
// loaded machine) a tick lands in the blocked read() first: the runtime's
// tick handler has no SA_RESTART, the raw read() returns EINTR, the reader
// gives up and the transfer comes out short (exit code 22).  Both are the
// failure the interposers exist to prevent; the twin below is the success.
TEST(blocking_io_control, PipeWithoutInterpositionHangsOneKlt) {
  int code = -1;
  child_result r = run_child(
      [] {
        fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
        fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the interposer alone (I-MON4)
        return run_in_fiber(1, 1000, pipe_between_fibers);
      },
      3, &code);
  EXPECT_TRUE(r == child_result::hung || (r == child_result::failed && code == 22))
      << to_string(r) << ", exit code " << code;
}

TEST(blocking_io_control, PipeWithInterpositionInAForkedChildWorks) {
  // The positive twin of the control above, in the same kind of child.
  child_result r = run_child([] { return run_in_fiber(1, 1000, pipe_between_fibers); }, 10);
  EXPECT_EQ(r, child_result::ok) << to_string(r);
}

// The explicit API parks whatever the knob says.
void* explicit_reader(void* p) {
  auto* pp = static_cast<pipe_pair*>(p);
  char buf[4096];
  std::uint64_t got = 0;
  for (;;) {
    ssize_t n = fiber_read(pp->fd[0], buf, sizeof buf);
    if (n <= 0) break;
    got += static_cast<std::uint64_t>(n);
  }
  pp->bytes_read.store(got);
  return nullptr;
}

void* explicit_writer(void* p) {
  auto* pp = static_cast<pipe_pair*>(p);
  std::vector<char> buf(kPipeBytes, 'x');
  struct pollfd q{pp->fd[1], POLLOUT, 0};
  if (fiber_poll(&q, 1, 1000) != 1) return nullptr;
  pp->wrote.store(fiber_write(pp->fd[1], buf.data(), buf.size()));
  syscall(SYS_close, pp->fd[1]);  // the end: EOF for the reader
  return nullptr;
}

TEST_F(blocking_io_test, ExplicitApiParksWithInterpositionOff) {
  start(1, 1000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  pipe_pair pp;
  ASSERT_EQ(pipe(pp.fd), 0);
  fiber_t r = spawn(explicit_reader, &pp), w = spawn(explicit_writer, &pp);
  join(r);
  join(w);
  EXPECT_EQ(pp.wrote.load(), static_cast<long>(kPipeBytes));
  EXPECT_EQ(pp.bytes_read.load(), kPipeBytes);
  close(pp.fd[0]);
}

void* nonblocking_read(void*) {
  int fd[2];
  if (pipe2(fd, O_NONBLOCK) != 0) return reinterpret_cast<void*>(1);
  char c;
  errno = 0;
  bool ok = read(fd[0], &c, 1) == -1 && errno == EAGAIN;
  ok = ok && fiber_read(fd[0], &c, 1) == -1 && errno == EAGAIN;
  struct pollfd q{fd[0], POLLIN, 0};
  ok = ok && poll(&q, 1, 0) == 0;
  close(fd[0]);
  close(fd[1]);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(ok ? 0 : 2));
}

TEST_F(blocking_io_test, NonBlockingDescriptorKeepsEagain) {
  start(1, 1000);
  EXPECT_EQ(join(spawn(nonblocking_read)), nullptr);
}

// ---- close while parked ------------------------------------------------------

struct close_case {
  int fd[2] = {-1, -1};
  bool raw_close = false;  // the negative control: a close the runtime does not see
  std::atomic<long> rc{0};
  std::atomic<int> err{0};
};

void* parked_reader(void* p) {
  auto* c = static_cast<close_case*>(p);
  char b;
  long r = read(c->fd[0], &b, 1);
  c->err.store(errno);
  c->rc.store(r);
  return nullptr;
}

void* closer(void* p) {
  auto* c = static_cast<close_case*>(p);
  usleep(20 * 1000);  // the reader is parked by now
  if (c->raw_close) syscall(SYS_close, c->fd[0]); else close(c->fd[0]);
  return nullptr;
}

void* close_while_parked(void* p) {
  auto* c = static_cast<close_case*>(p);
  if (pipe(c->fd) != 0) return reinterpret_cast<void*>(1);
  // A number no other open reuses: the runtime's own threads open and close
  // files (/proc), and a close of a reused number wakes the reader too.
  int high = fcntl(c->fd[0], F_DUPFD, 900);
  syscall(SYS_close, c->fd[0]);
  c->fd[0] = high;
  fiber_t r = spawn(parked_reader, c), k = spawn(closer, c);
  fiber_join(k, nullptr);
  fiber_join(r, nullptr);
  close(c->fd[1]);
  return nullptr;
}

TEST_F(blocking_io_test, CloseWakesAFiberParkedOnTheDescriptor) {
  start(1, 1000);
  close_case c;
  join(spawn(close_while_parked, &c));
  EXPECT_EQ(c.rc.load(), -1);
  EXPECT_EQ(c.err.load(), EBADF);
}

// A close the runtime does not see (a raw system call): the first slice left
// the reader parked for ever (this test hung there); the poller's sweep
// (poller.hpp, "facts") finds the parked descriptor invalid within about two
// sweep periods and wakes the reader, which gets EBADF.
TEST(blocking_io_control, CloseTheRuntimeDoesNotSeeIsCaughtByTheSweep) {
  child_result r = run_child(
      [] {
        close_case c;
        c.raw_close = true;
        std::uint64_t t0 = now_ns();
        if (run_in_fiber(1, 1000, close_while_parked, &c) != 0) return 1;
        std::uint64_t took = now_ns() - t0;
        if (c.rc.load() != -1 || c.err.load() != EBADF) return 2;
        return took < 3000 * kMs ? 0 : 3;  // two sweeps of 1 s, and some slack
      },
      5);
  EXPECT_EQ(r, child_result::ok) << to_string(r);
}

// ---- poll and select ---------------------------------------------------------

struct poll_case {
  int fd[2] = {-1, -1};
  bool use_select = false;
  int write_after_ms = -1;  // -1: nobody writes
  std::atomic<int> rc{-2};
  std::atomic<std::uint64_t> elapsed{0};
  progress pr;
};

void* poller_fiber(void* p) {
  auto* c = static_cast<poll_case*>(p);
  fiber_yield();
  std::uint64_t c0 = c->pr.count.load(), t0 = now_ns();
  int rc;
  if (c->use_select) {
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(c->fd[0], &rd);
    struct timeval tv{0, 60000};
    rc = select(c->fd[0] + 1, &rd, nullptr, nullptr, &tv);
  } else {
    struct pollfd q{c->fd[0], POLLIN, 0};
    rc = poll(&q, 1, 60);
  }
  c->elapsed.store(now_ns() - t0);
  c->pr.during.store(c->pr.count.load() - c0);
  c->rc.store(rc);
  c->pr.done.store(true);
  return nullptr;
}

void* late_writer(void* p) {
  auto* c = static_cast<poll_case*>(p);
  if (c->write_after_ms < 0) return nullptr;
  // The runtime's own sleep: parks even in the negative controls, so the
  // write comes only if the poller's KLT is free to run it.
  fiber_sleep_ns(static_cast<std::uint64_t>(c->write_after_ms) * kMs);
  char x = 'x';
  if (write(c->fd[1], &x, 1) != 1) c->rc.store(-3);
  return nullptr;
}

void run_poll_case(poll_case& c) {
  ASSERT_EQ(pipe(c.fd), 0);
  fiber_t a = spawn(counter_fiber, &c.pr), b = spawn(poller_fiber, &c), w = spawn(late_writer, &c);
  join(b);
  join(w);
  join(a);
  close(c.fd[0]);
  close(c.fd[1]);
}

TEST_F(blocking_io_test, PollTimesOutWhileOthersRun) {
  start(1, 200000);
  poll_case c;
  run_poll_case(c);
  EXPECT_EQ(c.rc.load(), 0);
  EXPECT_GE(c.elapsed.load(), 60 * kMs);
  EXPECT_GT(c.pr.during.load(), 100u);
}

TEST_F(blocking_io_test, PollWithoutInterpositionStopsTheKlt) {
  start(1, 200000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the interposer alone (no spare KLT, I-MON4)
  poll_case c;
  run_poll_case(c);
  EXPECT_EQ(c.pr.during.load(), 0u);
}

TEST_F(blocking_io_test, PollWakesOnReadinessBeforeTheTimeout) {
  start(1, 1000);
  poll_case c;
  c.write_after_ms = 10;
  run_poll_case(c);
  EXPECT_EQ(c.rc.load(), 1);
  EXPECT_LT(c.elapsed.load(), 55 * kMs);
}

TEST_F(blocking_io_test, SelectTimesOutWhileOthersRunAndWakesOnReadiness) {
  start(1, 200000);
  poll_case c;
  c.use_select = true;
  run_poll_case(c);
  EXPECT_EQ(c.rc.load(), 0);
  EXPECT_GE(c.elapsed.load(), 60 * kMs);
  EXPECT_GT(c.pr.during.load(), 100u);
  poll_case d;
  d.use_select = true;
  d.write_after_ms = 10;
  run_poll_case(d);
  EXPECT_EQ(d.rc.load(), 1);
}

TEST_F(blocking_io_test, SelectWithoutInterpositionStopsTheKlt) {
  start(1, 200000);
  fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
  fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the interposer alone (no spare KLT, I-MON4)
  poll_case c;
  c.use_select = true;
  run_poll_case(c);
  EXPECT_EQ(c.pr.during.load(), 0u);
}

// ---- TCP over loopback ---------------------------------------------------------

constexpr int kClients = 16;
constexpr std::size_t kMsg = 100000;  // larger than a socket buffer's first fill

struct tcp_case {
  int listener = -1;
  int port = 0;
  std::atomic<int> ok_clients{0}, served{0};
};

int make_listener(tcp_case& t) {
  t.listener = socket(AF_INET, SOCK_STREAM, 0);
  if (t.listener < 0) return -1;
  struct sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(t.listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(t.listener, 128) != 0 ||
      getsockname(t.listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  t.port = ntohs(a.sin_port);
  return 0;
}

void* echo_conn(void* p) {
  int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(p));
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (send(fd, buf, static_cast<std::size_t>(n), 0) != n) break;
  }
  close(fd);
  return nullptr;
}

void* acceptor(void* p) {
  auto* t = static_cast<tcp_case*>(p);
  for (int i = 0; i < kClients; ++i) {
    int c = accept(t->listener, nullptr, nullptr);
    if (c < 0) break;
    fiber_attr_t a;
    fiber_attr_init(&a);
    a.detached = 1;
    fiber_t f;
    if (fiber_create(&f, &a, echo_conn, reinterpret_cast<void*>(static_cast<std::intptr_t>(c))) != 0) break;
    t->served.fetch_add(1);
  }
  return nullptr;
}

void* client(void* p) {
  auto* t = static_cast<tcp_case*>(p);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(t->port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return nullptr;
  std::vector<char> out(kMsg), in(kMsg);
  for (std::size_t i = 0; i < kMsg; ++i) out[i] = static_cast<char>(i * 13 + fd);
  // Writes everything before reading: the echo fills both buffers, so the
  // writer must park in send while its peer drains.
  fiber_attr_t at;
  fiber_attr_init(&at);
  struct wr { int fd; std::vector<char>* out; } w{fd, &out};
  fiber_t wf;
  fiber_create(&wf, &at, [](void* q) -> void* {
    auto* x = static_cast<wr*>(q);
    return reinterpret_cast<void*>(write(x->fd, x->out->data(), x->out->size()));
  }, &w);
  std::size_t got = 0;
  while (got < kMsg) {
    ssize_t n = read(fd, in.data() + got, kMsg - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  void* wrote = nullptr;
  fiber_join(wf, &wrote);
  if (got == kMsg && reinterpret_cast<std::intptr_t>(wrote) == static_cast<std::intptr_t>(kMsg) && in == out)
    t->ok_clients.fetch_add(1);
  close(fd);
  return nullptr;
}

void* tcp_echo(void* p) {
  auto* t = static_cast<tcp_case*>(p);
  if (make_listener(*t) != 0) return reinterpret_cast<void*>(1);
  fiber_t acc = spawn(acceptor, t);
  std::vector<fiber_t> cs;
  for (int i = 0; i < kClients; ++i) cs.push_back(spawn(client, t));
  for (fiber_t c : cs) fiber_join(c, nullptr);
  fiber_join(acc, nullptr);
  close(t->listener);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(t->ok_clients.load() == kClients ? 0 : 2));
}

TEST_F(blocking_io_test, TcpEchoOverLoopbackOnOneKlt) {
  start(1, 1000);
  tcp_case t;
  EXPECT_EQ(join(spawn(tcp_echo, &t)), nullptr);
  EXPECT_EQ(t.ok_clients.load(), kClients);
}

TEST_F(blocking_io_test, TcpEchoOverLoopbackOnThreeKlts) {
  start(3, 1000);
  tcp_case t;
  EXPECT_EQ(join(spawn(tcp_echo, &t)), nullptr);
  EXPECT_EQ(t.ok_clients.load(), kClients);
}

TEST(blocking_io_control, TcpEchoWithoutInterpositionHangsOneKlt) {
  child_result r = run_child(
      [] {
        fiber_test_set_knob(FIBER_KNOB_NO_IO_INTERPOSE, 1);
        fiber_test_set_knob(FIBER_KNOB_NO_SPARE_KLT, 1);  // the interposer alone (I-MON4)
        tcp_case t;
        return run_in_fiber(1, 1000, tcp_echo, &t);
      },
      3);
  EXPECT_EQ(r, child_result::hung) << to_string(r);
}

// SO_RCVTIMEO bounds the park: EAGAIN after the timeout, others ran meanwhile.
struct rcvtimeo_case {
  int sv[2] = {-1, -1};
  std::atomic<long> rc{0};
  std::atomic<int> err{0};
  std::atomic<std::uint64_t> elapsed{0};
  progress pr;
};

void* timed_recv(void* p) {
  auto* c = static_cast<rcvtimeo_case*>(p);
  fiber_yield();
  struct timeval tv{0, 50000};
  setsockopt(c->sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::uint64_t t0 = now_ns(), c0 = c->pr.count.load();
  char b;
  long r = recv(c->sv[0], &b, 1, 0);
  c->err.store(errno);
  c->elapsed.store(now_ns() - t0);
  c->pr.during.store(c->pr.count.load() - c0);
  c->rc.store(r);
  c->pr.done.store(true);
  return nullptr;
}

TEST_F(blocking_io_test, SoRcvtimeoBoundsTheParkedRecv) {
  start(1, 200000);
  rcvtimeo_case c;
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, c.sv), 0);
  fiber_t a = spawn(counter_fiber, &c.pr), b = spawn(timed_recv, &c);
  join(b);
  join(a);
  EXPECT_EQ(c.rc.load(), -1);
  EXPECT_EQ(c.err.load(), EAGAIN);
  EXPECT_GE(c.elapsed.load(), 50 * kMs);
  EXPECT_GT(c.pr.during.load(), 100u);
  close(c.sv[0]);
  close(c.sv[1]);
}

// ---- signals ---------------------------------------------------------------------

std::atomic<int> g_usr1{0};
void on_usr1(int) { g_usr1.fetch_add(1); }

void* kill_later(void*) {
  usleep(15 * 1000);
  kill(getpid(), SIGUSR1);
  return nullptr;
}

// A program signal lands on some thread while a fiber is parked in poll: the
// handler runs and the poll returns EINTR, as a thread's would (every family,
// SA_RESTART and the controls: blocking_eintr_test.cpp).
TEST_F(blocking_io_test, ProgramSignalRunsItsHandlerAndInterruptsTheParkedPoll) {
  struct sigaction sa{}, old{};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  start(2, 1000);
  poll_case c;
  ASSERT_EQ(pipe(c.fd), 0);
  fiber_t k = spawn(kill_later), b = spawn(poller_fiber, &c), a = spawn(counter_fiber, &c.pr);
  join(k);
  join(b);
  join(a);
  EXPECT_EQ(g_usr1.load(), 1);
  EXPECT_EQ(c.rc.load(), -1);
  EXPECT_LT(c.elapsed.load(), 60 * kMs);
  close(c.fd[0]);
  close(c.fd[1]);
  sigaction(SIGUSR1, &old, nullptr);
}

// ---- fork ------------------------------------------------------------------------

void* fork_in_fiber(void*) {
  pid_t pid = fork();
  if (pid == 0) {
    // The child: one thread, no KLTs, no poller; plain blocking calls.
    int fd[2];
    if (pipe(fd) != 0) _exit(3);
    struct pollfd q{fd[0], POLLIN, 0};
    if (poll(&q, 1, 10) != 0) _exit(4);  // times out (no poller to wake it)
    if (usleep(1000) != 0) _exit(5);
    char x = 'x', y = 0;
    if (write(fd[1], &x, 1) != 1 || read(fd[0], &y, 1) != 1 || y != 'x') _exit(6);
    // Plain calls start no runtime machinery: still one thread (a parked
    // poll would have started a poller thread in the child).
    if (thread_count() != 1) _exit(7);
    _exit(0);
  }
  if (pid < 0) return reinterpret_cast<void*>(1);
  int st = 0;
  std::uint64_t give_up = now_ns() + 5000 * kMs;
  while (waitpid(pid, &st, WNOHANG) == 0) {  // parks in usleep, not the KLT
    if (now_ns() > give_up) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return reinterpret_cast<void*>(2);
    }
    usleep(1000);
  }
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(WIFEXITED(st) ? WEXITSTATUS(st) + 100 : 99));
}

TEST_F(blocking_io_test, ForkInAFiberGivesTheChildPlainBlockingCalls) {
  start(2, 1000);
  EXPECT_EQ(join(spawn(fork_in_fiber)), reinterpret_cast<void*>(100));
}

// ---- OS threads ----------------------------------------------------------------

TEST_F(blocking_io_test, OsThreadsGetLibcUnchanged) {
  start(1, 1000);
  int fd[2];
  ASSERT_EQ(pipe(fd), 0);
  struct pollfd q{fd[0], POLLIN, 0};
  std::uint64_t t0 = now_ns();
  EXPECT_EQ(poll(&q, 1, 20), 0);
  EXPECT_GE(now_ns() - t0, 20 * kMs);
  char x = 'x', y = 0;
  EXPECT_EQ(write(fd[1], &x, 1), 1);
  EXPECT_EQ(read(fd[0], &y, 1), 1);
  EXPECT_EQ(usleep(1000), 0);
  EXPECT_EQ(close(fd[0]), 0);
  EXPECT_EQ(close(fd[1]), 0);
  EXPECT_EQ(close(fd[1]), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace

