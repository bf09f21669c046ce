// fiber/detail/interrupts.hpp - which parked calls a program signal
// interrupts, without losing the interrupt (the protocol behind EINTR in
// fibers: core/src/io_interrupt.cpp, papers/design.md 14.6).  Written over
// the seam; checked by models/interrupts.cpp with planted bugs in
// tools/mutants/.
//
// Stamps: epoch_ counts handled arrivals; an arrival numbered e records e in
// any_[S] (it interrupts calls that are never restarted) and, when its handler
// lacks SA_RESTART, in plain_[S] (it interrupts every call).  A call entered at
// stamp s (begin()) is interrupted by S iff its fiber's mask does not block S
// and the relevant table holds a value > s (pending()).
//
//   waiter:  s = begin()                     at the call's entry
//            ... would block ...
//            if (enter(g, s, ...)) EINTR     links g (its parker), counts it,
//                                            then checks (I-INT1, I-INT3)
//            park; after each wake-up pending(s, ...) -> EINTR
//            leave(g)
//   handler: if (arrived(S, restart))        stamps, then "anyone registered?"
//              -> wake_all() (natively on the poller thread, via an eventfd)
//
//   I-INT1 No lost interrupt: enter() links the guard under lock_ before it
//          checks; wake_all() walks under lock_ after the stamps.  Either the
//          walk finds the guard (its unpark makes the park return, I-P1), or
//          the walk's unlock precedes the link, and the check sees the stamps.
//   I-INT2 Only the program's own handlers stamp (the runtime's ticks never
//          call arrived()).
//   I-INT3 arrived() asks for a wake-up only when a guard is registered: its
//          seq_cst RMW of epoch_ then seq_cst load of registered_, against
//          enter()'s seq_cst RMW of registered_ then seq_cst load of epoch_
//          (Dekker): one of the two sees the other's write.
#pragma once

#include <cstdint>

#include "fiber/detail/parker.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"

namespace fiber::detail {

template <class Seam, int Signals = 65>
class basic_interrupts {
 public:
  // One per interruptible park, on the waiter's stack while it is linked.
  struct guard {
    explicit guard(basic_parker<Seam>* p) noexcept : parker_(p) {}
    basic_parker<Seam>* const parker_;
    typename Seam::template var<guard*> prev_{nullptr};  // guarded by lock_
    typename Seam::template var<guard*> next_{nullptr};  // guarded by lock_
  };

  basic_interrupts() noexcept {
    for (int s = 0; s < Signals; ++s) {
      any_[s].store(0, mo::relaxed);    // relaxed: before any sharing
      plain_[s].store(0, mo::relaxed);  // relaxed: before any sharing
    }
  }

  // The stamp of a call's entry.
  std::uint64_t begin() const noexcept {
    return epoch_.load(mo::acquire);  // acquire: pairs with arrived()'s release RMWs
  }

  // True when an arrival since `since` of a signal not in `mask` (bit s-1)
  // interrupts a call; `restartable`: one SA_RESTART restarts.
  bool pending(std::uint64_t since, std::uint64_t mask, bool restartable) const noexcept {
    // seq_cst: I-INT3 (it includes acquire: the tables of the arrivals up to
    // the value read are visible below).
    if (epoch_.load(mo::seq_cst) == since) return false;
    const auto* table = restartable ? plain_ : any_;
    for (int s = 1; s < Signals; ++s) {
      if (mask & (std::uint64_t{1} << (s - 1))) continue;
      // relaxed: written before the release RMW the load above read from.
      if (table[s].load(mo::relaxed) > since) return true;
    }
    return false;
  }

  // Links g, then checks (I-INT1): true when already interrupted (g stays
  // linked: call leave()).
  bool enter(guard& g, std::uint64_t since, std::uint64_t mask, bool restartable) noexcept {
    {
      lock_guard<basic_spinlock<Seam>> l(lock_);
      guard* h = head_.load();
      g.next_.store(h);
      g.prev_.store(nullptr);
      if (h) h->prev_.store(&g);
      head_.store(&g);
    }
    registered_.fetch_add(1, mo::seq_cst);  // seq_cst: I-INT3
    return pending(since, mask, restartable);
  }

  void leave(guard& g) noexcept {
    registered_.fetch_sub(1, mo::relaxed);  // relaxed: a stale count costs one spurious wake-up
    lock_guard<basic_spinlock<Seam>> l(lock_);
    guard* p = g.prev_.load();
    guard* n = g.next_.load();
    if (p) p->next_.store(n); else head_.store(n);
    if (n) n->prev_.store(p);
  }

  // In the handler (async-signal-safe: atomics only).  True when a guard is
  // registered and wake_all() must run (not in the handler: natively the
  // poller thread runs it).
  bool arrived(int sig, bool restart) noexcept {
    if (sig <= 0 || sig >= Signals) return false;
    std::uint64_t e = epoch_.load(mo::relaxed) + 1;  // relaxed: refined by the CAS below
    raise_to(any_[sig], e);
    if (!restart) raise_to(plain_[sig], e);
    std::uint64_t cur = epoch_.load(mo::relaxed);  // relaxed: refined by the CAS
    // release: a reader of this value sees the tables; relaxed on failure: retried.
    while (cur < e && !epoch_.compare_exchange_weak(cur, e, mo::release, mo::relaxed)) {
    }
    // One RMW of ours in every case (another arrival may have raised epoch_
    // past e): seq_cst, it publishes the tables and orders them before the
    // load of registered_ (I-INT3).
    epoch_.fetch_add(0, mo::seq_cst);
    return registered_.load(mo::seq_cst) > 0;  // seq_cst: I-INT3
  }

  // Unparks every linked guard's parker; each waiter re-checks pending().
  void wake_all() noexcept {
    lock_guard<basic_spinlock<Seam>> l(lock_);
    for (guard* g = head_.load(); g; g = g->next_.load()) g->parker_->unpark();
  }

  bool any_linked() noexcept {
    lock_guard<basic_spinlock<Seam>> l(lock_);
    return head_.load() != nullptr;
  }

 private:
  static void raise_to(typename Seam::template atomic<std::uint64_t>& a, std::uint64_t e) noexcept {
    // relaxed: published by arrived()'s release/seq_cst RMWs of epoch_ that follow.
    std::uint64_t cur = a.load(mo::relaxed);
    while (cur < e && !a.compare_exchange_weak(cur, e, mo::relaxed, mo::relaxed)) {
    }
  }

  typename Seam::template atomic<std::uint64_t> epoch_{0};
  typename Seam::template atomic<std::uint64_t> any_[Signals];    // latest arrival with a handler
  typename Seam::template atomic<std::uint64_t> plain_[Signals];  // latest one without SA_RESTART
  typename Seam::template atomic<int> registered_{0};             // linked guards (I-INT3)
  basic_spinlock<Seam> lock_;
  typename Seam::template var<guard*> head_{nullptr};  // guarded by lock_
};

}  // namespace fiber::detail
