// core/src/timers.hpp - sleeping and timed waits: one heap of deadlines for
// the whole runtime (timer_heap.hpp), guarded by rt.timer_lock.  Not installed.
//
// A timed park puts its fiber in the heap (timer_add) before it leaves its
// KLT; expiry unparks it.  Nobody runs a timer thread: busy KLTs check the
// earliest deadline at every scheduling step (process_timers, one relaxed
// load when nothing is due), idle KLTs sleep until it (klt_loop::idle).
//
// Invariant I6 (runtime.hpp): timers expire under rt.timer_lock and unpark
// under it, so a cancel that returns guarantees no expiry of that timer is
// in flight; rt.next_deadline is written only under the lock and read as a
// hint everywhere else.
#pragma once

#include <cstdint>

#include "runtime.hpp"

namespace fiber::detail {

void timer_add(fcb* f, std::uint64_t deadline) noexcept;  // any thread; wakes sleepers if earliest
void timer_cancel(fcb* f) noexcept;                        // after return, no expiry is in flight (I6)
void timers_expire(runtime& rt, std::uint64_t now) noexcept;  // unparks every fiber due by now

// At every scheduling step: the common case (nothing due) is one load.
inline void process_timers(runtime& rt) noexcept {
  std::uint64_t nd = rt.next_deadline.load(std::memory_order_relaxed);  // relaxed: hint, rechecked under lock
  if (nd == kNoDeadline) return;
  std::uint64_t now = native_seam::now_ns();
  if (now >= nd) timers_expire(rt, now);
}

}  // namespace fiber::detail
