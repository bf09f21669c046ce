// fiber/detail/spinlock.hpp - the runtime's internal lock (test-and-test-and-set).
//
// Guards short critical sections inside core algorithms (a wait queue, a run
// queue, the timer heap).  While held:
//   I-S1 the holder's preemption is disabled (Seam::preempt_disable), so a
//        fiber is never preempted holding it (platform-facts: that hangs the KLT);
//   I-S2 the holder never parks, blocks or allocates;
// so a spinner waits at most for a short, running critical section (or for an
// OS thread the kernel descheduled: spin_hint falls back to sched_yield).
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
class basic_spinlock {
 public:
  void lock() noexcept {
    Seam::preempt_disable();  // I-S1, before the lock is visible as held
    unsigned iter = 0;
    for (;;) {
      // acquire: pairs with unlock()'s release; the critical section of the
      // previous holder happens-before ours.
      if (locked_.exchange(1, mo::acquire) == 0) return;
      // relaxed: a hint only; the exchange above re-checks with acquire.
      while (locked_.load(mo::relaxed) != 0) Seam::spin_hint(iter++);
    }
  }
  bool try_lock() noexcept {
    Seam::preempt_disable();
    // acquire: pairs with unlock()'s release.
    if (locked_.exchange(1, mo::acquire) == 0) return true;
    Seam::preempt_enable();
    return false;
  }
  void unlock() noexcept {
    locked_.store(0, mo::release);  // release: pairs with lock()'s acquire exchange
    Seam::preempt_enable();         // may take a pending preemption: lock already free
  }
  bool is_locked() const noexcept { return locked_.load(mo::relaxed) != 0; }  // relaxed: diagnostics only

 private:
  typename Seam::template atomic<std::uint32_t> locked_{0};
};

// RAII guard (std::lock_guard would pull <mutex>, which the models avoid).
template <class Lock>
class lock_guard {
 public:
  explicit lock_guard(Lock& l) noexcept : l_(l) { l_.lock(); }
  ~lock_guard() { l_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  Lock& l_;
};

}  // namespace fiber::detail
