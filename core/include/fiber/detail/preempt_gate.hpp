// fiber/detail/preempt_gate.hpp - the per-fiber preemption gate: the preempt
// count, the preempt-pending flag, and the protocol between a fiber, its own
// voluntary switches and the tick handler that interrupts it (I5 in
// core/src/runtime.hpp).
//
// Who touches it: only the thread the fiber runs on - the fiber's code, the
// runtime code it calls, and the tick (signal) handler that interrupts that
// same thread.  There is no cross-thread access, so every access is relaxed
// and the ordering that matters is program order against an asynchronous
// interruption: Seam::signal_fence() (atomic_signal_fence natively; nothing
// under Relacy, where the handler is run inline at an interrupt point of the
// same Relacy thread and so sees program order by construction).
//
// The protocol.  A fiber is in a *section* while its count is nonzero:
// runtime entry points, every spinlock (I-S1), fiber_preempt_disable(), and
// the whole of a switch (switch_out).  The tick handler asks tick_refused():
//   - count != 0: the tick is refused and marked pending;
//   - count == 0: the handler may preempt (the platform may still refuse for
//     its own reasons - PC outside the allow-list, too little stack - and
//     then calls defer()).
// A pending tick is honoured at the next safe point: enable() returns true
// when it brought the count to 0 with a tick pending, and the caller switches
// out at once; any switch honours it too (leave_switch clears it).
//
// Invariants (checked by models/preempt.cpp, cited by core/src):
//   I-G1 Never preempted inside a section: a tick never starts a switch while
//        the count is nonzero, so a fiber is never handed to a run queue
//        twice (a nested switch inside switch_out would enqueue it again).
//   I-G2 A refused tick is owed, not lost: once the outermost section ends
//        (enable() brings the count to 0), the fiber has switched out since
//        that tick - in a switch inside the section, or because enable()
//        returned true.
//   I-G3 No spurious switch: enable() returns true only when a tick was
//        refused since the fiber last switched (a stale pending flag would
//        turn every section end into a yield).
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
class basic_preempt_gate {
 public:
  // A fiber starts inside a section (fiber_create): the window between the
  // switch that first runs it and its entry point is covered (I-G1).
  void reset(std::uint32_t count) noexcept {
    count_.store(count, mo::relaxed);     // relaxed: the fiber is not yet published
    pending_.store(false, mo::relaxed);
  }

  // ---- the fiber's side ------------------------------------------------------

  void disable() noexcept {
    count_.store(count_.load(mo::relaxed) + 1, mo::relaxed);  // relaxed: own thread (header)
    Seam::signal_fence();  // the section stays after the count
  }

  // Ends a section.  True: a tick was refused meanwhile and this was the
  // outermost section, so the caller must switch out now (I-G2).  The count
  // is dropped before pending is read: a tick landing between the two then
  // sees count 0 and preempts by itself, and one landing before the drop is
  // seen here.
  [[nodiscard]] bool enable() noexcept {
    Seam::signal_fence();  // the section stays before the count
    const std::uint32_t c = count_.load(mo::relaxed) - 1;
    count_.store(c, mo::relaxed);
    Seam::signal_fence();
    return c == 0 && pending_.load(mo::relaxed);
  }

  // Unbalanced fiber_preempt_enable() is ignored rather than wrapping.
  bool in_section() const noexcept { return count_.load(mo::relaxed) != 0; }

  // ---- a switch (switch_out) -----------------------------------------------

  // Brackets the whole switch: no tick interleaves it (I-G1).
  void enter_switch() noexcept { disable(); }

  // The fiber has been rescheduled: any tick refused before or during the
  // switch is satisfied (I-G3).  Pending is cleared while still inside the
  // section, so a tick cannot set it again unseen between the two stores.
  void leave_switch() noexcept {
    pending_.store(false, mo::relaxed);
    Seam::signal_fence();
    count_.store(count_.load(mo::relaxed) - 1, mo::relaxed);
  }

  // ---- the tick handler (same thread, asynchronous) ---------------------------

  // True: the fiber is in a section; the tick is refused and owed (I-G1, I-G2).
  bool tick_refused() noexcept {
    if (count_.load(mo::relaxed) == 0) return false;
    pending_.store(true, mo::relaxed);
    return true;
  }

  // The platform refused for a reason of its own: owed as well (I-G2).
  void defer() noexcept { pending_.store(true, mo::relaxed); }

  bool pending() const noexcept { return pending_.load(mo::relaxed); }

 private:
  typename Seam::template atomic<std::uint32_t> count_{0};
  typename Seam::template atomic<bool> pending_{false};
};

}  // namespace fiber::detail
