// core/src/interpose_offload.cpp - calls with no readiness path that a fiber
// makes: sent to the offload pool (offload.hpp) while the fiber parks, so
// the KLT's other fibers run.  fsync, fdatasync and getaddrinfo from a
// fiber; anything else through fiber_offload() (fiber.h).  From an OS
// thread, a forked child, or under FIBER_KNOB_NO_IO_INTERPOSE they are
// libc's (interpose_io.cpp: io_interposing).
//
// Linking: as interpose_io.cpp (the program's undefined fsync pulls this
// member out of libfiber.a; libfiber.so comes before libc in lookup order).
// libc's own internal calls (a getaddrinfo inside another libc function) are
// not seen.
#include <errno.h>
#include <netdb.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "interpose.hpp"
#include "offload.hpp"
#include "real_symbol.hpp"

namespace fiber::detail {
namespace {

std::atomic<void*> g_real_fsync{nullptr}, g_real_fdatasync{nullptr}, g_real_getaddrinfo{nullptr};

__attribute__((constructor)) void resolve_offload_symbols() {
  (void)next_symbol<void*, decltype(&::fsync)>(g_real_fsync, "fsync");
  (void)next_symbol<void*, decltype(&::fdatasync)>(g_real_fdatasync, "fdatasync");
  (void)next_symbol<void*, decltype(&::getaddrinfo)>(g_real_getaddrinfo, "getaddrinfo");
}

long real_fsync(void* p) {
  int fd = *static_cast<int*>(p);
  if (auto f = next_symbol<void*, decltype(&::fsync)>(g_real_fsync, "fsync")) return f(fd);
  return syscall(SYS_fsync, fd);
}
long real_fdatasync(void* p) {
  int fd = *static_cast<int*>(p);
  if (auto f = next_symbol<void*, decltype(&::fdatasync)>(g_real_fdatasync, "fdatasync")) return f(fd);
  return syscall(SYS_fdatasync, fd);
}

struct gai_call {
  const char* node;
  const char* service;
  const struct addrinfo* hints;
  struct addrinfo** res;
};
long real_getaddrinfo(void* p) {
  auto* c = static_cast<gai_call*>(p);
  auto f = next_symbol<void*, decltype(&::getaddrinfo)>(g_real_getaddrinfo, "getaddrinfo");
  return f ? f(c->node, c->service, c->hints, c->res) : EAI_SYSTEM;  // a fully static program has no other
}

struct user_call {
  void* (*fn)(void*);
  void* arg;
  void* ret;
};
long run_user(void* p) {
  auto* c = static_cast<user_call*>(p);
  c->ret = c->fn(c->arg);
  return 0;
}

}  // namespace
}  // namespace fiber::detail

using namespace fiber::detail;

#define FIBER_EXPORT __attribute__((visibility("default")))

extern "C" {

FIBER_EXPORT int fiber_offload(void* (*fn)(void*), void* arg, void** result) {
  if (!fn) return EINVAL;
  user_call c{fn, arg, nullptr};
  if (io_explicit_ok()) offload_call(run_user, &c); else run_user(&c);
  if (result) *result = c.ret;
  return 0;
}

FIBER_EXPORT int fsync(int fd) {
  if (io_interposing()) return static_cast<int>(offload_call(real_fsync, &fd));
  return static_cast<int>(real_fsync(&fd));
}

FIBER_EXPORT int fdatasync(int fd) {
  if (io_interposing()) return static_cast<int>(offload_call(real_fdatasync, &fd));
  return static_cast<int>(real_fdatasync(&fd));
}

FIBER_EXPORT int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                             struct addrinfo** res) {
  gai_call c{node, service, hints, res};
  if (io_interposing()) return static_cast<int>(offload_call(real_getaddrinfo, &c));
  return static_cast<int>(real_getaddrinfo(&c));
}

}  // extern "C"
