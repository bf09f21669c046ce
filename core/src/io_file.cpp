// core/src/io_file.cpp - a fiber's read of a regular file (io_fiber.hpp).
//
// epoll cannot watch a regular file: the kernel calls it always ready, and a
// read whose pages are not cached blocks in the disk wait.  So: first
// preadv2(RWF_NOWAIT) at the file position, which copies what the page cache
// holds and fails with EAGAIN instead of waiting for the disk; what it could
// not read is read by the plain readv on the offload pool (offload.hpp) while
// the fiber parks.  A cached read costs one system call, as before; an
// uncached one costs the pool's two thread wake-ups on top of the disk.
//
// The kind hint that sends a descriptor here is forgotten at close(); a
// number that libc closed and reused behind the runtime's back (fclose, then
// a pipe) may still be taken for a file: preadv2 at offset -1 is readv there,
// so the result is right, only a would-block goes through the pool.
//
// A short NOWAIT read is completed from the pool, so a read returns what the
// blocking read would have (all of it, or up to the end of the file):
// programs that read a file with one read() keep working.  Writes to regular
// files are not offloaded: buffered writes copy into the page cache, and this
// kernel refuses RWF_NOWAIT for them (EOPNOTSUPP), so every write would pay
// the pool's hop (papers/design.md, "Blocking system calls").
#include <errno.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "io_fiber.hpp"
#include "io_real.hpp"
#include "offload.hpp"

namespace fiber::detail {

namespace {

constexpr int kMaxIov = 64;  // a longer vector skips the NOWAIT try (one pool call)

struct readv_call {
  int fd;
  const struct iovec* iov;
  int cnt;
};

long plain_readv(void* p) {
  auto* c = static_cast<readv_call*>(p);
  if (auto f = FIBER_REAL(readv)) return f(c->fd, c->iov, c->cnt);
  return syscall(SYS_readv, c->fd, c->iov, c->cnt);
}

ssize_t pool_readv(int fd, const struct iovec* iov, int cnt) noexcept {
  readv_call c{fd, iov, cnt};
  return offload_call(plain_readv, &c);
}

}  // namespace

ssize_t fio_file_readv(int fd, const struct iovec* iov, int cnt) noexcept {
  if (cnt <= 0 || cnt > kMaxIov) return pool_readv(fd, iov, cnt);  // the kernel's answer, or one call
  std::size_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  ssize_t r = preadv2(fd, iov, cnt, -1, RWF_NOWAIT);
  if (r < 0) {
    int e = fresh_errno();
    // EAGAIN: not cached.  EOPNOTSUPP/EINVAL: no NOWAIT here (an old kernel,
    // a file system without it, O_DIRECT alignment): the plain call decides.
    if (e != EAGAIN && e != EOPNOTSUPP && e != EINVAL && e != ENOSYS) return r;
    return pool_readv(fd, iov, cnt);
  }
  if (r == 0 || static_cast<std::size_t>(r) == total) return r;
  // Short: the rest was not cached, or the file ends here (then the pool's
  // read returns 0).  Finish it as the blocking read would.
  struct iovec rest[kMaxIov];
  std::copy(iov, iov + cnt, rest);
  int first = 0;
  std::size_t skip = static_cast<std::size_t>(r);
  while (first < cnt && skip >= rest[first].iov_len) skip -= rest[first++].iov_len;
  if (first == cnt) return r;
  rest[first].iov_base = static_cast<char*>(rest[first].iov_base) + skip;
  rest[first].iov_len -= skip;
  int saved = fresh_errno();
  ssize_t more = pool_readv(fd, rest + first, cnt - first);
  if (more < 0) {  // an error after a partial read returns the count, as read does
    fresh_errno() = saved;
    return r;
  }
  return r + more;
}

}  // namespace fiber::detail
