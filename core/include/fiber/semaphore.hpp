// fiber/semaphore.hpp - fiber::counting_semaphore and fiber::binary_semaphore.
//
// What it does: the interface of C++20 std::counting_semaphore (acquire,
// try_acquire, try_acquire_for, try_acquire_until, release) in C++17, for
// fibers and OS threads.  A fiber that blocks in acquire parks (its KLT runs
// other fibers); an OS thread blocks in the kernel.
//
// Guarantees: permits are handed to blocked parties in FIFO order (a release
// that finds waiters grants the oldest directly, so try_acquire never steals a
// permit a waiter was owed); a release happens-before the acquire that takes
// its permit; timed acquires never give up early (rounded up to whole
// nanoseconds).  The count is held in 31 bits: release() beyond INT32_MAX
// throws std::system_error(value_too_large) and adds nothing it has not already
// handed to a waiter.  max() returns LeastMaxValue (<= INT32_MAX); as with
// the standard, exceeding it is the caller's bug, but only INT32_MAX is checked.
//
// Lifecycle: construct with an initial count in [0, max()]; destroy when no
// party waits (checked in debug builds).  A woken waiter may destroy it at once.
//
// Example:
//     fiber::counting_semaphore<> slots(4);     // at most 4 in the section
//     slots.acquire();  /* ... */  slots.release();
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "fiber/detail/deadline.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/semaphore.hpp"

namespace fiber {

template <std::ptrdiff_t LeastMaxValue = INT32_MAX>
class counting_semaphore {
  using impl_t = detail::basic_semaphore<detail::seam>;
  static_assert(LeastMaxValue >= 0 && LeastMaxValue <= static_cast<std::ptrdiff_t>(impl_t::kMax),
                "fiber::counting_semaphore holds at most INT32_MAX permits");

 public:
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  // Precondition (asserted in debug builds): 0 <= desired <= max().
  explicit counting_semaphore(std::ptrdiff_t desired) noexcept
      : impl_(static_cast<std::uint32_t>(desired)) {
    FIBER_ASSERT(desired >= 0 && desired <= max(), "fiber::counting_semaphore: bad initial count");
  }
  ~counting_semaphore() {
    FIBER_ASSERT(impl_.check_destroy() == 0, "fiber::counting_semaphore destroyed with waiters");
  }
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  // Adds `update` permits (waiters first, FIFO).  Throws std::system_error on a
  // negative update or when the count would pass INT32_MAX.
  void release(std::ptrdiff_t update = 1) {
    if (update < 0 || update > static_cast<std::ptrdiff_t>(impl_t::kMax)) {
      throw std::system_error(EINVAL, std::generic_category(), "fiber::counting_semaphore::release");
    }
    const int rc = impl_.post(static_cast<std::uint32_t>(update));
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "fiber::counting_semaphore::release");
  }

  void acquire() noexcept { impl_.wait(detail::kNoDeadline); }
  bool try_acquire() noexcept { return impl_.try_wait() == 0; }

  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& d) noexcept {
    return impl_.wait(detail::deadline_after(d)) == 0;
  }
  template <class Clock, class Duration>
  bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& tp) noexcept {
    for (;;) {
      if (impl_.wait(detail::deadline_at(tp)) == 0) return true;
      if (!(Clock::now() < tp)) return false;  // only a non-steady clock can get here early
    }
  }

  // Not in the standard: a snapshot of the available permits (0 while waited on).
  std::ptrdiff_t value_hint() const noexcept { return impl_.value(); }

 private:
  impl_t impl_;
};

using binary_semaphore = counting_semaphore<1>;

}  // namespace fiber
