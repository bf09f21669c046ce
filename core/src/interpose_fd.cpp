// core/src/interpose_fd.cpp - the calls that change what the runtime caches
// about a descriptor number (poller.hpp "facts", io_fiber.cpp's kind hint):
// fcntl(F_SETFL, F_DUPFD...), ioctl(FIONBIO), setsockopt(SO_RCVTIMEO,
// SO_SNDTIMEO), dup/dup2/dup3, and the calls that hand out a new number
// (socket, socketpair, pipe, pipe2).  Each is libc's call, for every caller
// (fiber or thread: a thread may change what a fiber waits on), followed by
// forgetting what was cached for the number(s) it touched.  dup2/dup3 onto a
// number another fiber waits on also wake that waiter, as close() does.
//
// Nothing here is on a hot path: the cost is one function call in front of
// libc's.  A change made behind these (a raw system call, libc's internal
// calls) is caught by the poller's sweep instead (poller.hpp).
//
// Linking: as interpose_io.cpp (archive pull-in / lookup order); libc's real
// functions through dlsym(RTLD_NEXT), raw system calls in a static program.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "io_fiber.hpp"
#include "io_real.hpp"
#include "poller.hpp"

namespace fiber::detail {

inline std::atomic<void*> g_real_fcntl{nullptr}, g_real_ioctl{nullptr}, g_real_setsockopt{nullptr},
    g_real_dup{nullptr}, g_real_dup2{nullptr}, g_real_dup3{nullptr}, g_real_socket{nullptr},
    g_real_socketpair{nullptr}, g_real_pipe{nullptr}, g_real_pipe2{nullptr};

namespace {

__attribute__((constructor)) void resolve_fd_symbols() {
  (void)FIBER_REAL(fcntl), (void)FIBER_REAL(ioctl), (void)FIBER_REAL(setsockopt), (void)FIBER_REAL(dup);
  (void)FIBER_REAL(dup2), (void)FIBER_REAL(dup3), (void)FIBER_REAL(socket), (void)FIBER_REAL(socketpair);
  (void)FIBER_REAL(pipe), (void)FIBER_REAL(pipe2);
}

int r_fcntl(int fd, int cmd, void* arg) noexcept {
  if (auto f = FIBER_REAL(fcntl)) return f(fd, cmd, arg);
  return static_cast<int>(syscall(SYS_fcntl, fd, cmd, arg));
}

// What an fcntl command changes: the flags (F_SETFL), or a new number.
int after_fcntl(int fd, int cmd, int r) noexcept {
  int e = errno;
  if (r >= 0 && cmd == F_SETFL) io_facts_forget(fd);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) fio_renewed(r);
  errno = e;
  return r;
}

int renewed(int r) noexcept {
  int e = errno;
  if (r >= 0) fio_renewed(r);
  errno = e;
  return r;
}

}  // namespace
}  // namespace fiber::detail

using namespace fiber::detail;

#define FIBER_EXPORT __attribute__((visibility("default")))

extern "C" {

// The argument is read as a pointer whatever cmd is, as libc itself does
// (an int argument travels in the same register).
FIBER_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return after_fcntl(fd, cmd, r_fcntl(fd, cmd, arg));
}

// glibc 2.28+: programs built with _FILE_OFFSET_BITS=64 call fcntl64 (the
// same function on x86-64).
FIBER_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return after_fcntl(fd, cmd, r_fcntl(fd, cmd, arg));
}

FIBER_EXPORT int ioctl(int fd, unsigned long req, ...) noexcept {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  int r = FIBER_REAL(ioctl) ? FIBER_REAL(ioctl)(fd, req, arg) : static_cast<int>(syscall(SYS_ioctl, fd, req, arg));
  int e = errno;
  if (r == 0 && req == FIONBIO) io_facts_forget(fd);
  errno = e;
  return r;
}

FIBER_EXPORT int setsockopt(int fd, int level, int opt, const void* val, socklen_t len) noexcept {
  int r = FIBER_REAL(setsockopt) ? FIBER_REAL(setsockopt)(fd, level, opt, val, len)
                                 : static_cast<int>(syscall(SYS_setsockopt, fd, level, opt, val, len));
  int e = errno;
  // Both timeouts, in the old and the new (64-bit time) spelling.
  if (r == 0 && level == SOL_SOCKET && (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO || opt == 66 || opt == 67))
    io_facts_forget(fd);
  errno = e;
  return r;
}

FIBER_EXPORT int dup(int fd) noexcept {
  return renewed(FIBER_REAL(dup) ? FIBER_REAL(dup)(fd) : static_cast<int>(syscall(SYS_dup, fd)));
}

// The number `to` is closed and reused: as close() for its waiters.
FIBER_EXPORT int dup2(int from, int to) noexcept {
  int r = FIBER_REAL(dup2) ? FIBER_REAL(dup2)(from, to) : static_cast<int>(syscall(SYS_dup2, from, to));
  int e = errno;
  if (r >= 0 && from != to) fio_closed(r);
  errno = e;
  return r;
}

FIBER_EXPORT int dup3(int from, int to, int flags) noexcept {
  int r = FIBER_REAL(dup3) ? FIBER_REAL(dup3)(from, to, flags) : static_cast<int>(syscall(SYS_dup3, from, to, flags));
  int e = errno;
  if (r >= 0) fio_closed(r);
  errno = e;
  return r;
}

FIBER_EXPORT int socket(int domain, int type, int proto) noexcept {
  return renewed(FIBER_REAL(socket) ? FIBER_REAL(socket)(domain, type, proto)
                                    : static_cast<int>(syscall(SYS_socket, domain, type, proto)));
}

FIBER_EXPORT int socketpair(int domain, int type, int proto, int sv[2]) noexcept {
  int r = FIBER_REAL(socketpair) ? FIBER_REAL(socketpair)(domain, type, proto, sv)
                                 : static_cast<int>(syscall(SYS_socketpair, domain, type, proto, sv));
  if (r == 0) renewed(sv[0]), renewed(sv[1]);
  return r;
}

FIBER_EXPORT int pipe(int fd[2]) noexcept {
  int r = FIBER_REAL(pipe) ? FIBER_REAL(pipe)(fd) : static_cast<int>(syscall(SYS_pipe2, fd, 0));
  if (r == 0) renewed(fd[0]), renewed(fd[1]);
  return r;
}

FIBER_EXPORT int pipe2(int fd[2], int flags) noexcept {
  int r = FIBER_REAL(pipe2) ? FIBER_REAL(pipe2)(fd, flags) : static_cast<int>(syscall(SYS_pipe2, fd, flags));
  if (r == 0) renewed(fd[0]), renewed(fd[1]);
  return r;
}

}  // extern "C"
