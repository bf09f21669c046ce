// core/src/sync.cpp - the C API of the synchronisation primitives (fiber.h):
// fiber_mutex_*, fiber_cond_*, fiber_sem_*, fiber_barrier_*.
//
// Each C object is opaque storage (uint64_t[6]) holding the algorithm object
// of core/include/fiber/detail/ for the native seam.  The static_asserts below
// check that it fits, is suitably aligned and standard-layout, and the unit
// tests check that a freshly initialised object is all-zero bytes, which is
// what FIBER_MUTEX_INITIALIZER / FIBER_COND_INITIALIZER rely on (the
// algorithms' zero state is "unlocked, no waiters"; I-M2).  A statically
// initialised object is used in place without a constructor having run, as
// glibc does with PTHREAD_MUTEX_INITIALIZER: every member is an atomic, a
// pointer or an integer whose zero bytes are its initial value.
//
// Errors follow pthreads: NULL objects, non-NULL attributes and
// timespecs with tv_nsec outside [0, 1e9) give EINVAL, never a crash.
// Timespecs are absolute CLOCK_MONOTONIC times.
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdint>
#include <ctime>
#include <new>
#include <type_traits>

#include "fiber/detail/barrier.hpp"
#include "fiber/detail/condvar.hpp"
#include "fiber/detail/mutex.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/semaphore.hpp"
#include "fiber/fiber.h"
#include "runtime.hpp"  // knobs (testing.h FIBER_KNOB_LIN_*)

namespace {

using fiber::detail::kNoDeadline;
using mutex_t = fiber::detail::basic_mutex<fiber::detail::seam>;
using cond_t = fiber::detail::basic_condvar<fiber::detail::seam>;
using sem_t = fiber::detail::basic_semaphore<fiber::detail::seam>;
using barrier_t = fiber::detail::basic_barrier<fiber::detail::seam>;

template <class Impl, class Storage>
constexpr bool fits() {
  return sizeof(Impl) <= sizeof(Storage::opaque_) && alignof(Impl) <= alignof(Storage) &&
         std::is_standard_layout_v<Impl> && std::is_trivially_destructible_v<Impl>;
}
static_assert(fits<mutex_t, fiber_mutex_t>(), "basic_mutex must fit fiber_mutex_t");
static_assert(fits<cond_t, fiber_cond_t>(), "basic_condvar must fit fiber_cond_t");
static_assert(fits<sem_t, fiber_sem_t>(), "basic_semaphore must fit fiber_sem_t");
static_assert(fits<barrier_t, fiber_barrier_t>(), "basic_barrier must fit fiber_barrier_t");
static_assert(sem_t::kMax == INT32_MAX, "fiber.h promises INT32_MAX permits");

// Placement in the opaque words.  Only called with non-NULL objects.
mutex_t* impl(fiber_mutex_t* m) noexcept { return std::launder(reinterpret_cast<mutex_t*>(m->opaque_)); }
cond_t* impl(fiber_cond_t* c) noexcept { return std::launder(reinterpret_cast<cond_t*>(c->opaque_)); }
sem_t* impl(fiber_sem_t* s) noexcept { return std::launder(reinterpret_cast<sem_t*>(s->opaque_)); }
barrier_t* impl(fiber_barrier_t* b) noexcept {
  return std::launder(reinterpret_cast<barrier_t*>(b->opaque_));
}

// Absolute CLOCK_MONOTONIC timespec -> deadline in ns (saturating).
int to_deadline(const struct timespec* ts, std::uint64_t* out) noexcept {
  if (ts == nullptr || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L) return EINVAL;
  if (ts->tv_sec < 0) {
    *out = 0;  // long past: times out at once
    return 0;
  }
  const auto sec = static_cast<std::uint64_t>(ts->tv_sec);
  if (sec >= (kNoDeadline - 1000000000u) / 1000000000u) {
    *out = kNoDeadline;  // beyond the year 2554: never
    return 0;
  }
  *out = sec * 1000000000u + static_cast<std::uint64_t>(ts->tv_nsec);
  return 0;
}

// Planted defects for the linearizability checker (testing.h FIBER_KNOB_LIN_*,
// stress/stress_lin.cpp, tools/lin_check.py).  Out of line and behind one
// relaxed load of the knob, so the API's paths cost nothing measurable when off.
// relaxed (both counters): they only pick which call misbehaves; no ordering.
[[gnu::noinline]] int trylock_planted(mutex_t* m) noexcept {
  static std::atomic<std::uint32_t> busy{0};
  const int rc = m->try_lock();
  if (rc == EBUSY && busy.fetch_add(1, std::memory_order_relaxed) % 16 == 15) return 0;  // a lie
  return rc;
}
[[gnu::noinline]] int post_planted(sem_t* s) noexcept {
  static std::atomic<std::uint32_t> posts{0};
  return s->post(posts.fetch_add(1, std::memory_order_relaxed) % 64 == 63 ? 2 : 1);
}

}  // namespace

extern "C" {

// --- mutex -------------------------------------------------------------------
int fiber_mutex_init(fiber_mutex_t* m, const void* attr) {
  if (m == nullptr || attr != nullptr) return EINVAL;
  std::memset(m->opaque_, 0, sizeof m->opaque_);  // unused tail too: equal to the static initialiser
  new (m->opaque_) mutex_t();
  return 0;
}
int fiber_mutex_lock(fiber_mutex_t* m) { return m == nullptr ? EINVAL : impl(m)->lock(); }
int fiber_mutex_trylock(fiber_mutex_t* m) {
  if (m == nullptr) return EINVAL;
  using fiber::detail::knobs;
  if (__builtin_expect(knobs.lin_trylock_lies.load(std::memory_order_relaxed), 0))  // relaxed: test knob
    return trylock_planted(impl(m));
  return impl(m)->try_lock();
}
int fiber_mutex_unlock(fiber_mutex_t* m) { return m == nullptr ? EINVAL : impl(m)->unlock(); }
int fiber_mutex_destroy(fiber_mutex_t* m) {
  if (m == nullptr) return EINVAL;
  return impl(m)->check_destroy();  // trivially destructible: nothing else to do
}

// --- condition variable --------------------------------------------------------
int fiber_cond_init(fiber_cond_t* c, const void* attr) {
  if (c == nullptr || attr != nullptr) return EINVAL;
  std::memset(c->opaque_, 0, sizeof c->opaque_);  // unused tail too: equal to the static initialiser
  new (c->opaque_) cond_t();
  return 0;
}
int fiber_cond_wait(fiber_cond_t* c, fiber_mutex_t* m) {
  if (c == nullptr || m == nullptr) return EINVAL;
  return impl(c)->wait(*impl(m), kNoDeadline);
}
int fiber_cond_timedwait(fiber_cond_t* c, fiber_mutex_t* m, const struct timespec* abstime) {
  if (c == nullptr || m == nullptr) return EINVAL;
  std::uint64_t deadline = 0;
  if (const int rc = to_deadline(abstime, &deadline); rc != 0) return rc;
  return impl(c)->wait(*impl(m), deadline);
}
int fiber_cond_signal(fiber_cond_t* c) {
  if (c == nullptr) return EINVAL;
  impl(c)->notify_one();
  return 0;
}
int fiber_cond_broadcast(fiber_cond_t* c) {
  if (c == nullptr) return EINVAL;
  impl(c)->notify_all();
  return 0;
}
int fiber_cond_destroy(fiber_cond_t* c) { return c == nullptr ? EINVAL : impl(c)->check_destroy(); }

// --- semaphore ---------------------------------------------------------------
int fiber_sem_init(fiber_sem_t* s, unsigned value) {
  if (s == nullptr || value > static_cast<unsigned>(INT32_MAX)) return EINVAL;
  std::memset(s->opaque_, 0, sizeof s->opaque_);  // unused tail too: equal to the static initialiser
  new (s->opaque_) sem_t(value);
  return 0;
}
int fiber_sem_wait(fiber_sem_t* s) { return s == nullptr ? EINVAL : impl(s)->wait(kNoDeadline); }
int fiber_sem_trywait(fiber_sem_t* s) { return s == nullptr ? EINVAL : impl(s)->try_wait(); }
int fiber_sem_timedwait(fiber_sem_t* s, const struct timespec* abstime) {
  if (s == nullptr) return EINVAL;
  std::uint64_t deadline = 0;
  if (const int rc = to_deadline(abstime, &deadline); rc != 0) return rc;
  return impl(s)->wait(deadline);
}
int fiber_sem_post(fiber_sem_t* s) {
  if (s == nullptr) return EINVAL;
  using fiber::detail::knobs;
  if (__builtin_expect(knobs.lin_sem_post_twice.load(std::memory_order_relaxed), 0))  // relaxed: test knob
    return post_planted(impl(s));
  return impl(s)->post(1);
}
int fiber_sem_getvalue(fiber_sem_t* s, int* value) {
  if (s == nullptr || value == nullptr) return EINVAL;
  *value = static_cast<int>(impl(s)->value());
  return 0;
}
int fiber_sem_destroy(fiber_sem_t* s) { return s == nullptr ? EINVAL : impl(s)->check_destroy(); }

// --- barrier -------------------------------------------------------------------
int fiber_barrier_init(fiber_barrier_t* b, const void* attr, unsigned count) {
  if (b == nullptr || attr != nullptr || count == 0) return EINVAL;
  std::memset(b->opaque_, 0, sizeof b->opaque_);  // unused tail too: equal to the static initialiser
  new (b->opaque_) barrier_t(count);
  return 0;
}
int fiber_barrier_wait(fiber_barrier_t* b) {
  if (b == nullptr || impl(b)->count() == 0) return EINVAL;  // never initialised
  return impl(b)->arrive_and_wait() ? FIBER_BARRIER_SERIAL_THREAD : 0;
}
int fiber_barrier_destroy(fiber_barrier_t* b) {
  return b == nullptr ? EINVAL : impl(b)->check_destroy();
}

}  // extern "C"
