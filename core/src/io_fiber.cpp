// core/src/io_fiber.cpp - a fiber's blocking I/O: try the call without
// blocking; when it would block, park on the descriptor's readiness
// (readiness.hpp, poller.hpp) and try again.  The transparent interposers
// (interpose_io.cpp) and the explicit API (fiber_read, fiber_write,
// fiber_poll in fiber.h) both call these.
//
// How a call is tried without blocking, without touching the descriptor's
// flags (another process may share the open file description - a shell's
// terminal, say - and would see O_NONBLOCK appear):
//   * sockets: the same call with MSG_DONTWAIT (read and write on a socket are
//     recv and send with no flags).  One system call when data is there.
//   * anything else (pipes, FIFOs, terminals, eventfds): poll() with a zero
//     timeout, then the call.  A pipe write is cut into pieces of at most
//     PIPE_BUF bytes, each of which fits once poll says writable (Linux: a free
//     pipe buffer slot), so the KLT never blocks on a full pipe.  Limit: two
//     parties reading one pipe (or accepting on one socket) can both see it
//     ready and one of them then blocks its KLT until more comes (documented).
//   * regular files: always "ready"; the call blocks the KLT for the disk's
//     time, as before (no readiness path on Linux without io_uring).
// Which of these a descriptor is, is a per-number hint (a wrong hint costs a
// retry or a slower path, never a blocked KLT: a "socket" that is not one
// fails with ENOTSOCK and is re-learnt).
//
// Semantics kept: a descriptor the user made non-blocking (O_NONBLOCK, or
// MSG_DONTWAIT in the flags) gets EAGAIN as before - checked with F_GETFL only
// on the slow path; SO_RCVTIMEO / SO_SNDTIMEO bound the park (EAGAIN, or
// EINPROGRESS for connect, as Linux); a blocking write or send returns when
// everything is written (or an error after a partial write: the count).
// EINTR: a program signal interrupts a parked call as io_interrupt.hpp says
// (SA_RESTART restarts a call with no socket timeout; after a partial write
// the count is returned); the runtime's ticks never do.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <new>

#include "fiber/detail/testing.h"
#include "io_fiber.hpp"
#include "idle_poll.hpp"
#include "io_interrupt.hpp"
#include "io_real.hpp"
#include "offload.hpp"
#include "poller.hpp"

namespace fiber::detail {

namespace {

__attribute__((constructor)) void resolve_io_symbols() {
  (void)FIBER_REAL(read), (void)FIBER_REAL(write), (void)FIBER_REAL(readv), (void)FIBER_REAL(writev);
  (void)FIBER_REAL(recvfrom), (void)FIBER_REAL(recvmsg), (void)FIBER_REAL(sendto);
  (void)FIBER_REAL(sendmsg), (void)FIBER_REAL(accept4), (void)FIBER_REAL(connect);
  (void)FIBER_REAL(poll), (void)FIBER_REAL(close);
}

// ---- libc's calls (raw system calls in a fully static program) -------------

ssize_t r_read(int fd, void* b, size_t n) {
  if (auto f = FIBER_REAL(read)) return f(fd, b, n);
  return syscall(SYS_read, fd, b, n);
}
ssize_t r_write(int fd, const void* b, size_t n) {
  if (auto f = FIBER_REAL(write)) return f(fd, b, n);
  return syscall(SYS_write, fd, b, n);
}
ssize_t r_readv(int fd, const struct iovec* v, int c) {
  if (auto f = FIBER_REAL(readv)) return f(fd, v, c);
  return syscall(SYS_readv, fd, v, c);
}
ssize_t r_writev(int fd, const struct iovec* v, int c) {
  if (auto f = FIBER_REAL(writev)) return f(fd, v, c);
  return syscall(SYS_writev, fd, v, c);
}
ssize_t r_recvfrom(int fd, void* b, size_t n, int fl, struct sockaddr* a, socklen_t* l) {
  if (auto f = FIBER_REAL(recvfrom)) return f(fd, b, n, fl, a, l);
  return syscall(SYS_recvfrom, fd, b, n, fl, a, l);
}
ssize_t r_recvmsg(int fd, struct msghdr* m, int fl) {
  if (auto f = FIBER_REAL(recvmsg)) return f(fd, m, fl);
  return syscall(SYS_recvmsg, fd, m, fl);
}
ssize_t r_sendto(int fd, const void* b, size_t n, int fl, const struct sockaddr* a, socklen_t l) {
  if (auto f = FIBER_REAL(sendto)) return f(fd, b, n, fl, a, l);
  return syscall(SYS_sendto, fd, b, n, fl, a, l);
}
ssize_t r_sendmsg(int fd, const struct msghdr* m, int fl) {
  if (auto f = FIBER_REAL(sendmsg)) return f(fd, m, fl);
  return syscall(SYS_sendmsg, fd, m, fl);
}
int r_accept4(int fd, struct sockaddr* a, socklen_t* l, int fl) {
  if (auto f = FIBER_REAL(accept4)) return f(fd, a, l, fl);
  return static_cast<int>(syscall(SYS_accept4, fd, a, l, fl));
}
int r_connect(int fd, const struct sockaddr* a, socklen_t l) {
  if (auto f = FIBER_REAL(connect)) return f(fd, a, l);
  return static_cast<int>(syscall(SYS_connect, fd, a, l));
}

// ---- descriptor kind hints ---------------------------------------------------

// kOther: neither a socket nor a regular file (a pipe, a tty...); kFile: a
// regular file or block device, which epoll cannot watch (io_file.cpp).
constexpr unsigned char kUnknown = 0, kSocket = 1, kOther = 2, kFile = 3;  // descriptor kinds
constexpr int kHints = 1 << 16;
std::atomic<unsigned char> g_kind[kHints];

unsigned char kind_of(int fd) noexcept {
  // relaxed: a hint; a wrong one costs a retry (file comment).
  return fd >= 0 && fd < kHints ? g_kind[fd].load(std::memory_order_relaxed) : kUnknown;
}
void set_kind(int fd, unsigned char k) noexcept {
  if (fd >= 0 && fd < kHints) g_kind[fd].store(k, std::memory_order_relaxed);  // relaxed: a hint
}

// ---- the park loop -----------------------------------------------------------

ssize_t would_block() noexcept {
  fresh_errno() = EAGAIN;
  return -1;
}

// Ready in `ev` (or in error, hung up, invalid: the call itself reports it).
bool poll_ready(int fd, short ev) noexcept {
  struct pollfd p{fd, ev, 0};
  return poll_now(&p, 1) != 0;
}

bool user_nonblocking(int fd) noexcept {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || (fl & O_NONBLOCK) != 0;
}

// SO_RCVTIMEO / SO_SNDTIMEO as a deadline (none when unset or not a socket).
std::uint64_t sock_deadline(int fd, int opt) noexcept {
  if (opt == 0) return kNoDeadline;
  struct timeval tv{};
  socklen_t len = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
    return kNoDeadline;
  return native_seam::now_ns() + static_cast<std::uint64_t>(tv.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(tv.tv_usec) * 1000u;
}

// Parks on r until an edge since `seen` (1: try again), the deadline (0) or a
// program signal that interrupts the call (-1; io_interrupt.hpp).  The node
// is off the queue on return (I-RD4); readiness wins over a signal.
int wait_intr(readiness& r, std::uint32_t seen, std::uint64_t deadline, std::uint64_t since,
              bool restartable) noexcept {
  parker& p = native_seam::current_parker();
  readiness::node n(&p);
  intr_guard g(p);
  if (g.enter(since, restartable)) return -1;  // linked, then checked (I-INT1)
  if (!r.enqueue(n, seen)) return 1;
  native_seam::note_wait(p, wait_kind::io, &r);
  bool timed_out = false;
  while (!n.granted() && !(timed_out = p.park_until(deadline)) && !intr_pending(since, restartable)) {
  }
  if (r.dequeue(n)) return 1;
  if (intr_pending(since, restartable)) return -1;
  return timed_out ? 0 : 1;
}

ssize_t interrupted() noexcept {
  fresh_errno() = EINTR;
  return -1;
}

std::atomic<std::uint64_t> g_slow_paths{0};  // fiber_test_get_io_counters

// The slow path before a park (poller.hpp, "facts"): 1 when the call may
// park (deadline set), 0 when it must return EAGAIN (the user's O_NONBLOCK),
// -1 when fd has no readiness path.  Cached facts skip it.
int check_park(int fd, io_dir d, int opt, std::uint64_t* deadline, bool* checked) noexcept {
  unsigned plain = d == io_dir::in ? kFactPlainIn : kFactPlainOut;
  if ((io_facts(fd) & (kFactRegistered | plain)) == (kFactRegistered | plain)) {
    *deadline = kNoDeadline;  // not *checked: a later wake-up looks at the facts again
    return 1;
  }
  g_slow_paths.fetch_add(1, std::memory_order_relaxed);  // relaxed: a test counter
  std::uint64_t stamp = io_facts_stamp(fd);
  if (user_nonblocking(fd)) return 0;
  *deadline = sock_deadline(fd, opt);
  if (io_register(fd) != 0) return -1;
  *checked = true;
  io_facts_store(fd, stamp, kFactRegistered | (*deadline == kNoDeadline ? plain : 0));
  return 1;
}

// attempt(false) must not block (-1/EAGAIN when it would); attempt(true) is
// the plain blocking call, for a descriptor with no readiness path.  Returns
// what the blocking call would.  `opt`: the socket timeout that bounds it.
template <class Attempt>
ssize_t park_loop(int fd, io_dir d, int opt, Attempt&& attempt) noexcept {
  readiness* r = io_readiness(fd, d);
  std::uint64_t deadline = kNoDeadline, since = intr_begin();
  bool checked = false;  // the slow path ran in this call (its deadline holds)
  for (;;) {
    std::uint32_t seen = r ? r->snapshot() : 0;  // before the attempt (I-RD1)
    ssize_t n = attempt(false);
    if (n >= 0 || (fresh_errno() != EAGAIN && fresh_errno() != EWOULDBLOCK)) return n;
    if (!r) return attempt(true);  // no readiness path
    if (!checked) {
      int c = check_park(fd, d, opt, &deadline, &checked);
      if (c == 0) return would_block();
      if (c < 0) return attempt(true);  // no readiness path
    }
    // A socket timeout makes the call one signal(7) never restarts.
    io_parked(fd, 1);
    int w = wait_intr(*r, seen, deadline, since, deadline == kNoDeadline);
    io_parked(fd, -1);
    if (w == 0) return would_block();  // SO_*TIMEO expired
    if (w < 0) return interrupted();
  }
}

// Repeats a write-like attempt until all n bytes are out.  After a partial
// write an error returns the count, as the blocking call does.
template <class Attempt>
ssize_t write_all(int fd, std::size_t n, int opt, Attempt&& attempt) noexcept {
  std::size_t done = 0;
  do {
    ssize_t r = park_loop(fd, io_dir::out, opt, [&](bool block) { return attempt(done, block); });
    if (r <= 0) return done ? static_cast<ssize_t>(done) : r;
    done += static_cast<std::size_t>(r);
  } while (done < n);
  return static_cast<ssize_t>(done);
}

bool regular_file(int fd) noexcept {
  struct stat st;
  return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

bool maybe_socket(int fd) noexcept {
  unsigned char k = kind_of(fd);
  return k == kUnknown || k == kSocket;
}
// After ENOTSOCK: a regular file (its reads go to io_file.cpp) or not.
void not_a_socket(int fd) noexcept { set_kind(fd, regular_file(fd) ? kFile : kOther); }

// Advances iov[*first..cnt) by `by` bytes (a partial vectored write).
void advance(struct iovec* iov, int cnt, int* first, std::size_t by) noexcept {
  while (*first < cnt && by >= iov[*first].iov_len) by -= iov[(*first)++].iov_len;
  if (*first < cnt) {
    iov[*first].iov_base = static_cast<char*>(iov[*first].iov_base) + by;
    iov[*first].iov_len -= by;
  }
}

std::size_t total_of(const struct iovec* v, int c) noexcept {
  std::size_t t = 0;
  for (int i = 0; i < c; ++i) t += v[i].iov_len;
  return t;
}

constexpr int kMaxCopiedIov = 64;

}  // namespace

int& fresh_errno() noexcept { return errno; }

int r_poll(struct pollfd* p, nfds_t n, int t) noexcept {
  if (auto f = FIBER_REAL(poll)) return f(p, n, t);
  return static_cast<int>(syscall(SYS_poll, p, n, t));
}

// poll with a zero timeout.  Linux checks for a pending signal before it
// looks at the timeout, so even this returns EINTR when a tick is pending
// (seen: the ManyPipes test at a 200 us quantum): retried, a fiber's poll is
// never cut short by the runtime's ticks.
int poll_now(struct pollfd* p, nfds_t n) noexcept {
  int r;
  while ((r = r_poll(p, n, 0)) < 0 && fresh_errno() == EINTR) {
  }
  return r;
}

int r_close(int fd) noexcept {
  if (auto f = FIBER_REAL(close)) return f(fd);
  return static_cast<int>(syscall(SYS_close, fd));
}

// ---- the calls ---------------------------------------------------------------

ssize_t fio_read(int fd, void* buf, std::size_t n) noexcept {
  if (maybe_socket(fd)) {
    ssize_t r = park_loop(fd, io_dir::in, SO_RCVTIMEO,
                          [&](bool b) { return r_recvfrom(fd, buf, n, b ? 0 : MSG_DONTWAIT, nullptr, nullptr); });
    if (r >= 0 || fresh_errno() != ENOTSOCK) {
      set_kind(fd, kSocket);
      return r;
    }
    not_a_socket(fd);
  }
  if (kind_of(fd) == kFile) {
    struct iovec v{buf, n};
    return fio_file_readv(fd, &v, 1);
  }
  return park_loop(fd, io_dir::in, 0,
                   [&](bool b) { return b || poll_ready(fd, POLLIN) ? r_read(fd, buf, n) : would_block(); });
}

ssize_t fio_write(int fd, const void* buf, std::size_t n) noexcept {
  const char* p = static_cast<const char*>(buf);
  if (maybe_socket(fd)) {
    ssize_t r = write_all(fd, n, SO_SNDTIMEO, [&](std::size_t off, bool b) {
      return r_sendto(fd, p + off, n - off, b ? 0 : MSG_DONTWAIT, nullptr, 0);
    });
    if (r >= 0 || fresh_errno() != ENOTSOCK) {
      set_kind(fd, kSocket);
      return r;
    }
    not_a_socket(fd);
  }
  std::size_t piece = n > PIPE_BUF && regular_file(fd) ? n : PIPE_BUF;
  return write_all(fd, n, 0, [&](std::size_t off, bool b) {
    if (!b && !poll_ready(fd, POLLOUT)) return would_block();
    return r_write(fd, p + off, b ? n - off : std::min(n - off, piece));
  });
}

ssize_t fio_readv(int fd, const struct iovec* iov, int cnt) noexcept {
  if (maybe_socket(fd)) {
    struct msghdr m{};
    m.msg_iov = const_cast<struct iovec*>(iov);
    m.msg_iovlen = static_cast<std::size_t>(cnt > 0 ? cnt : 0);
    if (cnt < 0) return r_readv(fd, iov, cnt);  // EINVAL from the kernel
    ssize_t r = fio_recvmsg(fd, &m, 0);
    if (r >= 0 || fresh_errno() != ENOTSOCK) return r;
    not_a_socket(fd);
  }
  if (kind_of(fd) == kFile) return fio_file_readv(fd, iov, cnt);
  return park_loop(fd, io_dir::in, 0,
                   [&](bool b) { return b || poll_ready(fd, POLLIN) ? r_readv(fd, iov, cnt) : would_block(); });
}

ssize_t fio_writev(int fd, const struct iovec* iov, int cnt) noexcept {
  if (cnt < 0 || cnt > IOV_MAX) return r_writev(fd, iov, cnt);  // EINVAL from the kernel
  if (maybe_socket(fd)) {
    struct msghdr m{};
    m.msg_iov = const_cast<struct iovec*>(iov);
    m.msg_iovlen = static_cast<std::size_t>(cnt);
    ssize_t r = fio_sendmsg(fd, &m, 0);
    if (r >= 0 || fresh_errno() != ENOTSOCK) return r;
    not_a_socket(fd);
  }
  std::size_t total = total_of(iov, cnt);
  if (total <= PIPE_BUF)  // one piece: atomic on a pipe, as writev is
    return write_all(fd, total, 0, [&](std::size_t off, bool b) -> ssize_t {
      if (!b && !poll_ready(fd, POLLOUT)) return would_block();
      if (off == 0) return r_writev(fd, iov, cnt);
      return fio_write_rest(fd, iov, cnt, off);
    });
  return fio_write_rest(fd, iov, cnt, 0);
}

// Writes iov from byte `skip` on, one buffer at a time through fio_write.
ssize_t fio_write_rest(int fd, const struct iovec* iov, int cnt, std::size_t skip) noexcept {
  std::size_t done = 0;
  for (int i = 0; i < cnt; ++i) {
    std::size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    ssize_t r = fio_write(fd, static_cast<const char*>(iov[i].iov_base) + skip, len - skip);
    if (r < 0) return done ? static_cast<ssize_t>(done) : r;
    done += static_cast<std::size_t>(r);
    if (static_cast<std::size_t>(r) < len - skip) break;
    skip = 0;
  }
  return static_cast<ssize_t>(done);
}

ssize_t fio_recvfrom(int fd, void* buf, std::size_t n, int flags, struct sockaddr* a, socklen_t* l) noexcept {
  if (flags & MSG_DONTWAIT) return r_recvfrom(fd, buf, n, flags, a, l);
  char* p = static_cast<char*>(buf);
  std::size_t done = 0;
  for (;;) {  // MSG_WAITALL: until n bytes, end of stream or an error
    ssize_t r = park_loop(fd, io_dir::in, SO_RCVTIMEO, [&](bool b) {
      return r_recvfrom(fd, p + done, n - done, b ? flags : flags | MSG_DONTWAIT, a, l);
    });
    if (r > 0) set_kind(fd, kSocket);
    if (!(flags & MSG_WAITALL) || r <= 0) return done ? static_cast<ssize_t>(done) : r;
    done += static_cast<std::size_t>(r);
    if (done >= n) return static_cast<ssize_t>(done);
  }
}

ssize_t fio_recvmsg(int fd, struct msghdr* m, int flags) noexcept {
  if (flags & MSG_DONTWAIT) return r_recvmsg(fd, m, flags);
  return park_loop(fd, io_dir::in, SO_RCVTIMEO,
                   [&](bool b) { return r_recvmsg(fd, m, b ? flags : flags | MSG_DONTWAIT); });
}

ssize_t fio_sendto(int fd, const void* buf, std::size_t n, int flags, const struct sockaddr* a,
                   socklen_t l) noexcept {
  if (flags & MSG_DONTWAIT) return r_sendto(fd, buf, n, flags, a, l);
  const char* p = static_cast<const char*>(buf);
  return write_all(fd, n, SO_SNDTIMEO, [&](std::size_t off, bool b) {
    return r_sendto(fd, p + off, n - off, b ? flags : flags | MSG_DONTWAIT, a, l);
  });
}

// Until every byte is sent; ancillary data goes with the first piece only.
ssize_t fio_sendmsg(int fd, const struct msghdr* m, int flags) noexcept {
  int cnt = static_cast<int>(m->msg_iovlen);
  if ((flags & MSG_DONTWAIT) || cnt > kMaxCopiedIov)  // a long vector: one send, maybe partial
    return (flags & MSG_DONTWAIT) ? r_sendmsg(fd, m, flags)
                                  : park_loop(fd, io_dir::out, SO_SNDTIMEO, [&](bool b) {
                                      return r_sendmsg(fd, m, b ? flags : flags | MSG_DONTWAIT);
                                    });
  struct iovec v[kMaxCopiedIov];
  std::copy(m->msg_iov, m->msg_iov + cnt, v);
  struct msghdr cur = *m;
  int first = 0;
  return write_all(fd, total_of(v, cnt), SO_SNDTIMEO, [&](std::size_t off, bool b) -> ssize_t {
    if (off != 0) {  // later pieces: the rest of the vector, no ancillary data
      first = 0;
      std::copy(m->msg_iov, m->msg_iov + cnt, v);
      advance(v, cnt, &first, off);
      cur.msg_control = nullptr;
      cur.msg_controllen = 0;
    }
    cur.msg_iov = v + first;
    cur.msg_iovlen = static_cast<std::size_t>(cnt - first);
    return r_sendmsg(fd, &cur, b ? flags : flags | MSG_DONTWAIT);
  });
}

int fio_accept4(int fd, struct sockaddr* a, socklen_t* l, int flags) noexcept {
  return static_cast<int>(park_loop(fd, io_dir::in, SO_RCVTIMEO, [&](bool b) -> ssize_t {
    return b || poll_ready(fd, POLLIN) ? r_accept4(fd, a, l, flags) : would_block();
  }));
}

int fio_connect(int fd, const struct sockaddr* a, socklen_t l) noexcept {
  std::uint64_t since = intr_begin();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_NONBLOCK) || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return r_connect(fd, a, l);
  int c = r_connect(fd, a, l);
  int e = fresh_errno();
  fcntl(fd, F_SETFL, fl);  // the connection goes on in the background
  if (c == 0 || e != EINPROGRESS) {
    fresh_errno() = e;
    return c;
  }
  std::uint64_t deadline = sock_deadline(fd, SO_SNDTIMEO);
  readiness* r = io_readiness(fd, io_dir::out);
  bool can_park = r && io_register(fd) == 0;
  for (;;) {
    std::uint32_t seen = r ? r->snapshot() : 0;
    if (poll_ready(fd, POLLOUT)) break;
    if (!can_park) {
      struct pollfd p{fd, POLLOUT, 0};
      r_poll(&p, 1, -1);  // no readiness path: the KLT waits, as before
      break;
    }
    int w = wait_intr(*r, seen, deadline, since, deadline == kNoDeadline);
    if (w < 0) return static_cast<int>(interrupted());  // the connection goes on, as Linux's
    if (w == 0) {
      fresh_errno() = EINPROGRESS;  // SO_SNDTIMEO expired, as Linux reports it
      return -1;
    }
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -1;
  if (err == 0) return 0;
  fresh_errno() = err;
  return -1;
}

void fio_closed(int fd) noexcept {
  set_kind(fd, kUnknown);
  io_facts_forget(fd);
  io_notify_all(fd);  // a fiber parked on fd retries and gets EBADF
}

void fio_renewed(int fd) noexcept {
  set_kind(fd, kUnknown);
  io_facts_forget(fd);
}

}  // namespace fiber::detail

extern "C" __attribute__((visibility("default"))) void fiber_test_get_io_counters(fiber_test_io_counters_t* out) {
  out->slow_paths = fiber::detail::g_slow_paths.load(std::memory_order_relaxed);  // relaxed: a test counter
  out->sweeps = fiber::detail::io_sweeps();
  out->offloads = fiber::detail::offload_jobs();
  out->klt_polled = fiber::detail::idle_poll_events();
}
