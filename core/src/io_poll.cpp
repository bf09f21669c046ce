// core/src/io_poll.cpp - a fiber's poll, select and epoll_wait: poll with a
// zero timeout; when nothing is ready, queue one node per (descriptor,
// direction) on the descriptors' readiness objects (readiness.hpp: enqueue,
// dequeue; all nodes share the fiber's parker), park until any node is
// granted or the deadline passes, take every node off, and poll again.
// select is poll over the same descriptors; epoll_wait waits for its epoll
// descriptor to become readable (an epoll instance is itself pollable).
// A program signal interrupts all three whatever SA_RESTART says (signal(7);
// io_interrupt.hpp): -1 with EINTR.
#include <errno.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

#include <new>

#include "io_fiber.hpp"
#include "io_interrupt.hpp"
#include "io_real.hpp"
#include "poller.hpp"

namespace fiber::detail {

namespace {

using node = readiness::node;

constexpr short kInEvents = POLLIN | POLLPRI | POLLRDHUP | POLLRDNORM | POLLRDBAND;
constexpr short kOutEvents = POLLOUT | POLLWRNORM | POLLWRBAND;

struct entry {
  readiness* r = nullptr;
  int fd = -1;
  std::uint32_t seen = 0;
  alignas(node) unsigned char mem[sizeof(node)];
  node* n() noexcept { return reinterpret_cast<node*>(mem); }
};

// The (descriptor, direction) pairs of one poll call.
class wait_set {
 public:
  wait_set(const struct pollfd* fds, nfds_t n) noexcept {
    std::size_t want = 0;
    for (nfds_t i = 0; i < n; ++i)
      if (fds[i].fd >= 0) want += (fds[i].events & kOutEvents) ? 2 : 1;
    e_ = want <= kInline ? inline_ : new (std::nothrow) entry[want];
    if (!e_) return;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].fd < 0) continue;
      // In: also when only errors and hang-ups are asked (they notify both).
      if ((fds[i].events & kInEvents) || !(fds[i].events & kOutEvents)) add(fds[i].fd, io_dir::in);
      if (fds[i].events & kOutEvents) add(fds[i].fd, io_dir::out);
    }
  }
  ~wait_set() {
    if (e_ != inline_) delete[] e_;
  }
  wait_set(const wait_set&) = delete;
  wait_set& operator=(const wait_set&) = delete;

  bool ok() const noexcept { return e_ != nullptr; }
  void snapshot() noexcept {  // before the poll (I-RD1)
    for (std::size_t i = 0; i < n_; ++i) e_[i].seen = e_[i].r->snapshot();
  }
  bool register_all() noexcept {
    for (std::size_t i = 0; i < n_; ++i)
      if (io_register(e_[i].fd) != 0) return false;
    return true;
  }
  // false: a program signal interrupted the wait (io_interrupt.hpp).
  bool park(std::uint64_t deadline, std::uint64_t since) noexcept;

 private:
  void add(int fd, io_dir d) noexcept {
    readiness* r = io_readiness(fd, d);
    if (!r) return;  // out of range: its poll result still counts
    e_[n_].r = r;
    e_[n_].fd = fd;
    ++n_;
  }
  static constexpr std::size_t kInline = 8;
  entry inline_[kInline];
  entry* e_ = nullptr;
  std::size_t n_ = 0;
};

bool wait_set::park(std::uint64_t deadline, std::uint64_t since) noexcept {
  parker& p = native_seam::current_parker();
  intr_guard g(p);
  if (g.enter(since, false)) return false;  // linked, then checked (I-INT1)
  std::size_t queued = 0;
  bool moved = false;
  for (; queued < n_; ++queued) {
    node* x = new (e_[queued].mem) node(&p);
    if (!e_[queued].r->enqueue(*x, e_[queued].seen)) {
      x->~node();
      moved = true;  // an edge since the snapshot: poll again
      break;
    }
  }
  if (!moved) {  // also with no descriptor at all (poll(NULL, 0, t): a sleep)
    native_seam::note_wait(p, wait_kind::io, queued ? e_[0].r : nullptr);
    for (;;) {
      bool any = false;
      for (std::size_t i = 0; i < queued && !any; ++i) any = e_[i].n()->granted();
      if (any || p.park_until(deadline) || intr_pending(since, false)) break;
    }
  }
  bool granted = false;
  for (std::size_t i = 0; i < queued; ++i) {  // I-RD4: every node off its queue
    granted |= e_[i].r->dequeue(*e_[i].n());
    e_[i].n()->~node();
  }
  return granted || moved || !intr_pending(since, false);  // readiness wins over a signal
}

int remaining_ms(std::uint64_t deadline) noexcept {
  if (deadline == kNoDeadline) return -1;
  std::uint64_t now = native_seam::now_ns();
  if (now >= deadline) return 0;
  std::uint64_t ms = (deadline - now + 999999u) / 1000000u;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

std::uint64_t deadline_after_ms(int ms) noexcept {
  if (ms < 0) return kNoDeadline;
  return native_seam::now_ns() + static_cast<std::uint64_t>(ms) * 1000000u;
}

int r_epoll_wait(int ep, struct epoll_event* evs, int max, int t) noexcept {
  if (auto f = FIBER_REAL(epoll_wait)) return f(ep, evs, max, t);
  return static_cast<int>(syscall(SYS_epoll_wait, ep, evs, max, t));
}

}  // namespace

int fio_poll(struct pollfd* fds, nfds_t n, int timeout_ms) noexcept {
  std::uint64_t since = intr_begin();
  int r = poll_now(fds, n);
  if (r != 0 || timeout_ms == 0) return r;
  std::uint64_t deadline = deadline_after_ms(timeout_ms);
  wait_set w(fds, n);
  if (!w.ok()) return r_poll(fds, n, timeout_ms);  // no memory: the KLT waits, as before
  for (;;) {
    w.snapshot();
    r = poll_now(fds, n);
    if (r != 0) return r;
    int left = remaining_ms(deadline);
    if (left == 0) return 0;
    if (!w.register_all()) return r_poll(fds, n, left);  // no readiness path
    if (!w.park(deadline, since)) {
      fresh_errno() = EINTR;
      return -1;
    }
  }
}

int fio_select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, struct timeval* tv) noexcept {
  if (nfds < 0 || nfds > FD_SETSIZE || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0))) {
    fresh_errno() = EINVAL;
    return -1;
  }
  auto* p = new (std::nothrow) struct pollfd[nfds > 0 ? nfds : 1];
  if (!p) {
    fresh_errno() = ENOMEM;
    return -1;
  }
  nfds_t cnt = 0;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = static_cast<short>(((rd && FD_ISSET(fd, rd)) ? POLLIN : 0) |
                                  ((wr && FD_ISSET(fd, wr)) ? POLLOUT : 0) | ((ex && FD_ISSET(fd, ex)) ? POLLPRI : 0));
    if (ev) p[cnt++] = {fd, ev, 0};
  }
  int ms = -1;
  if (tv) {
    long long t = static_cast<long long>(tv->tv_sec) * 1000 + (tv->tv_usec + 999) / 1000;
    ms = t > INT_MAX ? INT_MAX : static_cast<int>(t);
  }
  int k = fio_poll(p, cnt, ms);
  int ready = 0;
  for (nfds_t i = 0; k > 0 && i < cnt; ++i)
    if (p[i].revents & POLLNVAL) k = -1, fresh_errno() = EBADF;
  if (k >= 0) {
    if (rd) FD_ZERO(rd);
    if (wr) FD_ZERO(wr);
    if (ex) FD_ZERO(ex);
    for (nfds_t i = 0; i < cnt; ++i) {
      short re = p[i].revents, ev = p[i].events;
      int fd = p[i].fd;
      if ((ev & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) FD_SET(fd, rd), ++ready;
      if ((ev & POLLOUT) && (re & (POLLOUT | POLLERR))) FD_SET(fd, wr), ++ready;
      if ((ev & POLLPRI) && (re & POLLPRI)) FD_SET(fd, ex), ++ready;
    }
    if (tv && ready == 0) tv->tv_sec = 0, tv->tv_usec = 0;  // Linux reports the time left
  }
  int e = fresh_errno();
  delete[] p;
  fresh_errno() = e;
  return k < 0 ? -1 : ready;
}

int fio_epoll_wait(int ep, struct epoll_event* evs, int max, int timeout_ms) noexcept {
  std::uint64_t deadline = deadline_after_ms(timeout_ms);
  for (;;) {
    int r = r_epoll_wait(ep, evs, max, 0);
    if (r < 0 && fresh_errno() == EINTR) continue;  // a pending tick, as in poll_now
    if (r != 0 || timeout_ms == 0) return r;
    int left = remaining_ms(deadline);
    if (left == 0) return 0;
    struct pollfd p{ep, POLLIN, 0};
    if (fio_poll(&p, 1, left) < 0) return -1;
  }
}

}  // namespace fiber::detail
