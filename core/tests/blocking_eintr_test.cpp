// core/tests/blocking_eintr_test.cpp - a program signal interrupts a fiber's
// parked blocking call as libc's system call would be interrupted
// (core/src/io_interrupt.hpp, signals_program.cpp): -1/EINTR without
// SA_RESTART; with SA_RESTART the restartable calls (read, recv, accept,
// write...) keep waiting and poll, select, epoll_wait, the sleeps and socket
// calls with SO_RCVTIMEO return EINTR anyway; SIG_IGN/SIG_DFL interrupt
// nothing; neither do the runtime's ticks.  Built twice (static, shared).
//
// Each case parks one fiber in the call, sends SIGUSR1 to the process from an
// OS thread, and if the call has not returned after kRescueMs "rescues" it
// (writes data, connects, drains) so that a call that was not interrupted
// returns normally instead of hanging.  Negative control: the knob
// FIBER_KNOB_NO_SIGNAL_INTERRUPT removes the mechanism (the EINTR cases then
// see the rescue's data: KnobOffTheCallsAreNotInterrupted).
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

constexpr std::uint64_t kSignalAfterMs = 30, kRescueMs = 250;

std::atomic<int> g_hits{0};
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_hits.fetch_add(1);
  g_stop.store(true);
}

enum class call { read_pipe, recv_sock, accept_, write_sock, poll_, select_, epoll_, nanosleep_, usleep_,
                  sleep_, clock_nanosleep_, recv_timeo, readv_pipe, writev_sock, recvmsg_sock, sendmsg_sock,
                  connect_ };

struct io_case {
  call how;
  int fd[2] = {-1, -1};
  int ep = -1;
  struct sockaddr_in addr{};
  std::atomic<long> rc{-2};
  std::atomic<int> err{0};
  std::atomic<bool> entered{false};
  std::atomic<std::uint64_t> elapsed{0};
  struct timespec rem{};
  bool block_usr1 = false;
  int timeout_ms = 2000;  // poll, select, epoll_wait
  int queued = -1;        // connect_: the connection that fills the listener's backlog
};

// signal(7): restarted under SA_RESTART unless the socket has a timeout.  A
// blocking connect without SO_SNDTIMEO is restarted too (Linux goes on waiting
// for the handshake: inet_stream_connect's SS_CONNECTING case).
bool restartable(call c) {
  return c == call::read_pipe || c == call::recv_sock || c == call::accept_ || c == call::write_sock ||
         c == call::readv_pipe || c == call::writev_sock || c == call::recvmsg_sock || c == call::sendmsg_sock ||
         c == call::connect_;
}
bool writes_big(call c) { return c == call::write_sock || c == call::writev_sock || c == call::sendmsg_sock; }

constexpr std::size_t kBig = 1 << 20;
char g_out[kBig];

long do_call(io_case& c) {
  char buf[64];
  switch (c.how) {
    case call::read_pipe: return read(c.fd[0], buf, sizeof buf);
    case call::recv_sock:
    case call::recv_timeo: return recv(c.fd[0], buf, sizeof buf, 0);
    case call::accept_: return accept(c.fd[0], nullptr, nullptr);
    case call::write_sock: return write(c.fd[0], g_out, kBig);
    case call::readv_pipe: {
      struct iovec v[2] = {{buf, 8}, {buf + 8, sizeof buf - 8}};
      return readv(c.fd[0], v, 2);
    }
    case call::writev_sock: {
      struct iovec v[2] = {{g_out, kBig / 2}, {g_out + kBig / 2, kBig - kBig / 2}};
      return writev(c.fd[0], v, 2);
    }
    case call::recvmsg_sock: {
      struct iovec v{buf, sizeof buf};
      struct msghdr m{};
      m.msg_iov = &v;
      m.msg_iovlen = 1;
      return recvmsg(c.fd[0], &m, 0);
    }
    case call::sendmsg_sock: {
      struct iovec v{g_out, kBig};
      struct msghdr m{};
      m.msg_iov = &v;
      m.msg_iovlen = 1;
      return sendmsg(c.fd[0], &m, 0);
    }
    case call::connect_:
      return connect(c.fd[1], reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr);
    case call::poll_: {
      struct pollfd p{c.fd[0], POLLIN, 0};
      return poll(&p, 1, c.timeout_ms);
    }
    case call::select_: {
      fd_set r;
      FD_ZERO(&r);
      FD_SET(c.fd[0], &r);
      struct timeval tv{c.timeout_ms / 1000, (c.timeout_ms % 1000) * 1000};
      return select(c.fd[0] + 1, &r, nullptr, nullptr, &tv);
    }
    case call::epoll_: {
      struct epoll_event ev;
      return epoll_wait(c.ep, &ev, 1, c.timeout_ms);
    }
    case call::nanosleep_: {
      struct timespec t{0, 400 * 1000000};
      return nanosleep(&t, &c.rem);
    }
    case call::clock_nanosleep_: {
      struct timespec t{0, 400 * 1000000};
      int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &c.rem);
      if (r == 0) return 0;
      errno = r;
      return -1;
    }
    case call::usleep_: return usleep(400 * 1000);
    case call::sleep_: return static_cast<long>(sleep(3));
  }
  return -3;
}

void* call_fiber(void* p) {
  auto* c = static_cast<io_case*>(p);
  if (c->block_usr1) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, nullptr);
  }
  std::uint64_t t0 = now_ns();
  c->entered.store(true);
  long r = do_call(*c);
  c->err.store(r == -1 ? errno : 0);
  c->elapsed.store(now_ns() - t0);
  c->rc.store(r);
  return nullptr;
}

void os_sleep_ms(std::uint64_t ms) {  // an OS thread: libc's nanosleep, EINTR retried
  std::uint64_t end = now_ns() + ms * kMs;
  while (now_ns() < end) {
    std::uint64_t left = end - now_ns();
    struct timespec t{static_cast<time_t>(left / 1000000000u), static_cast<long>(left % 1000000000u)};
    nanosleep(&t, nullptr);
  }
}

bool wait_done(io_case& c, std::uint64_t ms) {
  std::uint64_t end = now_ns() + ms * kMs;
  while (c.rc.load() == -2 && now_ns() < end) os_sleep_ms(1);
  return c.rc.load() != -2;
}

void setup(io_case& c) {
  switch (c.how) {
    case call::read_pipe:
    case call::readv_pipe:
    case call::poll_:
    case call::select_:
      ASSERT_EQ(pipe(c.fd), 0);
      break;
    case call::epoll_: {
      ASSERT_EQ(pipe(c.fd), 0);
      c.ep = epoll_create1(0);
      struct epoll_event ev{};
      ev.events = EPOLLIN;
      ASSERT_EQ(epoll_ctl(c.ep, EPOLL_CTL_ADD, c.fd[0], &ev), 0);
      break;
    }
    case call::recv_sock:
    case call::write_sock:
    case call::recv_timeo:
    case call::writev_sock:
    case call::recvmsg_sock:
    case call::sendmsg_sock:
      ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, c.fd), 0);
      if (c.how == call::recv_timeo) {
        struct timeval tv{2, 0};
        ASSERT_EQ(setsockopt(c.fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
      }
      if (writes_big(c.how)) {  // fill the buffers: the fiber's write parks at once
        while (send(c.fd[0], g_out, 4096, MSG_DONTWAIT) > 0) {
        }
      }
      break;
    case call::connect_: {
      // A listener whose accept queue is full (backlog 0 holds one unaccepted
      // connection): the kernel drops the next SYN, so the fiber's connect
      // waits for the handshake (the client retransmits the SYN after ~1 s).
      c.fd[0] = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(c.fd[0], 0);
      c.addr.sin_family = AF_INET;
      c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof c.addr;
      ASSERT_EQ(bind(c.fd[0], reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr), 0);
      ASSERT_EQ(getsockname(c.fd[0], reinterpret_cast<sockaddr*>(&c.addr), &len), 0);
      ASSERT_EQ(listen(c.fd[0], 0), 0);
      c.queued = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_EQ(connect(c.queued, reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr), 0);
      c.fd[1] = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(c.fd[1], 0);
      break;
    }
    case call::accept_: {
      c.fd[0] = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(c.fd[0], 0);
      c.addr.sin_family = AF_INET;
      c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof c.addr;
      ASSERT_EQ(bind(c.fd[0], reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr), 0);
      ASSERT_EQ(getsockname(c.fd[0], reinterpret_cast<sockaddr*>(&c.addr), &len), 0);
      ASSERT_EQ(listen(c.fd[0], 4), 0);
      break;
    }
    default:
      break;
  }
}

// Makes a call that was not interrupted return normally.
void rescue(io_case& c) {
  switch (c.how) {
    case call::read_pipe:
    case call::readv_pipe:
    case call::poll_:
    case call::select_:
    case call::epoll_:
      ASSERT_EQ(write(c.fd[1], "x", 1), 1);
      break;
    case call::recv_sock:
    case call::recv_timeo:
    case call::recvmsg_sock:
      ASSERT_EQ(send(c.fd[1], "x", 1, 0), 1);
      break;
    case call::connect_: {  // room in the accept queue: the retransmitted SYN gets in
      int a = accept(c.fd[0], nullptr, nullptr);
      ASSERT_GE(a, 0);
      close(a);
      break;
    }
    case call::accept_: {
      c.fd[1] = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_EQ(connect(c.fd[1], reinterpret_cast<sockaddr*>(&c.addr), sizeof c.addr), 0);
      break;
    }
    case call::write_sock:
    case call::writev_sock:
    case call::sendmsg_sock: {  // drain until the fiber's write is done
      static char sink[65536];
      while (c.rc.load() == -2) recv(c.fd[1], sink, sizeof sink, MSG_DONTWAIT);
      break;
    }
    default:
      break;
  }
}

void teardown(io_case& c) {
  if (c.rc.load() > 2 && c.how == call::accept_) close(static_cast<int>(c.rc.load()));
  for (int fd : c.fd)
    if (fd >= 0) close(fd);
  if (c.queued >= 0) close(c.queued);
  if (c.ep >= 0) close(c.ep);
}

class blocking_eintr_test : public runtime_test {
 protected:
  void SetUp() override {
    g_hits.store(0);
    g_stop.store(false);
  }
  void TearDown() override {
    fiber_test_set_knob(FIBER_KNOB_NO_SIGNAL_INTERRUPT, 0);
    runtime_test::TearDown();
    if (installed_) sigaction(SIGUSR1, &old_, nullptr);
  }
  void handle_usr1(int flags) {
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    ASSERT_EQ(sigaction(SIGUSR1, &sa, installed_ ? nullptr : &old_), 0);
    installed_ = true;
  }
  // Parks a fiber in c's call, signals the process, rescues if needed.
  void run_case(io_case& c, int klts = 2) {
    setup(c);
    if (::testing::Test::HasFatalFailure()) return;
    start(klts, 1000);
    fiber_t f = spawn(call_fiber, &c);
    ASSERT_NE(f, 0u);
    while (!c.entered.load()) os_sleep_ms(1);
    os_sleep_ms(kSignalAfterMs);
    kill(getpid(), SIGUSR1);
    if (!wait_done(c, kRescueMs)) rescue(c);
    join(f);
    teardown(c);
  }
  void expect_eintr(io_case& c) {
    EXPECT_EQ(c.rc.load(), -1);
    EXPECT_EQ(c.err.load(), EINTR) << strerror(c.err.load());
    EXPECT_LT(c.elapsed.load(), (kSignalAfterMs + kRescueMs / 2) * kMs);  // not the rescue
  }
  void expect_rescued(io_case& c) {
    if (c.how == call::connect_)
      EXPECT_EQ(c.rc.load(), 0) << "errno " << strerror(c.err.load());
    else
      EXPECT_GT(c.rc.load(), 0) << "errno " << strerror(c.err.load());
    EXPECT_GE(c.elapsed.load(), (kSignalAfterMs + kRescueMs) * kMs);
  }
  struct sigaction old_{};
  bool installed_ = false;
};

const call kAll[] = {call::read_pipe, call::recv_sock, call::accept_,     call::write_sock,
                     call::poll_,     call::select_,   call::epoll_,      call::nanosleep_,
                     call::usleep_,   call::sleep_,    call::clock_nanosleep_, call::recv_timeo,
                     call::readv_pipe, call::writev_sock, call::recvmsg_sock, call::sendmsg_sock,
                     call::connect_};

// ---- without SA_RESTART: every family returns EINTR ---------------------------------

TEST_F(blocking_eintr_test, WithoutSaRestartEveryParkedCallReturnsEintr) {
  handle_usr1(0);
  for (call how : kAll) {
    SCOPED_TRACE(static_cast<int>(how));
    io_case c{how};
    run_case(c);
    fiber_shutdown();
    if (how == call::sleep_) {  // sleep(3): the whole seconds left, 2 after ~30 ms
      EXPECT_EQ(c.rc.load(), 2);
      EXPECT_LT(c.elapsed.load(), 200 * kMs);
    } else {
      expect_eintr(c);
    }
    if (how == call::nanosleep_ || how == call::clock_nanosleep_) {  // the time left, as the kernel says
      std::uint64_t left = static_cast<std::uint64_t>(c.rem.tv_sec) * 1000000000u + c.rem.tv_nsec;
      EXPECT_GT(left, 200 * kMs);
      EXPECT_LE(left + c.elapsed.load(), 400 * kMs + 5 * kMs);
    }
  }
  EXPECT_EQ(g_hits.load(), static_cast<int>(sizeof kAll / sizeof kAll[0]));
}

// ---- with SA_RESTART: the restartable ones go on, the others do not ----------------------

TEST_F(blocking_eintr_test, WithSaRestartOnlyTheNeverRestartedCallsReturnEintr) {
  handle_usr1(SA_RESTART);
  for (call how : kAll) {
    SCOPED_TRACE(static_cast<int>(how));
    io_case c{how};
    run_case(c);
    fiber_shutdown();
    if (restartable(how)) {
      expect_rescued(c);
      if (writes_big(how)) {
        EXPECT_EQ(c.rc.load(), static_cast<long>(kBig));  // all of it
      }
    } else if (how == call::sleep_) {
      EXPECT_EQ(c.rc.load(), 2);
    } else {
      expect_eintr(c);
    }
  }
}

// ---- dispositions that interrupt nothing ------------------------------------------------

TEST_F(blocking_eintr_test, IgnoredSignalInterruptsNothing) {
  struct sigaction ign{}, old{};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGUSR1, &ign, &old), 0);
  io_case c{call::poll_};
  run_case(c);
  sigaction(SIGUSR1, &old, nullptr);
  expect_rescued(c);
}

// SIGURG's default action is to ignore it: nothing is interrupted either.
TEST_F(blocking_eintr_test, DefaultIgnoredSignalInterruptsNothing) {
  struct sigaction dfl{}, old{};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(sigaction(SIGURG, &dfl, &old), 0);
  io_case c{call::read_pipe};
  setup(c);
  start(2, 1000);
  fiber_t f = spawn(call_fiber, &c);
  while (!c.entered.load()) os_sleep_ms(1);
  os_sleep_ms(kSignalAfterMs);
  kill(getpid(), SIGURG);
  if (!wait_done(c, kRescueMs)) rescue(c);
  join(f);
  teardown(c);
  sigaction(SIGURG, &old, nullptr);
  expect_rescued(c);
}

// ---- who is interrupted -----------------------------------------------------------------

// A fiber whose own mask blocks the signal is not interrupted (I8).
TEST_F(blocking_eintr_test, FiberThatBlocksTheSignalIsNotInterrupted) {
  handle_usr1(0);
  io_case c{call::read_pipe};
  c.block_usr1 = true;
  run_case(c);
  expect_rescued(c);
  EXPECT_EQ(g_hits.load(), 1);  // the handler ran elsewhere
}

// Every qualifying parked fiber, not one: the design choice (papers/design.md 14.6).
TEST_F(blocking_eintr_test, OneSignalInterruptsEveryParkedFiber) {
  handle_usr1(0);
  constexpr int kN = 4;
  io_case c[kN] = {io_case{call::read_pipe}, io_case{call::recv_sock}, io_case{call::poll_},
                   io_case{call::nanosleep_}};
  for (auto& x : c) setup(x);
  start(2, 1000);
  fiber_t f[kN];
  for (int i = 0; i < kN; ++i) f[i] = spawn(call_fiber, &c[i]);
  for (auto& x : c)
    while (!x.entered.load()) os_sleep_ms(1);
  os_sleep_ms(kSignalAfterMs);
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < kN; ++i) {
    if (!wait_done(c[i], kRescueMs)) rescue(c[i]);
    join(f[i]);
    teardown(c[i]);
    SCOPED_TRACE(i);
    expect_eintr(c[i]);
  }
  EXPECT_EQ(g_hits.load(), 1);
}

// Readiness that arrived before the signal wins (io_fiber.cpp wait_intr; I-RD4):
// a thread whose read had completed when the signal came returns the data.
// On one cooperative KLT the reader parks, the holder writes, keeps the KLT
// for 100 ms (the poller grants the reader meanwhile), then signals: the
// reader wakes granted with the signal pending and must read the byte.  A
// grant slower than 100 ms would make EINTR legitimate, so up to three tries.
struct race_state {
  int fd[2] = {-1, -1};
  std::atomic<long> rc{-2};
  std::atomic<int> err{0};
};
void* race_reader(void* p) {
  auto* s = static_cast<race_state*>(p);
  char b[8];
  long n = read(s->fd[0], b, sizeof b);
  s->err.store(errno);
  s->rc.store(n);
  return nullptr;
}
void* race_holder(void* p) {
  auto* s = static_cast<race_state*>(p);
  EXPECT_EQ(write(s->fd[1], "x", 1), 1);
  spin_for(100 * kMs);  // the KLT stays here: the reader cannot run yet
  kill(getpid(), SIGUSR1);
  spin_for(20 * kMs);
  return nullptr;
}

TEST_F(blocking_eintr_test, ReadinessBeforeTheSignalWins) {
  handle_usr1(0);
  long rc = -2;
  int err = 0;
  for (int attempt = 0; attempt < 3 && rc != 1; ++attempt) {
    race_state s;
    ASSERT_EQ(pipe(s.fd), 0);
    start(1, 0);  // one KLT, cooperative: the reader runs first and parks
    fiber_t r = spawn(race_reader, &s);
    fiber_t h = spawn(race_holder, &s);
    ASSERT_NE(r, 0u);
    ASSERT_NE(h, 0u);
    join(h);
    join(r);
    fiber_shutdown();
    rc = s.rc.load();
    err = s.err.load();
    close(s.fd[0]);
    close(s.fd[1]);
  }
  EXPECT_EQ(rc, 1) << "errno " << strerror(err);
  EXPECT_GE(g_hits.load(), 1);
}

// The classic loop of a thread program ends in a fiber.
struct loop_state {
  int fd[2];
  std::atomic<int> eintr{0}, data{0};
  std::atomic<bool> done{false};
};
void* stop_loop(void* p) {
  auto* s = static_cast<loop_state*>(p);
  char b[16];
  while (!g_stop.load()) {
    ssize_t n = read(s->fd[0], b, sizeof b);
    if (n < 0 && errno == EINTR) {
      s->eintr.fetch_add(1);
      continue;
    }
    if (n > 0) s->data.fetch_add(1);
  }
  s->done.store(true);
  return nullptr;
}

TEST_F(blocking_eintr_test, StopFlagLoopEndsOnTheSignal) {
  handle_usr1(0);
  loop_state s;
  ASSERT_EQ(pipe(s.fd), 0);
  start(1, 1000);
  fiber_t f = spawn(stop_loop, &s);
  os_sleep_ms(kSignalAfterMs);
  kill(getpid(), SIGUSR1);
  std::uint64_t end = now_ns() + kRescueMs * kMs;
  while (!s.done.load() && now_ns() < end) os_sleep_ms(1);
  bool ended = s.done.load();
  if (!ended) {  // not interrupted: end it by hand (stop is set) so the test does not hang
    g_stop.store(true);
    ASSERT_EQ(write(s.fd[1], "x", 1), 1);
  }
  join(f);
  close(s.fd[0]);
  close(s.fd[1]);
  EXPECT_TRUE(ended);
  EXPECT_EQ(s.eintr.load(), 1);
  EXPECT_EQ(s.data.load(), 0);
}

// ---- the runtime's ticks never interrupt ------------------------------------------------

struct spin_state {
  std::atomic<bool> stop{false};
};
void* spinner(void* p) {
  auto* s = static_cast<spin_state*>(p);
  while (!s->stop.load()) spin(1000);
  return nullptr;
}

// A 1 ms quantum, two KLTs kept busy by spinners (ticks keep coming), a
// program handler without SA_RESTART installed but never raised: a read
// rescued after kRescueMs, a 400 ms usleep and nanosleep and a 300 ms poll
// timeout all complete in full.
TEST_F(blocking_eintr_test, TicksNeverInterruptAParkedCall) {
  handle_usr1(0);
  const call kinds[] = {call::read_pipe, call::usleep_, call::nanosleep_, call::poll_};
  io_case c[4] = {io_case{kinds[0]}, io_case{kinds[1]}, io_case{kinds[2]}, io_case{kinds[3]}};
  c[3].timeout_ms = 300;
  for (auto& x : c) setup(x);
  start(2, 1000);
  spin_state s;
  fiber_t sp[2] = {spawn(spinner, &s), spawn(spinner, &s)};
  fiber_t f[4];
  for (int i = 0; i < 4; ++i) f[i] = spawn(call_fiber, &c[i]);
  os_sleep_ms(kRescueMs);
  if (c[0].rc.load() == -2) rescue(c[0]);
  for (int i = 0; i < 4; ++i) join(f[i]);
  s.stop.store(true);
  join(sp[0]);
  join(sp[1]);
  for (auto& x : c) teardown(x);
  EXPECT_GT(c[0].rc.load(), 0) << strerror(c[0].err.load());
  EXPECT_EQ(c[1].rc.load(), 0) << strerror(c[1].err.load());
  EXPECT_EQ(c[2].rc.load(), 0) << strerror(c[2].err.load());
  EXPECT_GE(c[2].elapsed.load(), 400 * kMs);
  EXPECT_EQ(c[3].rc.load(), 0) << strerror(c[3].err.load());  // the timeout, in full
  EXPECT_GE(c[3].elapsed.load(), 300 * kMs);
  EXPECT_GE(c[1].elapsed.load(), 400 * kMs);
  EXPECT_EQ(g_hits.load(), 0);
}

// A program-sent preemption signal (SIGPROF) with the program's handler is the
// program's signal: it interrupts (signals_forward), while the ticks of the
// same signal number do not.
std::atomic<int> g_prof{0};
void on_prof(int) { g_prof.fetch_add(1); }
TEST_F(blocking_eintr_test, ProgramSentPreemptionSignalInterrupts) {
  io_case c{call::read_pipe};
  setup(c);
  start(2, 1000);
  struct sigaction sa{}, old{};
  sa.sa_handler = on_prof;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGPROF, &sa, &old), 0);
  fiber_t f = spawn(call_fiber, &c);
  while (!c.entered.load()) os_sleep_ms(1);
  os_sleep_ms(kSignalAfterMs);
  kill(getpid(), SIGPROF);
  if (!wait_done(c, kRescueMs)) rescue(c);
  join(f);
  teardown(c);
  sigaction(SIGPROF, &old, nullptr);
  EXPECT_GE(g_prof.load(), 1);
  expect_eintr(c);
}

// ---- the program's view of its handlers ---------------------------------------------------

void on_once(int) { g_hits.fetch_add(1); }

TEST_F(blocking_eintr_test, SigactionReportsTheProgramsHandlerNotTheTrampoline) {
  struct sigaction sa{}, got{}, old{};
  sa.sa_handler = on_once;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR2);
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &got), 0);
  EXPECT_EQ(got.sa_handler, on_once);
  EXPECT_EQ(got.sa_flags & (SA_RESTART | SA_RESETHAND | SA_SIGINFO), SA_RESTART | SA_RESETHAND);
  EXPECT_TRUE(sigismember(&got.sa_mask, SIGUSR2));
  raise(SIGUSR1);  // SA_RESETHAND: the kernel puts SIG_DFL back
  EXPECT_EQ(g_hits.load(), 1);
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &got), 0);
  EXPECT_EQ(got.sa_handler, SIG_DFL);
  EXPECT_EQ(signal(SIGUSR1, on_once), SIG_DFL);
  EXPECT_EQ(signal(SIGUSR1, SIG_IGN), on_once);
  sigaction(SIGUSR1, &old, nullptr);
}

// ---- negative control -------------------------------------------------------------------

// FIBER_KNOB_NO_SIGNAL_INTERRUPT: the handler runs, the call is not cut short
// (the rescue's data or connection arrives): what every EINTR expectation
// above depends on, shown for each restartable family.
TEST_F(blocking_eintr_test, KnobOffTheCallsAreNotInterrupted) {
  handle_usr1(0);
  fiber_test_set_knob(FIBER_KNOB_NO_SIGNAL_INTERRUPT, 1);
  int n = 0;
  for (call how : kAll) {
    if (!restartable(how)) continue;
    SCOPED_TRACE(static_cast<int>(how));
    io_case c{how};
    run_case(c);
    fiber_shutdown();
    EXPECT_EQ(g_hits.load(), ++n);
    expect_rescued(c);
  }
}

}  // namespace
