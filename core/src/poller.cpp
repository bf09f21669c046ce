// core/src/poller.cpp - the process's epoll instance and its thread
// (poller.hpp).  Descriptor states live in a two-level table indexed by the
// descriptor number: chunks are allocated on first use and never freed, so a
// readiness object is type-stable (the poller may notify one whose
// descriptor was closed and reused: that is a spurious wake-up, I-RD3).
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "poller.hpp"

namespace fiber::detail {

namespace {

struct fd_state {
  readiness rd[2];  // io_dir::in, io_dir::out
};

constexpr int kChunkBits = 10;
constexpr int kChunkSize = 1 << kChunkBits;
constexpr int kChunks = 1 << 12;  // descriptors below 4M

std::atomic<fd_state*> g_chunks[kChunks];
pthread_mutex_t g_start_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_epfd{-1};  // -1: not started (or forgotten in a fork child)

fd_state* state_of(int fd) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return nullptr;
  std::atomic<fd_state*>& slot = g_chunks[fd >> kChunkBits];
  fd_state* c = slot.load(std::memory_order_acquire);  // acquire: pairs with the release CAS below
  if (!c) {
    auto* fresh = new (std::nothrow) fd_state[kChunkSize];
    if (!fresh) return nullptr;
    // release: publishes the constructed chunk; acquire on failure: we read the winner's.
    if (slot.compare_exchange_strong(c, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) {
      c = fresh;
    } else {
      delete[] fresh;
    }
  }
  return &c[fd & (kChunkSize - 1)];
}

void dispatch(const struct epoll_event& ev) noexcept {
  fd_state* s = state_of(ev.data.fd);
  if (!s) return;
  constexpr std::uint32_t kIn = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  constexpr std::uint32_t kOut = EPOLLOUT | EPOLLHUP | EPOLLERR;
  if (ev.events & kIn) s->rd[0].notify();
  if (ev.events & kOut) s->rd[1].notify();
}

void* poller_main(void* arg) {
  int ep = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
  pthread_setname_np(pthread_self(), "fiber-poller");
  struct epoll_event evs[128];
  for (;;) {
    int n = epoll_wait(ep, evs, 128, -1);
    for (int i = 0; i < n; ++i) dispatch(evs[i]);
  }
  return nullptr;
}

// Under g_start_mu.  The thread blocks every signal: the program's signals go
// to its own threads and the KLTs, never to a thread it does not know.
int start_locked() noexcept {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return errno;
  // Raw rt_sigprocmask: a fiber's pthread_sigmask is interposed (signals.cpp).
  // glibc's internal signals 32 and 33 stay open (setuid() waits on SIGSETXID).
  std::uint64_t all = ~((std::uint64_t{1} << 31) | (std::uint64_t{1} << 32)), old = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 64 * 1024);
  pthread_t t;
  int r = pthread_create(&t, &a, poller_main, reinterpret_cast<void*>(static_cast<std::intptr_t>(ep)));
  pthread_attr_destroy(&a);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  if (r != 0) {
    close(ep);
    return r;
  }
  g_epfd.store(ep, std::memory_order_release);  // release: pairs with io_register's acquire
  return 0;
}

int epoll_fd() noexcept {
  int ep = g_epfd.load(std::memory_order_acquire);  // acquire: pairs with start_locked's release
  if (ep >= 0) return ep;
  pthread_mutex_lock(&g_start_mu);
  ep = g_epfd.load(std::memory_order_relaxed);  // relaxed: under g_start_mu
  int r = ep >= 0 ? 0 : start_locked();
  pthread_mutex_unlock(&g_start_mu);
  if (r != 0) {
    errno = r;
    return -1;
  }
  return g_epfd.load(std::memory_order_acquire);  // acquire: as above
}

}  // namespace

readiness* io_readiness(int fd, io_dir d) noexcept {
  fd_state* s = state_of(fd);
  return s ? &s->rd[static_cast<int>(d)] : nullptr;
}

int io_register(int fd) noexcept {
  if (!state_of(fd)) return ENOMEM;
  int ep = epoll_fd();
  if (ep < 0) return errno;
  struct epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 || errno == EEXIST) return 0;
  return errno;
}

void io_notify_all(int fd) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return;
  // acquire: pairs with state_of's release CAS; no chunk means nobody ever waited.
  fd_state* c = g_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
  if (!c) return;
  c[fd & (kChunkSize - 1)].rd[0].notify();
  c[fd & (kChunkSize - 1)].rd[1].notify();
}

long io_poller_threads() noexcept {
  return g_epfd.load(std::memory_order_relaxed) >= 0 ? 1 : 0;  // relaxed: a census, confirmed by the rules
}

void io_poller_forget() noexcept {
  g_epfd.store(-1, std::memory_order_relaxed);  // relaxed: the child has one thread
  g_start_mu = PTHREAD_MUTEX_INITIALIZER;
}

}  // namespace fiber::detail
