// core/src/interpose_io.cpp - libc's blocking descriptor calls, seen through
// the runtime: from a fiber they park the fiber, not the KLT (io_fiber.cpp,
// io_poll.cpp); from anything else they are libc's.  Also the explicit API
// (fiber_read, fiber_write, fiber_poll: fiber.h), the same code without the
// interposition, and close(), which wakes the fibers parked on the
// descriptor it closes.
//
// Linking: as signals.cpp.  With libfiber.a the program's undefined read()
// pulls this member in (libfiber comes before libc on the link line); with
// libfiber.so these come first in symbol lookup.  libc's own internal calls
// (fread's read, getaddrinfo's poll...) go to libc's internal aliases and are
// not seen: they block the KLT as before (papers/design.md "Blocking system
// calls", what remains).
//
// fork() from a fiber: the child has one thread (the KLT that forked), no
// other KLT and no poller, so parking would hang it; an atfork handler turns
// the interposers off in the child, which gets plain blocking calls.
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "fiber/detail/testing.h"
#include "interpose.hpp"
#include "io_fiber.hpp"
#include "io_interrupt.hpp"
#include "io_real.hpp"
#include "offload.hpp"
#include "poller.hpp"
#include "runtime.hpp"

namespace fiber::detail {

namespace {
std::atomic<bool> g_forked{false};

// A child forked while a runtime ran (from a fiber or not) has lost its KLTs:
// plain calls from then on.  A child forked with no runtime may start its own
// (the unit tests' run_child does): only the poller must be started afresh.
void in_child() noexcept {
  // relaxed (both): the child has one thread.
  if (g_rt.load(std::memory_order_relaxed)) {
    g_forked.store(true, std::memory_order_relaxed);
    intr_forget_in_child();  // the parent's parked fibers' registry (io_interrupt.hpp)
  }
  io_poller_forget();
  offload_forget();
}

__attribute__((constructor)) void install_atfork() { pthread_atfork(nullptr, nullptr, in_child); }

// The explicit API works whatever the knob says; only not in a fork child.
bool explicit_ok() noexcept {
  return !g_forked.load(std::memory_order_relaxed) && current_fiber() != nullptr;  // relaxed: as above
}
}  // namespace

bool io_explicit_ok() noexcept { return explicit_ok(); }

bool io_interposing() noexcept {
  if (knobs.no_io_interpose.load(std::memory_order_relaxed)) return false;  // relaxed: a test knob
  return explicit_ok();
}

}  // namespace fiber::detail

using namespace fiber::detail;

#define FIBER_EXPORT __attribute__((visibility("default")))

extern "C" {

// ---- the explicit API (fiber.h) ----------------------------------------------

FIBER_EXPORT ssize_t fiber_read(int fd, void* buf, size_t n) {
  return explicit_ok() ? fio_read(fd, buf, n) : FIBER_REAL(read) ? FIBER_REAL(read)(fd, buf, n) : -1;
}
FIBER_EXPORT ssize_t fiber_write(int fd, const void* buf, size_t n) {
  return explicit_ok() ? fio_write(fd, buf, n) : FIBER_REAL(write) ? FIBER_REAL(write)(fd, buf, n) : -1;
}
FIBER_EXPORT int fiber_poll(struct pollfd* fds, nfds_t n, int timeout_ms) {
  return explicit_ok() ? fio_poll(fds, n, timeout_ms) : r_poll(fds, n, timeout_ms);
}

// ---- the interposers ---------------------------------------------------------

FIBER_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  if (io_interposing()) return fio_read(fd, buf, n);
  return FIBER_REAL(read) ? FIBER_REAL(read)(fd, buf, n) : syscall(SYS_read, fd, buf, n);
}
FIBER_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  if (io_interposing()) return fio_write(fd, buf, n);
  return FIBER_REAL(write) ? FIBER_REAL(write)(fd, buf, n) : syscall(SYS_write, fd, buf, n);
}
FIBER_EXPORT ssize_t readv(int fd, const struct iovec* v, int c) {
  if (io_interposing()) return fio_readv(fd, v, c);
  return FIBER_REAL(readv) ? FIBER_REAL(readv)(fd, v, c) : syscall(SYS_readv, fd, v, c);
}
FIBER_EXPORT ssize_t writev(int fd, const struct iovec* v, int c) {
  if (io_interposing()) return fio_writev(fd, v, c);
  return FIBER_REAL(writev) ? FIBER_REAL(writev)(fd, v, c) : syscall(SYS_writev, fd, v, c);
}
FIBER_EXPORT ssize_t recv(int fd, void* b, size_t n, int fl) { return recvfrom(fd, b, n, fl, nullptr, nullptr); }
FIBER_EXPORT ssize_t recvfrom(int fd, void* b, size_t n, int fl, struct sockaddr* a, socklen_t* l) {
  if (io_interposing()) return fio_recvfrom(fd, b, n, fl, a, l);
  return FIBER_REAL(recvfrom) ? FIBER_REAL(recvfrom)(fd, b, n, fl, a, l) : syscall(SYS_recvfrom, fd, b, n, fl, a, l);
}
FIBER_EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int fl) {
  if (io_interposing()) return fio_recvmsg(fd, m, fl);
  return FIBER_REAL(recvmsg) ? FIBER_REAL(recvmsg)(fd, m, fl) : syscall(SYS_recvmsg, fd, m, fl);
}
FIBER_EXPORT ssize_t send(int fd, const void* b, size_t n, int fl) { return sendto(fd, b, n, fl, nullptr, 0); }
FIBER_EXPORT ssize_t sendto(int fd, const void* b, size_t n, int fl, const struct sockaddr* a, socklen_t l) {
  if (io_interposing()) return fio_sendto(fd, b, n, fl, a, l);
  return FIBER_REAL(sendto) ? FIBER_REAL(sendto)(fd, b, n, fl, a, l) : syscall(SYS_sendto, fd, b, n, fl, a, l);
}
FIBER_EXPORT ssize_t sendmsg(int fd, const struct msghdr* m, int fl) {
  if (io_interposing()) return fio_sendmsg(fd, m, fl);
  return FIBER_REAL(sendmsg) ? FIBER_REAL(sendmsg)(fd, m, fl) : syscall(SYS_sendmsg, fd, m, fl);
}
FIBER_EXPORT int accept(int fd, struct sockaddr* a, socklen_t* l) { return accept4(fd, a, l, 0); }
FIBER_EXPORT int accept4(int fd, struct sockaddr* a, socklen_t* l, int fl) {
  int r;
  if (io_interposing()) r = fio_accept4(fd, a, l, fl);
  else if (FIBER_REAL(accept4)) r = FIBER_REAL(accept4)(fd, a, l, fl);
  else r = static_cast<int>(syscall(SYS_accept4, fd, a, l, fl));
  if (r >= 0) fio_renewed(r);  // a new descriptor: nothing cached about its number holds (errno untouched)
  return r;
}
FIBER_EXPORT int connect(int fd, const struct sockaddr* a, socklen_t l) {
  if (io_interposing()) return fio_connect(fd, a, l);
  if (FIBER_REAL(connect)) return FIBER_REAL(connect)(fd, a, l);
  return static_cast<int>(syscall(SYS_connect, fd, a, l));
}
FIBER_EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout_ms) {
  if (io_interposing()) return fio_poll(fds, n, timeout_ms);
  return r_poll(fds, n, timeout_ms);
}
FIBER_EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  if (io_interposing()) return fio_select(nfds, r, w, e, tv);
  if (FIBER_REAL(select)) return FIBER_REAL(select)(nfds, r, w, e, tv);
  return static_cast<int>(syscall(SYS_select, nfds, r, w, e, tv));
}
FIBER_EXPORT int epoll_wait(int ep, struct epoll_event* evs, int max, int timeout_ms) {
  if (io_interposing()) return fio_epoll_wait(ep, evs, max, timeout_ms);
  if (FIBER_REAL(epoll_wait)) return FIBER_REAL(epoll_wait)(ep, evs, max, timeout_ms);
  return static_cast<int>(syscall(SYS_epoll_wait, ep, evs, max, timeout_ms));
}

// Every caller, not only fibers: an OS thread may close what a fiber waits on.
FIBER_EXPORT int close(int fd) {
  int r = r_close(fd);
  int e = errno;
  fio_closed(fd);
  errno = e;
  return r;
}

}  // extern "C"
