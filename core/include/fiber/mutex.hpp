// fiber/mutex.hpp - fiber::mutex, a mutual-exclusion lock for fibers and threads.
//
// What it does: like std::mutex, but a fiber that blocks on it parks (its KLT
// runs other fibers) instead of blocking its kernel thread.  Ordinary OS
// threads (main, std::thread) may use the same mutex; they block in the
// kernel.  Meets the standard Lockable requirements, so std::lock_guard,
// std::unique_lock, std::scoped_lock, std::lock and std::condition_variable_any
// work with it (the latter only from OS threads: it blocks the KLT).
//
// Guarantees: mutual exclusion with acquire/release ordering between
// consecutive critical sections; barging with a bound (detail/mutex.hpp I-M3,
// fiber.h): waiters own the mutex in arrival order and at most K = 64
// acquisitions by non-waiters happen between two acquisitions by waiters, so
// no waiter starves and a contended mutex does not convoy; an uncontended
// lock/unlock is one CAS each.  try_lock is false also while the mutex is
// reserved for a waiter (starvation mode).  Misuse that
// is detected throws std::system_error: lock() by the owner
// (resource_deadlock_would_occur), unlock() by a non-owner
// (operation_not_permitted).  Not recursive.
//
// Lifecycle: constructed unlocked (no allocation, nothing to initialise); must be
// unlocked and without waiters when destroyed (checked in debug builds).  A
// mutex may be destroyed by the party that just acquired it, even while the
// previous owner is still returning from unlock().
//
// Example:
//     fiber::mutex m;
//     int counter = 0;
//     auto work = [&] { std::lock_guard<fiber::mutex> g(m); ++counter; };
#pragma once

#include <cerrno>
#include <system_error>

#include "fiber/detail/mutex.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber {

class mutex {
 public:
  using native_handle_type = detail::basic_mutex<detail::seam>*;

  mutex() noexcept = default;
  ~mutex() { FIBER_ASSERT(impl_.check_destroy() == 0, "fiber::mutex destroyed while locked or waited on"); }
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  // Blocks until owned.  Throws std::system_error(resource_deadlock_would_occur)
  // when the caller already owns the mutex.
  void lock() {
    const int rc = impl_.lock();
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "fiber::mutex::lock");
  }

  // False when owned by anyone (the caller included).
  bool try_lock() noexcept { return impl_.try_lock() == 0; }

  // Throws std::system_error(operation_not_permitted) when the caller does not
  // own the mutex (std::mutex makes that undefined).
  void unlock() {
    const int rc = impl_.unlock();
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "fiber::mutex::unlock");
  }

  native_handle_type native_handle() noexcept { return &impl_; }

 private:
  detail::basic_mutex<detail::seam> impl_;
};

}  // namespace fiber
