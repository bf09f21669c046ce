// fiber/condition_variable.hpp - condition variables for fibers and threads.
//
// What it does: fiber::condition_variable waits on a
// std::unique_lock<fiber::mutex> like std::condition_variable;
// fiber::condition_variable_any waits on any BasicLockable (fiber::mutex,
// std::unique_lock<...>, a user type) like std::condition_variable_any.  A
// waiting fiber parks (its KLT runs other fibers); OS threads may wait and
// notify too.
//
// Guarantees: no lost wake-up (a waiter is queued before its lock is
// released); notify_one wakes the oldest waiter queued when it is called (if
// any), notify_all all of them; a wait never returns without a notify or its
// timeout (no spurious wake-ups, though callers should still loop on a
// predicate, as the predicate overloads do); timeouts are never early (rounded
// up to whole nanoseconds); the lock is held again on every return, also by
// exception.  wait_for and steady_clock wait_until use CLOCK_MONOTONIC; other
// clocks are converted through now() and re-checked on timeout.  Waiting on a
// lock the caller does not hold throws std::system_error(operation_not_permitted).
//
// Lifecycle: construct, use, destroy when no party waits (checked in debug
// builds).  A woken waiter may destroy it at once (notify's last touch of the
// object precedes the wake-up).
//
// Example:
//     fiber::mutex m; fiber::condition_variable cv; bool ready = false;
//     // consumer:
//     std::unique_lock<fiber::mutex> lk(m);
//     cv.wait(lk, [&] { return ready; });
//     // producer:
//     { std::lock_guard<fiber::mutex> g(m); ready = true; } cv.notify_one();
#pragma once

#include <cerrno>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <mutex>
#include <system_error>

#include "fiber/detail/condvar.hpp"
#include "fiber/detail/deadline.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/mutex.hpp"

namespace fiber {

namespace detail {
// Shared by both condition variables: the predicate loops over a deadline.
template <class WaitFn, class Pred>
bool wait_pred_until(WaitFn&& wait_ns, std::uint64_t deadline, Pred& pred) {
  while (!pred()) {
    if (wait_ns(deadline) == ETIMEDOUT) return pred();
  }
  return true;
}
}  // namespace detail

class condition_variable {
 public:
  condition_variable() noexcept = default;
  ~condition_variable() {
    FIBER_ASSERT(impl_.check_destroy() == 0, "fiber::condition_variable destroyed with waiters");
  }
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  void notify_one() noexcept { impl_.notify_one(); }
  void notify_all() noexcept { impl_.notify_all(); }

  void wait(std::unique_lock<mutex>& lk) { wait_ns(lk, detail::kNoDeadline); }
  template <class Pred>
  void wait(std::unique_lock<mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }

  template <class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<mutex>& lk,
                            const std::chrono::time_point<Clock, Duration>& tp) {
    if (wait_ns(lk, detail::deadline_at(tp)) == 0) return std::cv_status::no_timeout;
    return Clock::now() < tp ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
  template <class Clock, class Duration, class Pred>
  bool wait_until(std::unique_lock<mutex>& lk, const std::chrono::time_point<Clock, Duration>& tp,
                  Pred pred) {
    while (!pred()) {
      if (wait_until(lk, tp) == std::cv_status::timeout) return pred();
    }
    return true;
  }

  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d) {
    return wait_ns(lk, detail::deadline_after(d)) == 0 ? std::cv_status::no_timeout
                                                       : std::cv_status::timeout;
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<mutex>& lk, const std::chrono::duration<Rep, Period>& d, Pred pred) {
    return detail::wait_pred_until([&](std::uint64_t dl) { return wait_ns(lk, dl); },
                                   detail::deadline_after(d), pred);
  }

  detail::basic_condvar<detail::seam>* native_handle() noexcept { return &impl_; }

 private:
  // 0 or ETIMEDOUT; throws when the caller does not hold the lock (I-C6).
  int wait_ns(std::unique_lock<mutex>& lk, std::uint64_t deadline) {
    const int rc = lk.owns_lock() ? impl_.wait(*lk.mutex()->native_handle(), deadline) : EPERM;
    if (rc == EPERM) {
      throw std::system_error(EPERM, std::generic_category(), "fiber::condition_variable::wait");
    }
    return rc;
  }

  detail::basic_condvar<detail::seam> impl_;
};

class condition_variable_any {
 public:
  condition_variable_any() noexcept = default;
  ~condition_variable_any() {
    FIBER_ASSERT(impl_.check_destroy() == 0, "fiber::condition_variable_any destroyed with waiters");
  }
  condition_variable_any(const condition_variable_any&) = delete;
  condition_variable_any& operator=(const condition_variable_any&) = delete;

  void notify_one() noexcept { impl_.notify_one(); }
  void notify_all() noexcept { impl_.notify_all(); }

  template <class Lock>
  void wait(Lock& lock) { wait_ns(lock, detail::kNoDeadline); }
  template <class Lock, class Pred>
  void wait(Lock& lock, Pred pred) {
    while (!pred()) wait(lock);
  }

  template <class Lock, class Clock, class Duration>
  std::cv_status wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& tp) {
    if (wait_ns(lock, detail::deadline_at(tp)) == 0) return std::cv_status::no_timeout;
    return Clock::now() < tp ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
  template <class Lock, class Clock, class Duration, class Pred>
  bool wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& tp, Pred pred) {
    while (!pred()) {
      if (wait_until(lock, tp) == std::cv_status::timeout) return pred();
    }
    return true;
  }

  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& d) {
    return wait_ns(lock, detail::deadline_after(d)) == 0 ? std::cv_status::no_timeout
                                                         : std::cv_status::timeout;
  }
  template <class Lock, class Rep, class Period, class Pred>
  bool wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& d, Pred pred) {
    return detail::wait_pred_until([&](std::uint64_t dl) { return wait_ns(lock, dl); },
                                   detail::deadline_after(d), pred);
  }

 private:
  // Queue, unlock, park, relock (I-C1): basic_condvar::wait_any, the code
  // models/condvar.cpp checks (I-C1-any, I-C2-any, I-C3-C4-any).
  template <class Lock>
  int wait_ns(Lock& lock, std::uint64_t deadline) {
    return impl_.wait_any(lock, deadline);
  }

  detail::basic_condvar<detail::seam> impl_;
};

}  // namespace fiber
