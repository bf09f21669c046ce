// core/src/interpose_locks.cpp - libc's blocking locks seen through the
// runtime: a fiber that holds one is not preempted, a fiber that finds one
// busy parks instead of blocking its KLT (what and why: interpose_locks.hpp,
// invariant I9 in runtime.hpp, papers/design.md "Blocking locks in fibers").
//
// Interposition works as in signals.cpp: with libfiber.so these definitions
// come before libc's in symbol lookup; with libfiber.a, fiber_init references
// interpose_locks_init, so this object is linked and its definitions are the
// executable's, which libstdc++'s calls bind to as well.  The real functions
// come from dlsym(RTLD_NEXT) under real_symbol.hpp's guard.
//
// Every fiber path is: libc's non-blocking try; on "busy", the parking lot
// (parking_lot.hpp: register, try again, park; I-LOT1).  Every release is:
// libc's release, then a wake of the lot's waiters of that address.
#include "interpose_locks.hpp"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include <atomic>

#include "fiber/detail/parking_lot.hpp"
#include "real_symbol.hpp"
#include "runtime.hpp"

// glibc's own entry points (compat symbols, so named with their version):
// used while dlsym runs, and when there is no dlsym (a fully static program).
__asm__(".symver glibc_mutex_lock,__pthread_mutex_lock@GLIBC_2.2.5");
__asm__(".symver glibc_mutex_trylock,__pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver glibc_mutex_unlock,__pthread_mutex_unlock@GLIBC_2.2.5");
extern "C" {
int glibc_mutex_lock(pthread_mutex_t*);
int glibc_mutex_trylock(pthread_mutex_t*);
int glibc_mutex_unlock(pthread_mutex_t*);
}

namespace fiber::detail {
namespace {

using lot_t = basic_parking_lot<native_seam>;
lot_t g_lot;  // zero storage is a valid, empty lot (seam.hpp); constant-initialised
constexpr int kBusy = lot_t::kBusy;
// I-LOT5: a fiber waiting for a mutex re-checks by itself after 1 ms (then 2,
// 4... 64 ms): an OS thread's pthread_cond_wait releases the mutex inside
// libc, where no interposer sees it.
constexpr std::uint64_t kMutexRecheckNs = 1000000;

libc_locks g_real{};
std::atomic<bool> g_resolved{false};

template <class F>
void find(F& slot, const char* name) noexcept {
  slot = reinterpret_cast<F>(find_next_symbol(name));
}

void resolve_all() noexcept {
  symbol_lookup_scope guard;  // dlsym itself must not come back here (in_symbol_lookup)
  libc_locks r{};
  find(r.mutex_lock, "pthread_mutex_lock");
  find(r.mutex_trylock, "pthread_mutex_trylock");
  find(r.mutex_timedlock, "pthread_mutex_timedlock");
  find(r.mutex_clocklock, "pthread_mutex_clocklock");
  find(r.mutex_unlock, "pthread_mutex_unlock");
  find(r.cond_wait, "pthread_cond_wait");
  find(r.cond_timedwait, "pthread_cond_timedwait");
  find(r.cond_clockwait, "pthread_cond_clockwait");
  find(r.cond_signal, "pthread_cond_signal");
  find(r.cond_broadcast, "pthread_cond_broadcast");
  find(r.rw_rdlock, "pthread_rwlock_rdlock");
  find(r.rw_wrlock, "pthread_rwlock_wrlock");
  find(r.rw_tryrdlock, "pthread_rwlock_tryrdlock");
  find(r.rw_trywrlock, "pthread_rwlock_trywrlock");
  find(r.rw_timedrdlock, "pthread_rwlock_timedrdlock");
  find(r.rw_timedwrlock, "pthread_rwlock_timedwrlock");
  find(r.rw_clockrdlock, "pthread_rwlock_clockrdlock");
  find(r.rw_clockwrlock, "pthread_rwlock_clockwrlock");
  find(r.rw_unlock, "pthread_rwlock_unlock");
  find(r.sem_wait, "sem_wait");
  find(r.sem_trywait, "sem_trywait");
  find(r.sem_timedwait, "sem_timedwait");
  find(r.sem_clockwait, "sem_clockwait");
  find(r.sem_post, "sem_post");
  if (!r.mutex_lock) r.mutex_lock = glibc_mutex_lock;  // no dlsym: a fully static program
  if (!r.mutex_trylock) r.mutex_trylock = glibc_mutex_trylock;
  if (!r.mutex_unlock) r.mutex_unlock = glibc_mutex_unlock;
  if (!g_resolved.load(std::memory_order_acquire)) {  // acquire: pairs with the release below
    g_real = r;  // at load time (one thread) or before the first fiber exists
    g_resolved.store(true, std::memory_order_release);  // release: pairs with real()'s acquire
  }
}

__attribute__((constructor)) void resolve_at_load() { resolve_all(); }

// The real functions (the interposers of the three mutex calls use glibc's
// own entry points while dlsym runs).
const libc_locks& real() noexcept {
  // acquire: pairs with resolve_all()'s release; g_real is complete.
  if (__builtin_expect(!g_resolved.load(std::memory_order_acquire), 0) && !in_symbol_lookup())
    resolve_all();
  return g_real;
}
int real_mutex_unlock(pthread_mutex_t* m) noexcept {
  return in_symbol_lookup() ? glibc_mutex_unlock(m) : real().mutex_unlock(m);
}

// ---- who calls, and the hold (I9) -------------------------------------------

// The calling fiber, or nullptr: an OS thread, or the knob that restores the
// old behaviour (a KLT blocks in libc).
fcb* fiber_caller() noexcept {
  fcb* f = current_fiber();
  if (f && knobs.no_lock_interpose.load(std::memory_order_relaxed)) return nullptr;  // relaxed: a test knob
  return f;
}

// A lock taken: not preempted until released (I9, I5).
void hold(fcb* f) noexcept {
  if (knobs.no_lock_hold.load(std::memory_order_relaxed)) return;  // relaxed: a test knob
  ++f->locks_held;  // I9: written by f only
  f->gate.disable();
}

// A lock released: a tick refused meanwhile is taken now (I-G2).  A release
// of a lock this fiber did not take (locks_held 0) changes nothing.
void unhold(fcb* f) noexcept {
  if (f->locks_held == 0) return;
  --f->locks_held;
  if (f->gate.enable()) switch_out(klt_action::yield);
}

// ---- deadlines ----------------------------------------------------------------

bool bad_time(const struct timespec* t) noexcept {
  return t == nullptr || t->tv_nsec < 0 || t->tv_nsec >= 1000000000L;
}

// An absolute time on `clock` as a CLOCK_MONOTONIC deadline (seam.hpp).
std::uint64_t deadline_of(clockid_t clock, const struct timespec* abs) noexcept {
  struct timespec now;
  clock_gettime(clock, &now);
  const std::uint64_t mono = native_seam::now_ns();
  const long long left = (static_cast<long long>(abs->tv_sec) - now.tv_sec) * 1000000000LL +
                         (abs->tv_nsec - now.tv_nsec);
  return left <= 0 ? mono : mono + static_cast<std::uint64_t>(left);
}

bool known_clock(clockid_t c) noexcept { return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC; }

// glibc's layouts (2.34+, x86_64): process-shared objects keep libc's path.
bool pshared(const pthread_mutex_t* m) noexcept { return (m->__data.__kind & 128) != 0; }
bool pshared(const pthread_rwlock_t* rw) noexcept { return rw->__data.__shared != 0; }
unsigned cond_wrefs(const pthread_cond_t* c) noexcept {
  return __atomic_load_n(&c->__data.__wrefs, __ATOMIC_RELAXED);  // relaxed: reads the fixed flag bits
}
bool pshared(const pthread_cond_t* c) noexcept { return (cond_wrefs(c) & 1) != 0; }
clockid_t cond_clock(const pthread_cond_t* c) noexcept {
  return (cond_wrefs(c) & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}
// glibc's struct new_sem; `private` is FUTEX_PRIVATE (0) or FUTEX_SHARED (128).
struct glibc_sem { std::uint64_t data; int priv; int pad; };
bool pshared(const sem_t* s) noexcept { return reinterpret_cast<const glibc_sem*>(s)->priv != 0; }

// ---- mutex ----------------------------------------------------------------------

int mutex_try(pthread_mutex_t* m) noexcept {
  int r = real().mutex_trylock(m);
  return r == EBUSY ? kBusy : r;
}

// abs: the caller's timeout, checked only when the mutex is busy (as libc).
int fiber_mutex_lock(fcb* f, pthread_mutex_t* m, clockid_t clock, const struct timespec* abs) noexcept {
  int r = real().mutex_trylock(m);
  if (r == EBUSY) {
    std::uint64_t deadline = kNoDeadline;
    if (abs) {
      if (bad_time(abs) || !known_clock(clock)) return EINVAL;
      deadline = deadline_of(clock, abs);
    }
    r = g_lot.acquire(m, [m] { return mutex_try(m); }, deadline, kMutexRecheckNs);
  }
  if (r == 0 || r == EOWNERDEAD) hold(f);
  return r;
}

int any_mutex_unlock(fcb* f, pthread_mutex_t* m) noexcept {
  int r = real_mutex_unlock(m);
  if (r != 0) return r;
  if (!pshared(m)) g_lot.unpark_one(m, true);  // after libc's RMW: a waiting fiber retries (I-LOT1)
  if (f) unhold(f);
  return 0;
}

// ---- condition variable -----------------------------------------------------

int fiber_cond_wait(fcb* f, pthread_cond_t* c, pthread_mutex_t* m, std::uint64_t deadline) noexcept {
  lot_t::node n(&f->park);
  g_lot.enqueue(&n, c, wait_kind::condvar);  // before m is released: a signal under m finds us
  int r = any_mutex_unlock(f, m);
  if (r != 0) {  // not the owner (an error-checking mutex)
    if (!g_lot.cancel(&n, c)) {
      while (!n.wait(kNoDeadline)) {}
      g_lot.unpark_one(c);  // the signal we leave with goes on (I-LOT3)
    }
    return r;
  }
  bool granted = n.wait(deadline);
  if (!granted && !g_lot.cancel(&n, c)) {  // a signal took n meanwhile: it counts
    while (!n.wait(kNoDeadline)) {}
    granted = true;
  }
  r = fiber_mutex_lock(f, m, CLOCK_MONOTONIC, nullptr);
  if (r != 0 && r != EOWNERDEAD) return r;
  return granted ? r : ETIMEDOUT;
}

// ---- rwlock and semaphore ----------------------------------------------------------

template <class Try>
int fiber_rw_lock(fcb* f, pthread_rwlock_t* rw, Try try_fn, clockid_t clock,
                  const struct timespec* abs) noexcept {
  int r = try_fn(rw);
  if (r == EBUSY) {
    std::uint64_t deadline = kNoDeadline;
    if (abs) {
      if (bad_time(abs) || !known_clock(clock)) return EINVAL;
      deadline = deadline_of(clock, abs);
    }
    r = g_lot.acquire(rw, [rw, try_fn] { int t = try_fn(rw); return t == EBUSY ? kBusy : t; }, deadline, 0,
                      wait_kind::libc_lock);  // diagnostics: not wait_kind::mutex, whose object the detector reads as a fiber mutex
  }
  if (r == 0) hold(f);
  return r;
}

// sem_*: -1 and errno, as libc.
int fiber_sem_wait(sem_t* s, clockid_t clock, const struct timespec* abs) noexcept {
  if (real().sem_trywait(s) == 0) return 0;
  if (errno != EAGAIN) return -1;
  std::uint64_t deadline = kNoDeadline;
  if (abs) {
    if (bad_time(abs) || !known_clock(clock)) {
      errno = EINVAL;
      return -1;
    }
    deadline = deadline_of(clock, abs);
  }
  int r = g_lot.acquire(s, [s] {
    if (real().sem_trywait(s) == 0) return 0;
    return errno == EAGAIN ? kBusy : errno;
  }, deadline, 0, wait_kind::semaphore);
  if (r == 0) return 0;
  errno = r;
  return -1;
}

}  // namespace

const libc_locks& real_locks() noexcept { return real(); }
void interpose_locks_init() noexcept { real(); }

}  // namespace fiber::detail

using namespace fiber::detail;

#define FIBER_INTERPOSER extern "C" __attribute__((visibility("default")))

// ---- mutex ----------------------------------------------------------------------

FIBER_INTERPOSER int pthread_mutex_lock(pthread_mutex_t* m) {
  if (in_symbol_lookup()) return glibc_mutex_lock(m);
  fcb* f = fiber_caller();
  if (!f || pshared(m)) return real().mutex_lock(m);
  return fiber_mutex_lock(f, m, CLOCK_REALTIME, nullptr);
}

FIBER_INTERPOSER int pthread_mutex_trylock(pthread_mutex_t* m) {
  if (in_symbol_lookup()) return glibc_mutex_trylock(m);
  int r = real().mutex_trylock(m);
  if (r == 0 || r == EOWNERDEAD)
    if (fcb* f = fiber_caller()) hold(f);
  return r;
}

FIBER_INTERPOSER int pthread_mutex_timedlock(pthread_mutex_t* m, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(m)) return real().mutex_timedlock(m, abs);
  return fiber_mutex_lock(f, m, CLOCK_REALTIME, abs);
}

FIBER_INTERPOSER int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(m)) return real().mutex_clocklock(m, clock, abs);
  return fiber_mutex_lock(f, m, clock, abs);
}

FIBER_INTERPOSER int pthread_mutex_unlock(pthread_mutex_t* m) {
  if (in_symbol_lookup()) return glibc_mutex_unlock(m);
  return any_mutex_unlock(fiber_caller(), m);
}

// ---- condition variable -----------------------------------------------------

FIBER_INTERPOSER int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  fcb* f = fiber_caller();
  if (!f || pshared(c) || pshared(m)) return real().cond_wait(c, m);
  return fiber_cond_wait(f, c, m, kNoDeadline);
}

FIBER_INTERPOSER int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(c) || pshared(m)) return real().cond_timedwait(c, m, abs);
  if (bad_time(abs)) return EINVAL;
  return fiber_cond_wait(f, c, m, deadline_of(cond_clock(c), abs));
}

FIBER_INTERPOSER int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                                            const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(c) || pshared(m)) return real().cond_clockwait(c, m, clock, abs);
  if (bad_time(abs) || !known_clock(clock)) return EINVAL;
  return fiber_cond_wait(f, c, m, deadline_of(clock, abs));
}

FIBER_INTERPOSER int pthread_cond_signal(pthread_cond_t* c) {
  if (!pshared(c)) g_lot.unpark_one(c);
  return real().cond_signal(c);  // OS-thread waiters (a spurious wake-up at most: allowed)
}

FIBER_INTERPOSER int pthread_cond_broadcast(pthread_cond_t* c) {
  if (!pshared(c)) g_lot.unpark_all(c);
  return real().cond_broadcast(c);
}

// ---- rwlock --------------------------------------------------------------------------

namespace {
int try_rd(pthread_rwlock_t* rw) noexcept { return real().rw_tryrdlock(rw); }
int try_wr(pthread_rwlock_t* rw) noexcept { return real().rw_trywrlock(rw); }
}  // namespace

FIBER_INTERPOSER int pthread_rwlock_rdlock(pthread_rwlock_t* rw) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_rdlock(rw);
  return fiber_rw_lock(f, rw, try_rd, CLOCK_REALTIME, nullptr);
}

FIBER_INTERPOSER int pthread_rwlock_wrlock(pthread_rwlock_t* rw) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_wrlock(rw);
  return fiber_rw_lock(f, rw, try_wr, CLOCK_REALTIME, nullptr);
}

FIBER_INTERPOSER int pthread_rwlock_tryrdlock(pthread_rwlock_t* rw) {
  int r = try_rd(rw);
  if (r == 0)
    if (fcb* f = fiber_caller()) hold(f);
  return r;
}

FIBER_INTERPOSER int pthread_rwlock_trywrlock(pthread_rwlock_t* rw) {
  int r = try_wr(rw);
  if (r == 0)
    if (fcb* f = fiber_caller()) hold(f);
  return r;
}

FIBER_INTERPOSER int pthread_rwlock_timedrdlock(pthread_rwlock_t* rw, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_timedrdlock(rw, abs);
  return fiber_rw_lock(f, rw, try_rd, CLOCK_REALTIME, abs);
}

FIBER_INTERPOSER int pthread_rwlock_timedwrlock(pthread_rwlock_t* rw, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_timedwrlock(rw, abs);
  return fiber_rw_lock(f, rw, try_wr, CLOCK_REALTIME, abs);
}

FIBER_INTERPOSER int pthread_rwlock_clockrdlock(pthread_rwlock_t* rw, clockid_t clock, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_clockrdlock(rw, clock, abs);
  return fiber_rw_lock(f, rw, try_rd, clock, abs);
}

FIBER_INTERPOSER int pthread_rwlock_clockwrlock(pthread_rwlock_t* rw, clockid_t clock, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(rw)) return real().rw_clockwrlock(rw, clock, abs);
  return fiber_rw_lock(f, rw, try_wr, clock, abs);
}

namespace {
// initial-exec: the KLT's own, read in the same call that uses it.
thread_local pid_t tls_tid __attribute__((tls_model("initial-exec"))) = 0;

// glibc's rwlock unlock decides "write unlock" by __cur_writer == the calling
// thread's tid.  A fiber that took the write lock on one KLT and parked while
// holding it (a nested lock, a lot re-check that was granted meanwhile) may
// unlock on another: glibc would then take it for a read unlock and corrupt
// the reader count (seen in stress_blocking: __readers 0xfffffffb, every
// waiter stuck).  Write phase + WRLOCKED (bits 0 and 1 of __readers) means a
// writer owns it, and only the owner unlocks, so the caller is that writer:
// it records the KLT it is on now.
void claim_write_owner(pthread_rwlock_t* rw) noexcept {
  const unsigned r = __atomic_load_n(&rw->__data.__readers, __ATOMIC_RELAXED);  // relaxed: our own lock's state
  if ((r & 3u) != 3u) return;
  if (tls_tid == 0) tls_tid = static_cast<pid_t>(syscall(SYS_gettid));
  __atomic_store_n(&rw->__data.__cur_writer, tls_tid, __ATOMIC_RELAXED);  // relaxed: read by this thread's unlock
}
}  // namespace

FIBER_INTERPOSER int pthread_rwlock_unlock(pthread_rwlock_t* rw) {
  if (fiber_caller() && !pshared(rw)) claim_write_owner(rw);
  int r = real().rw_unlock(rw);
  if (r != 0) return r;
  // All: readers may all proceed, and a writer's turn is decided by libc.
  if (!pshared(rw)) g_lot.unpark_all(rw, true);  // after libc's RMW (I-LOT1)
  if (fcb* f = fiber_caller()) unhold(f);
  return 0;
}

// ---- semaphore ----------------------------------------------------------------------

FIBER_INTERPOSER int sem_wait(sem_t* s) {
  fcb* f = fiber_caller();
  if (!f || pshared(s)) return real().sem_wait(s);
  return fiber_sem_wait(s, CLOCK_REALTIME, nullptr);
}

FIBER_INTERPOSER int sem_timedwait(sem_t* s, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(s)) return real().sem_timedwait(s, abs);
  return fiber_sem_wait(s, CLOCK_REALTIME, abs);
}

FIBER_INTERPOSER int sem_clockwait(sem_t* s, clockid_t clock, const struct timespec* abs) {
  fcb* f = fiber_caller();
  if (!f || pshared(s)) return real().sem_clockwait(s, clock, abs);
  return fiber_sem_wait(s, clock, abs);
}

FIBER_INTERPOSER int sem_post(sem_t* s) {
  int r = real().sem_post(s);
  if (r == 0 && !pshared(s)) g_lot.unpark_one(s, true);  // after libc's RMW (I-LOT1)
  return r;
}
