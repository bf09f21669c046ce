// core/src/io_fiber.hpp - a fiber's blocking I/O calls (io_fiber.cpp,
// io_poll.cpp): each returns what the libc call of the same name would, with
// errno, but parks the calling fiber instead of blocking its KLT.  Call them
// from a fiber only (interpose_io.cpp and the fiber_* API check).  Not installed.
#pragma once

#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace fiber::detail {

ssize_t fio_read(int fd, void* buf, std::size_t n) noexcept;
ssize_t fio_write(int fd, const void* buf, std::size_t n) noexcept;
ssize_t fio_readv(int fd, const struct iovec* iov, int cnt) noexcept;
ssize_t fio_writev(int fd, const struct iovec* iov, int cnt) noexcept;
ssize_t fio_write_rest(int fd, const struct iovec* iov, int cnt, std::size_t skip) noexcept;
ssize_t fio_recvfrom(int fd, void* buf, std::size_t n, int flags, struct sockaddr* a, socklen_t* l) noexcept;
ssize_t fio_recvmsg(int fd, struct msghdr* m, int flags) noexcept;
ssize_t fio_sendto(int fd, const void* buf, std::size_t n, int flags, const struct sockaddr* a,
                   socklen_t l) noexcept;
ssize_t fio_sendmsg(int fd, const struct msghdr* m, int flags) noexcept;
int fio_accept4(int fd, struct sockaddr* a, socklen_t* l, int flags) noexcept;
int fio_connect(int fd, const struct sockaddr* a, socklen_t l) noexcept;
int fio_poll(struct pollfd* fds, nfds_t n, int timeout_ms) noexcept;
int fio_select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) noexcept;
int fio_epoll_wait(int ep, struct epoll_event* evs, int max, int timeout_ms) noexcept;
// A regular file (io_file.cpp): RWF_NOWAIT from the page cache, else the
// plain readv on the offload pool (offload.hpp).
ssize_t fio_file_readv(int fd, const struct iovec* iov, int cnt) noexcept;
void fio_closed(int fd) noexcept;  // after close(fd): wake its waiters, forget its hint and facts
void fio_renewed(int fd) noexcept; // a new descriptor took the number: forget its hint and facts

// errno of the KLT the calling fiber runs on now.  A fiber may resume on
// another KLT after a park, and compiled code keeps the result of
// __errno_location (a `const` function) in a register, so a plain `errno`
// after a park can read or write the previous KLT's.  Every errno access in
// the parking calls goes through this (noipa: never inlined nor analysed).
__attribute__((noipa)) int& fresh_errno() noexcept;

// libc's poll and close (io_fiber.cpp).
int r_poll(struct pollfd* p, nfds_t n, int timeout_ms) noexcept;
int poll_now(struct pollfd* p, nfds_t n) noexcept;  // zero timeout, EINTR retried
int r_close(int fd) noexcept;

}  // namespace fiber::detail
