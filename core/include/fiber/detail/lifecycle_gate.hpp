// fiber/detail/lifecycle_gate.hpp - what keeps fiber_shutdown from freeing the
// runtime while another OS thread is inside a C API call (issue 14 item 1).
//
// A gate counts the calls in flight and can be closed.  A caller enters
// (try_enter) before it touches the runtime and leaves after its last access;
// a closer closes the gate (no new entry succeeds) and drains it (waits until
// the count is 0); only then may it free what the gate protects.  Calls from
// fibers need no gate: a live fiber keeps its runtime alive (I7, shutdown waits
// for live == 0 and joins the KLTs), so the gate is an OS-thread cost only.
//
// One word, not a counter plus a flag.  The usual design (count++ seq_cst;
// load closed seq_cst || closed = 1 seq_cst; load count seq_cst) is a
// store-buffering pair on two locations and needs seq_cst on all four
// accesses: with acquire/release both sides may read the old value of the
// other's location, the caller entering a closed gate while the closer sees a
// count of 0.  Here the count and the closed bit share word_, so enter's
// fetch_add and close's fetch_or are read-modify-writes of one location:
// they are totally ordered in its modification order and each reads the value
// the other left, whatever their memory orders.  Either enter comes first
// (then close, and drain's loads after it, see the count) or close does (then
// enter reads the closed bit and backs out).  No seq_cst is needed; the
// orders below are for happens-before, not for that decision.
//
//   L1 (no entry after close) try_enter returns false once close() is ahead
//      of it in word_'s modification order.
//   L2 (nothing freed while in use) every access a caller makes between a
//      successful try_enter and its leave happens-before drain() returns:
//      leave's fetch_sub is release and drain's load that reads 0 is acquire
//      (an RMW continues the release sequence of an earlier leave).
//   L3 (a new generation is seen) reopen() is release and try_enter is
//      acquire: a caller that enters after the closer reopened sees every
//      write the closer made before reopening (the cleared runtime pointer),
//      never a pointer to what was freed.
//   L4 (the shutdown order, quiesce()) creates are closed and drained first,
//      then live fibers are awaited, then every other call is closed and
//      drained: after L4 no fiber and no OS-thread call uses the runtime, and
//      none can start until reopen().  Creates first because a create in
//      flight can add a fiber after live was seen 0; joins last because an
//      OS thread may be parked in fiber_join on a fiber shutdown waits for.
//
// One closer at a time (fiber_shutdown holds its init mutex).  Model-checked
// in models/lifecycle.cpp (mutants in tools/mutants/: lifecycle_*).
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
class basic_lifecycle_gate {
 public:
  // Caller side.  True: the caller is in and must leave(); false: the gate is
  // closed (a shutdown is under way) and the caller must not touch the runtime.
  bool try_enter() noexcept {
    // acquire: pairs with reopen()'s release (L3).  The same RMW decides L1.
    std::uint64_t old = word_.fetch_add(kOne, mo::acquire);
    if ((old & kClosed) == 0) return true;
    // relaxed: the caller touched nothing; drain() may see the transient count.
    word_.fetch_sub(kOne, mo::relaxed);
    return false;
  }
  void leave() noexcept {
    // release: pairs with drain()'s acquire load; the caller's accesses
    // happen-before the closer frees anything (L2).
    word_.fetch_sub(kOne, mo::release);
  }

  // Closer side (one closer at a time).
  void close() noexcept {
    // relaxed: L1 follows from the modification order of word_ alone; drain()
    // supplies the happens-before.
    word_.fetch_or(kClosed, mo::relaxed);
  }
  void drain() noexcept {
    // acquire: pairs with the last leave()'s release (L2).
    for (unsigned i = 0; (word_.load(mo::acquire) & ~kClosed) != 0; ++i) Seam::spin_hint(i);
  }
  void reopen() noexcept {
    // release: pairs with try_enter()'s acquire (L3).
    word_.fetch_and(~kClosed, mo::release);
  }
  bool closed() const noexcept {
    return (word_.load(mo::relaxed) & kClosed) != 0;  // relaxed: a snapshot for tests
  }

 private:
  static constexpr std::uint64_t kClosed = 1;  // bit 0: closed
  static constexpr std::uint64_t kOne = 2;     // bits 1..63: calls in flight
  typename Seam::template atomic<std::uint64_t> word_{0};
};

// RAII for a caller that entered.
template <class Seam>
class lifecycle_pass {
 public:
  explicit lifecycle_pass(basic_lifecycle_gate<Seam>* g) noexcept : gate_(g) {}
  lifecycle_pass(const lifecycle_pass&) = delete;
  lifecycle_pass& operator=(const lifecycle_pass&) = delete;
  ~lifecycle_pass() {
    if (gate_) gate_->leave();
  }

 private:
  basic_lifecycle_gate<Seam>* gate_;
};

// L4, the shutdown order, written once for the runtime and the model.
// wait_no_live() returns once no fiber is alive (I7).
template <class Seam, class WaitNoLive>
void quiesce(basic_lifecycle_gate<Seam>& creates, basic_lifecycle_gate<Seam>& calls,
             WaitNoLive&& wait_no_live) noexcept {
  creates.close();
  creates.drain();  // no OS-thread create can add a fiber from here on
  wait_no_live();   // fibers still create, join and detach; OS threads join and detach
  calls.close();
  calls.drain();    // the last OS-thread join/detach/stats call has left
}

}  // namespace fiber::detail
