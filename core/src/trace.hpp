// core/src/trace.hpp - the native scheduling trace: hooks the scheduler calls
// at each event (inline, one branch when tracing is off) and the writer's
// entry points (trace.cpp).
//
// What it records: create, run (a fiber installed on a KLT), the fiber's
// leaving (yield, preempt, park with its object and kind, a park whose commit
// failed, exit), wake (by which fiber or OS thread, on which KLT), join
// return, idle sleep/wake of a KLT, ticks the handler refused (with the
// reason), fiber names.  Steals and migrations are not separate records: the
// exporter derives them from the queue an event put the fiber in (the q field)
// and the KLT of its next run (tools/trace_check.py).
//
// Lifecycle: trace_open at fiber_init (fiber_config_t::trace_path, or
// FIBER_TRACE=file, resolved once there) gives every KLT a buffer before the
// KLTs start; trace_close at fiber_shutdown, after the KLTs have been joined,
// drains everything and writes the clock calibration.  Between them, each KLT
// flushes its own buffer at safe points (trace.cpp).
//
// Cost when off: klt::trace is nullptr (in the KLT's first cache line, which
// the switch path reads anyway) for the KLT-side hooks; the hooks with no KLT
// at hand (create, wake, exit, join) test g_trace_on, a hidden,
// read-mostly global.  Either is one predicted-not-taken branch.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime.hpp"

namespace fiber::detail {

// Event kinds (the `kind` byte of a record; tools/trace_check.py mirrors them).
enum class tev : unsigned char {
  create = 1, run, yield, preempt, park, park_abort, wake, exit, join,
  idle_sleep, idle_wake, tick_refused, name,
  // Lock events of the fiber mutex (trace_lock.cpp): fiber = the acting party
  // (Seam::self_id), arg = the mutex, seq = the object's owner sequence
  // (acquire, release) or queue sequence (queue, pop), aux = lock_by_*,
  // lock_queued_*, lock_popped_* (seam.hpp).  A queue or pop is followed by
  // a lock_ext record: fiber = the wait node, arg = (K << 32) | the owner
  // sequence read under lk_ (queue), 0 (pop).  lock_lost: no slot was left
  // for the object, its events are missing (the checker refuses the trace).
  lock_acquire, lock_release, lock_queue, lock_pop, lock_ext, lock_lost
};
// tick_refused reasons (aux), in the order the handler tests them (preempt.cpp).
enum class trace_refusal : unsigned char { count = 1, pc, stack };

extern std::atomic<bool> g_trace_on __attribute__((visibility("hidden")));

inline bool trace_on() noexcept {
  // relaxed: written before the KLTs start and the runtime is published
  // (g_rt's release), cleared after they were joined.
  return __builtin_expect(g_trace_on.load(std::memory_order_relaxed), 0);
}

// trace.cpp
bool trace_open(runtime& rt) noexcept;  // false: cfg.trace_path could not be opened
void trace_close(runtime& rt) noexcept;
void trace_create_slow(fcb* f, const char* name, unsigned q) noexcept;
void trace_run_slow(klt* k, fcb* f) noexcept;
void trace_leave_slow(klt* k, fcb* f, klt_action a) noexcept;
void trace_park_abort_slow(klt* k, fcb* f) noexcept;
void trace_exit_slow(fcb* f) noexcept;
void trace_join_slow(fcb* f) noexcept;
void trace_idle_slow(klt* k, bool sleeping) noexcept;
void trace_tick_refused(klt* k, fcb* f, trace_refusal why) noexcept;  // the tick handler only
// A lock event into the caller's buffer (trace_lock.cpp; the caller has
// preemption disabled): one record, then the lock_ext record {x0, x1} when
// ext.  may_flush: no runtime lock is held, a half-full buffer may be written.
void trace_put_lock(tev kind, std::uint64_t who, const void* obj, std::uint32_t seq, unsigned aux, bool ext,
                    std::uint64_t x0, std::uint64_t x1, bool may_flush) noexcept;
// trace_lock.cpp: open resets the per-object sequences and turns the mutex's
// hooks on, close turns them off; the planted mutex defects (knobs 23-25).
void trace_lock_open() noexcept;
void trace_lock_close() noexcept;
void trace_lock_set_knob(int knob, bool on) noexcept;
// Test knobs (testing.h).  FIBER_KNOB_TRACE_LOSE_WAKE: a wake of a fiber in a
// timed park is dropped (the fiber parked again; its timeout wakes it).
// FIBER_KNOB_TRACE_NO_COMMIT: a park is never committed, the fiber is
// requeued at once (it runs without a wake).  Both are planted defects the
// trace checker must flag; never on in a program.
// The knobs act only while tracing is on (their purpose is the checker's
// controls), so the wake path tests one flag for both (trace_wake below).
void trace_set_knob(int knob, bool on) noexcept;
bool trace_wake_slow(fcb* f) noexcept;  // true: knob 17 dropped the wake
bool trace_park_slow(klt* k, fcb* f) noexcept;  // true: knob 18 (no commit)

inline void trace_create(fcb* f, const char* name, unsigned q) noexcept {
  if (trace_on()) trace_create_slow(f, name, q);
}
inline void trace_run(klt* k, fcb* f) noexcept {
  if (__builtin_expect(k->trace != nullptr, 0)) trace_run_slow(k, f);
}
inline void trace_leave(klt* k, fcb* f, klt_action a) noexcept {  // yield, preempt (park, exit: below)
  if (__builtin_expect(k->trace != nullptr, 0) && (a == klt_action::yield || a == klt_action::preempted))
    trace_leave_slow(k, f, a);
}
// A park, before its commit (so a wake is always recorded after it); true when
// test knob 18 is on: the planted defect, the caller requeues f without a
// commit and records no abort (parked fibers spin through their waits: every
// caller loops on its condition, I-P4, so programs still finish, only slower).
inline bool trace_park(klt* k, fcb* f) noexcept {
  return __builtin_expect(k->trace != nullptr, 0) && trace_park_slow(k, f);
}
inline void trace_park_abort(klt* k, fcb* f) noexcept {
  if (__builtin_expect(k->trace != nullptr, 0)) trace_park_abort_slow(k, f);
}
// Records the wake; true when test knob 17 dropped it (the caller returns).
inline bool trace_wake(fcb* f) noexcept {
  return trace_on() && trace_wake_slow(f);
}
inline void trace_exit(fcb* f) noexcept {
  if (trace_on()) trace_exit_slow(f);
}
inline void trace_join(fcb* f) noexcept {
  if (trace_on()) trace_join_slow(f);
}
inline void trace_idle(klt* k, bool sleeping) noexcept {
  if (__builtin_expect(k->trace != nullptr, 0)) trace_idle_slow(k, sleeping);
}

}  // namespace fiber::detail
