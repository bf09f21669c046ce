// core/src/poller.cpp - the process's epoll instance and its thread
// (poller.hpp).  Descriptor states live in a two-level table indexed by the
// descriptor number: chunks are allocated on first use and never freed, so a
// readiness object is type-stable (the poller may notify one whose
// descriptor was closed and reused: that is a spurious wake-up, I-RD3).
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "idle_poll.hpp"
#include "io_interrupt.hpp"
#include "poller.hpp"

namespace fiber::detail {

namespace {

struct fd_state {
  readiness rd[2];  // io_dir::in, io_dir::out
  // Cached facts (poller.hpp): bits 0-7 facts, 8-31 the sweep epoch they
  // were learnt in, 32-63 a generation bumped by every io_facts_forget.
  std::atomic<std::uint64_t> facts{0};
  std::atomic<std::uint32_t> parked{0};  // callers parked on it (park_loop)
};

constexpr int kChunkBits = 10;
constexpr int kChunkSize = 1 << kChunkBits;
constexpr int kChunks = 1 << 12;  // descriptors below 4M

// Not named g_chunks: tools/gdb/fiber_gdb.py finds the fiber slots by that name.
std::atomic<fd_state*> g_fd_chunks[kChunks];
pthread_mutex_t g_start_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_epfd{-1};  // -1: not started (or forgotten in a fork child)
std::atomic<std::uint32_t> g_epoch{1};  // the poller's sweeps; facts of an older one are void

constexpr std::uint64_t kFactBits = 0xff, kEpochMask = 0xffffff, kGenUnit = std::uint64_t{1} << 32;

fd_state* state_of(int fd) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return nullptr;
  std::atomic<fd_state*>& slot = g_fd_chunks[fd >> kChunkBits];
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
  if (ev.data.fd == intr_eventfd()) {
    int intr_fd = ev.data.fd;  // a program signal: wake the interruptible parks
    std::uint64_t v;
    (void)read(intr_fd, &v, sizeof v);
    intr_wake_all();
    return;
  }
  fd_state* s = state_of(ev.data.fd);
  if (!s) return;
  constexpr std::uint32_t kIn = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  constexpr std::uint32_t kOut = EPOLLOUT | EPOLLHUP | EPOLLERR;
  if (ev.events & kIn) s->rd[0].notify();
  if (ev.events & kOut) s->rd[1].notify();
}

std::uint64_t mono_ms() noexcept {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000u + static_cast<std::uint64_t>(t.tv_nsec) / 1000000u;
}

bool sock_timeout_set(int fd, int opt) noexcept {
  struct timeval tv{};
  socklen_t len = sizeof tv;
  if (syscall(SYS_getsockopt, fd, SOL_SOCKET, opt, &tv, &len) != 0) return false;  // ENOTSOCK: none
  return tv.tv_sec != 0 || tv.tv_usec != 0;
}

// The facts of a descriptor with parked callers, re-checked by the poller
// with raw system calls (the interposers would forget them).
unsigned check_facts(int ep, int fd) noexcept {
  long fl = syscall(SYS_fcntl, fd, F_GETFL);
  if (fl < 0 || (fl & O_NONBLOCK)) return 0;
  struct epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.fd = fd;  // added now if it was not (a stale "registered"): it reports readiness at once
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) return 0;
  return kFactRegistered | (sock_timeout_set(fd, SO_RCVTIMEO) ? 0 : kFactPlainIn) |
         (sock_timeout_set(fd, SO_SNDTIMEO) ? 0 : kFactPlainOut);
}

// A CAS from the stamp: lost (and the facts not stored) when an invalidating
// call or a sweep changed the word since.
void store_facts(fd_state& s, std::uint64_t stamp, unsigned facts, std::uint32_t epoch) noexcept {
  std::uint64_t keep = ((stamp >> 8) & kEpochMask) == (epoch & kEpochMask) ? stamp & kFactBits : 0;
  std::uint64_t next = (stamp & ~(kGenUnit - 1)) | (std::uint64_t{epoch & kEpochMask} << 8) | keep | facts;
  // release: publishes the facts with their epoch; a failure needs no ordering.
  s.facts.compare_exchange_strong(stamp, next, std::memory_order_release, std::memory_order_relaxed);
}


// A new generation, epoch 0, no facts.  release: orders the invalidating call
// before a reader that sees the new word (and fails store_facts's CAS).
void forget(fd_state& s) noexcept {
  std::uint64_t cur = s.facts.load(std::memory_order_relaxed);  // relaxed: refined by the CAS
  while (!s.facts.compare_exchange_weak(cur, ((cur >> 32) + 1) << 32, std::memory_order_release,
                                        std::memory_order_relaxed)) {
  }
}

// Every kSweepMs: a new epoch voids every cached fact; a descriptor with
// parked callers has its facts re-checked, and its callers woken (they take
// the slow path) when one no longer holds.
void sweep(int ep) noexcept {
  // release: pairs with io_facts's acquire (a reader of the new epoch).
  std::uint32_t epoch = g_epoch.fetch_add(1, std::memory_order_acq_rel) + 1;
  for (int c = 0; c < kChunks; ++c) {
    fd_state* chunk = g_fd_chunks[c].load(std::memory_order_acquire);  // acquire: pairs with state_of's CAS
    if (!chunk) continue;
    for (int i = 0; i < kChunkSize; ++i) {
      fd_state& s = chunk[i];
      if (s.parked.load(std::memory_order_relaxed) == 0) continue;  // relaxed: a hint; the next sweep retries
      std::uint64_t stamp = s.facts.load(std::memory_order_acquire);  // acquire: pairs with forget's release
      unsigned f = check_facts(ep, (c << kChunkBits) | i);
      if (f == (kFactRegistered | kFactPlainIn | kFactPlainOut)) {
        store_facts(s, stamp, f, epoch);
      } else {
        forget(s);
        s.rd[0].notify();
        s.rd[1].notify();
      }
    }
  }
}

void* poller_main(void* arg) {
  int ep = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
  pthread_setname_np(pthread_self(), "fiber-poller");
  struct epoll_event evs[128];
  std::uint64_t last = mono_ms();
  for (;;) {
    idle_poll_await_turn(last + kSweepMs);  // while the KLTs poll, leave readiness to them (idle_poll.hpp)
    int n = epoll_wait(ep, evs, 128, kSweepMs);
    bool kick = false;
    for (int i = 0; i < n; ++i) {
      if (idle_poll_is_kick(evs[i])) kick = true;
      else dispatch(evs[i]);
    }
    // While an idle KLT sleeps in the instance, step aside (idle_poll.hpp).
    if (n > 0) idle_poll_step_aside(kick, last + kSweepMs);
    std::uint64_t now = mono_ms();
    if (now - last >= static_cast<std::uint64_t>(kSweepMs)) {
      sweep(ep);
      last = now;
    }
  }
  return nullptr;
}

// Under g_start_mu.  The thread blocks every signal: the program's signals go
// to its own threads and the KLTs, never to a thread it does not know.
int start_locked() noexcept {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return errno;
  // The program-signal wake-up (io_interrupt.hpp): level-triggered, read by
  // the poller.  Without it signals interrupt nothing (a fiber is not hung).
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd >= 0) {
    struct epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = efd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0) intr_attach_eventfd(efd); else close(efd);
  }
  idle_poll_attach(ep);  // idle KLTs may sleep in this instance from now on
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

unsigned io_facts(int fd) noexcept {
  fd_state* s = state_of(fd);
  if (!s) return 0;
  std::uint64_t w = s->facts.load(std::memory_order_acquire);  // acquire: pairs with store_facts's release
  std::uint32_t epoch = g_epoch.load(std::memory_order_acquire);  // acquire: pairs with sweep's bump
  return ((w >> 8) & kEpochMask) == (epoch & kEpochMask) ? static_cast<unsigned>(w & kFactBits) : 0;
}

std::uint64_t io_facts_stamp(int fd) noexcept {
  fd_state* s = state_of(fd);
  return s ? s->facts.load(std::memory_order_acquire) : 0;  // acquire: as io_facts
}

void io_facts_store(int fd, std::uint64_t stamp, unsigned facts) noexcept {
  if (fd_state* s = state_of(fd)) store_facts(*s, stamp, facts, g_epoch.load(std::memory_order_acquire));  // acquire: as io_facts
}

void io_facts_forget(int fd) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return;
  // acquire: pairs with state_of's release CAS; no chunk: nothing cached.
  fd_state* c = g_fd_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
  if (!c) return;
  forget(c[fd & (kChunkSize - 1)]);
}

std::uint32_t io_sweeps() noexcept {
  return g_epoch.load(std::memory_order_relaxed) - 1;  // relaxed: a test counter
}

void io_parked(int fd, int delta) noexcept {
  if (fd_state* s = state_of(fd))  // relaxed: a hint for the sweep (poller.hpp)
    s->parked.fetch_add(static_cast<std::uint32_t>(delta), std::memory_order_relaxed);
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
  fd_state* c = g_fd_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
  if (!c) return;
  c[fd & (kChunkSize - 1)].rd[0].notify();
  c[fd & (kChunkSize - 1)].rd[1].notify();
}

long io_poller_threads() noexcept {
  return g_epfd.load(std::memory_order_relaxed) >= 0 ? 1 : 0;  // relaxed: a census, confirmed by the rules
}

int io_epfd() noexcept {
  return g_epfd.load(std::memory_order_acquire);  // acquire: pairs with start_locked's release
}

void io_dispatch(const struct epoll_event& ev) noexcept { dispatch(ev); }

int io_poller_start() noexcept { return epoll_fd() < 0 ? errno : 0; }

void io_poller_forget() noexcept {
  g_epfd.store(-1, std::memory_order_relaxed);  // relaxed: the child has one thread
  intr_attach_eventfd(-1);
  idle_poll_forget();
  g_start_mu = PTHREAD_MUTEX_INITIALIZER;
}

}  // namespace fiber::detail
