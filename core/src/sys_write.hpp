// core/src/sys_write.hpp - the runtime's own writes (fatal lines, reports,
// fiber_dump) as a raw system call.  Not installed.
//
// write() is interposed (interpose_io.cpp): from a fiber it may park the
// fiber until the descriptor is writable.  The runtime writes from signal
// handlers (SIGQUIT dump, stack-overflow fatal) and from inside the
// scheduler, where parking is not allowed, so it never goes through the
// interposer: a full pipe blocks the writer in the kernel, as libc's write
// did before the interposers existed.  Async-signal-safe.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

namespace fiber::detail {

inline ssize_t sys_write(int fd, const void* buf, std::size_t n) noexcept {
  return static_cast<ssize_t>(syscall(SYS_write, fd, buf, n));
}

}  // namespace fiber::detail
