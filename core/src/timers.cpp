// core/src/timers.cpp - the runtime's deadline heap (timers.hpp, I6).
#include "timers.hpp"

namespace fiber::detail {

static void publish_deadline(runtime& rt) noexcept {
  // relaxed: read as a hint; the idle protocol's fences order it (idle.hpp).
  rt.next_deadline.store(rt.timers.next_deadline(), std::memory_order_relaxed);
}

void timer_add(fcb* f, std::uint64_t deadline) noexcept {
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: pairs with fiber_init's publication
  bool earliest;
  {
    lock_guard<spinlock> g(rt.timer_lock);
    // A node pushed while still queued corrupts the heap silently (its index
    // is overwritten): a timed park that did not cancel its timer.  Checked
    // in every build: one compare per timed park.
    if (f->timer_index != timer_heap<fcb>::kNotQueued)
      fatal("a fiber's timer was queued twice (a timed park left its timer behind)");
    rt.timers.push(f, deadline);
    earliest = rt.timers.next_deadline() == deadline;
    publish_deadline(rt);
  }
  if (earliest) rt.idle.notify_all();  // sleeping KLTs recompute their timeout
}

void timer_cancel(fcb* f) noexcept {
  runtime& rt = *g_rt.load(std::memory_order_acquire);  // acquire: as above
  lock_guard<spinlock> g(rt.timer_lock);
  if (rt.timers.remove(f)) publish_deadline(rt);
}

void timers_expire(runtime& rt, std::uint64_t now) noexcept {
  lock_guard<spinlock> g(rt.timer_lock);
  while (fcb* t = rt.timers.pop_expired(now)) t->park.unpark();  // under the lock: I6
  publish_deadline(rt);
}

}  // namespace fiber::detail
