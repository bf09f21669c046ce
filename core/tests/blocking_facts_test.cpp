// core/tests/blocking_facts_test.cpp - the facts cached per descriptor so that
// a parking call skips fcntl/getsockopt/epoll_ctl (core/src/poller.hpp
// "facts", io_fiber.cpp check_park, interpose_fd.cpp): the cache is used, and
// every invalidating call the runtime sees makes the next park take the slow
// path again, with the right result (EAGAIN for a now non-blocking
// descriptor, the new timeout).  Changes behind the runtime's back (raw
// system calls) are caught by the poller's sweep: a delay, never a hang or a
// wrong result (controls, in forked children with a timeout).  Built twice
// (static, shared).
//
// The counters (fiber_test_get_io_counters) count slow paths; a measurement
// during which the poller swept (every facts expires then) is repeated.
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "test_util.hpp"

using namespace fiber_test;

namespace {

fiber_test_io_counters_t io_counters() {
  fiber_test_io_counters_t c;
  fiber_test_get_io_counters(&c);
  return c;
}

void* send_later(void* p) {
  int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(p));
  fiber_sleep_ns(5 * kMs);
  if (write(fd, "a", 1) != 1) return reinterpret_cast<void*>(1);
  return nullptr;
}

// A one-byte read that parks (the peer sends 5 ms later).  Returns the slow
// paths it took, or -1 when the read failed.
long parked_read(int rfd, int wfd) {
  std::uint64_t s0 = io_counters().slow_paths;
  fiber_t w = spawn(send_later, reinterpret_cast<void*>(static_cast<std::intptr_t>(wfd)));
  char b;
  long r = read(rfd, &b, 1);
  fiber_join(w, nullptr);
  return r == 1 ? static_cast<long>(io_counters().slow_paths - s0) : -1;
}

enum class change { setfl, fionbio, rcvtimeo, dup2_, pipe2_renews, setfl_raw, reuse_raw };

struct facts_case {
  change how;
  int sv[2] = {-1, -1};
  std::atomic<long> cached{-9}, after{-9}, rc{-9};
  std::atomic<int> err{0};
  std::atomic<std::uint64_t> took{0};
};

// Closes fd behind the runtime's back and opens pipes (interposed pipe2,
// O_NONBLOCK) until a read end gets fd's number (*peer: its write end); the
// others are closed.  -1 when fd went to a write end.
int reuse_with_pipe2(int fd, int* peer) {
  syscall(SYS_close, fd);
  std::vector<int> extra;
  int got = -1;
  for (int i = 0; i < 64 && got < 0; ++i) {
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0) break;
    if (p[0] == fd) {
      got = p[0], *peer = p[1];
    } else {
      extra.push_back(p[0]), extra.push_back(p[1]);
      if (p[1] == fd) break;
    }
  }
  for (int e : extra) close(e);
  return got;
}

// The same with raw socketpair system calls (nothing renews the number).
int reuse_raw(int fd, int* peer) {
  syscall(SYS_close, fd);
  std::vector<int> extra;
  int got = -1;
  for (int i = 0; i < 64 && got < 0; ++i) {
    int s[2];
    if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, s) != 0) break;
    if (s[0] == fd) got = s[0], *peer = s[1];
    else extra.push_back(s[0]), extra.push_back(s[1]);
  }
  for (int e : extra) syscall(SYS_close, e);
  return got;
}

void apply(facts_case& c) {
  int fd = c.sv[0];
  switch (c.how) {
    case change::setfl: fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); break;
    case change::setfl_raw: syscall(SYS_fcntl, fd, F_SETFL, syscall(SYS_fcntl, fd, F_GETFL) | O_NONBLOCK); break;
    case change::fionbio: {
      int one = 1;
      ioctl(fd, FIONBIO, &one);
      break;
    }
    case change::rcvtimeo: {
      struct timeval tv{0, 50000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      break;
    }
    case change::dup2_: {
      int nb[2];
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, nb);
      dup2(nb[0], fd);  // fd is now a non-blocking socket with nothing to read
      close(nb[0]);
      close(c.sv[1]);
      c.sv[1] = nb[1];
      break;
    }
    case change::pipe2_renews: {
      int peer = -1;
      if (reuse_with_pipe2(fd, &peer) != fd) c.rc.store(-100);  // could not get the number back
      close(c.sv[1]);
      c.sv[1] = peer;
      break;
    }
    case change::reuse_raw: {
      int peer = -1;
      if (reuse_raw(fd, &peer) != fd) c.rc.store(-100);
      syscall(SYS_close, c.sv[1]);
      c.sv[1] = peer;
      break;
    }
  }
}

// Sends a byte to fd after 2 s unless *done: a read that a broken cache
// leaves parked returns (and fails the test) instead of hanging it.
struct rescue_arg {
  int fd;
  std::atomic<bool> done{false};
};
void* rescue_later(void* p) {
  auto* a = static_cast<rescue_arg*>(p);
  for (int i = 0; i < 200 && !a->done.load(); ++i) fiber_sleep_ns(10 * kMs);
  if (!a->done.load() && write(a->fd, "r", 1) != 1) return reinterpret_cast<void*>(1);
  return nullptr;
}

void* facts_fiber(void* p) {
  auto* c = static_cast<facts_case*>(p);
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->sv) != 0) return nullptr;
  for (int attempt = 0; attempt < 5; ++attempt) {  // a sweep in between voids the facts: again
    std::uint64_t sweeps = io_counters().sweeps;
    parked_read(c->sv[0], c->sv[1]);                 // learns the facts (or finds them)
    long second = parked_read(c->sv[0], c->sv[1]);   // uses them: no slow path
    c->cached.store(second);
    if (io_counters().sweeps == sweeps) break;
  }
  apply(*c);
  if (c->rc.load() == -100) return nullptr;
  fiber_t w = 0;
  if (c->how == change::reuse_raw)  // the new socket's peer sends: the read must see it
    w = spawn(send_later, reinterpret_cast<void*>(static_cast<std::intptr_t>(c->sv[1])));
  rescue_arg ra;
  ra.fd = c->sv[1];
  fiber_t rs = c->how == change::reuse_raw || c->how == change::setfl_raw ? 0 : spawn(rescue_later, &ra);
  std::uint64_t s0 = io_counters().slow_paths, t0 = now_ns();
  char b;
  long r = read(c->sv[0], &b, 1);
  ra.done.store(true);
  if (rs) fiber_join(rs, nullptr);
  c->err.store(r < 0 ? errno : 0);
  c->took.store(now_ns() - t0);
  c->after.store(static_cast<long>(io_counters().slow_paths - s0));
  c->rc.store(r);
  if (w) fiber_join(w, nullptr);
  for (int fd : c->sv)
    if (fd >= 0) close(fd);
  return nullptr;
}

// For the forked controls (no gtest in there).
int run_in_fiber_for_facts(facts_case* c) {
  fiber_config_t cf = config(2, 1000);
  if (fiber_init(&cf) != 0) return 10;
  fiber_t f = spawn(facts_fiber, c);
  if (!f || fiber_join(f, nullptr) != 0) return 11;
  fiber_shutdown();
  return 0;
}

class blocking_facts_test : public runtime_test {
 protected:
  void run(facts_case& c) {
    start(2, 1000);
    join(spawn(facts_fiber, &c));
    ASSERT_NE(c.rc.load(), -100) << "the descriptor number was not reused";
    EXPECT_EQ(c.cached.load(), 0) << "the second park took the slow path: no cached facts";
  }
  // The change is seen at once: the read takes the slow path and gets EAGAIN.
  void expect_eagain_now(facts_case& c) {
    EXPECT_EQ(c.after.load(), 1);
    EXPECT_EQ(c.rc.load(), -1);
    EXPECT_EQ(c.err.load(), EAGAIN);
    EXPECT_LT(c.took.load(), 100 * kMs);
  }
};

TEST_F(blocking_facts_test, FcntlSetflNonblockIsSeenByTheNextCall) {
  facts_case c{change::setfl};
  run(c);
  expect_eagain_now(c);
}

TEST_F(blocking_facts_test, IoctlFionbioIsSeenByTheNextCall) {
  facts_case c{change::fionbio};
  run(c);
  expect_eagain_now(c);
}

TEST_F(blocking_facts_test, Dup2OntoTheNumberIsSeenByTheNextCall) {
  facts_case c{change::dup2_};
  run(c);
  expect_eagain_now(c);
}

// A new descriptor (pipe2 here; socket, socketpair, pipe, accept, dup the
// same) renews whatever was cached for its number, even after a close the
// runtime did not see.
TEST_F(blocking_facts_test, NewDescriptorOnACachedNumberIsSeenByTheNextCall) {
  facts_case c{change::pipe2_renews};
  run(c);
  expect_eagain_now(c);
}

TEST_F(blocking_facts_test, SetsockoptRcvtimeoBoundsTheNextCall) {
  facts_case c{change::rcvtimeo};
  run(c);
  EXPECT_EQ(c.after.load(), 1);
  EXPECT_EQ(c.rc.load(), -1);
  EXPECT_EQ(c.err.load(), EAGAIN);
  EXPECT_GE(c.took.load(), 45 * kMs);
  EXPECT_LT(c.took.load(), 500 * kMs);
}

// ---- behind the runtime's back: the sweep (controls) --------------------------------

// O_NONBLOCK set with a raw system call: the stale fact makes the read park,
// until a sweep finds the flag and wakes it; then EAGAIN, as it should.
TEST(blocking_facts_control, RawFcntlNonblockCostsADelayNotAHang) {
  child_result r = run_child(
      [] {
        facts_case c{change::setfl_raw};
        if (run_in_fiber_for_facts(&c) != 0) return 1;
        if (c.rc.load() != -1 || c.err.load() != EAGAIN) return 2;
        return c.took.load() < 3000 * kMs ? 0 : 3;
      },
      6);
  EXPECT_EQ(r, child_result::ok) << to_string(r);
}

// The number closed and reused by raw system calls: "registered" is stale
// (the new socket is not in the epoll set), the peer's byte makes no edge;
// the sweep registers it (EPOLL_CTL_ADD reports it readable) and the read
// returns the byte.
TEST(blocking_facts_control, RawReuseOfARegisteredNumberCostsADelayNotAHang) {
  child_result r = run_child(
      [] {
        facts_case c{change::reuse_raw};
        if (run_in_fiber_for_facts(&c) != 0) return 1;
        if (c.rc.load() == -100) return 0;  // the number was taken meanwhile: nothing shown
        if (c.rc.load() != 1) return 2;
        return c.took.load() < 3000 * kMs ? 0 : 3;
      },
      6);
  EXPECT_EQ(r, child_result::ok) << to_string(r);
}

}  // namespace
