// fiber/detail/live_count.hpp - how many fibers are alive (I7 in
// core/src/runtime.hpp), counted per KLT, and the shutdown's wait for none.
//
// One shared count, incremented by every create and decremented by every
// exit, bounced its cache line between the KLTs at every create and every
// exit: on 2 KLTs, skynet spent about a tenth of its samples on those two
// RMWs (papers/results/stacks.md).  So each KLT counts its own creates and
// exits, monotonically, on its own line, and the rare reader sums them.
//
//   LC1 A KLT's counts are written by that KLT only: `creates` when a fiber
//       running on it creates one, `exits` when a fiber exits on it.  OS
//       threads count their creates in one shared live_count.  Every count
//       is a seq_cst RMW; every read in live_sum is a seq_cst load.
//   LC2 A create is counted before the new fiber is published (queued); an
//       exit once the fiber is off its stack, before its joiners are woken.
//   LC3 live_sum reads every `exits` first, then every `creates`.  In the
//       single order of seq_cst operations, all the exit reads lie before a
//       point t and all the create reads after it.  An exit it counts
//       happened before t, and that fiber's create happened before its exit
//       (LC2 and the queue's release/acquire), so before t as well, and is
//       counted.  Hence the sum is at least the number of fibers alive at t
//       (creates after t only add): 0 means none was alive at t.  Once no OS
//       thread can create any more (fiber_shutdown closed its gate), a
//       runtime with no fiber alive stays so: only fibers create fibers.
//       For anyone else (dump, detector, stats) the sum is a snapshot.
//   LC4 The waiter (fiber_shutdown) publishes its parker (seq_cst store),
//       then sums, and parks while the sum is not 0; an exit counts itself,
//       then loads the waiter (seq_cst) and wakes it if there is one.  Store
//       buffering is impossible between seq_cst operations: either the exit
//       sees the waiter and wakes it, or the waiter's next sum counts the
//       exit.  Every exit during the wait wakes the waiter (none knows that
//       it is the last: the counts are per KLT); it sums again.
//
// models/live_count.cpp checks LC3 and LC4 (a fiber created on one KLT that
// exits on another while a shutdown waits), with mutants that read the
// creates first and that weaken the exit's order.
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

template <class Seam>
struct live_count {
  typename Seam::template atomic<std::uint64_t> creates{0}, exits{0};

  void created() noexcept { creates.fetch_add(1, mo::seq_cst); }  // seq_cst: LC1, LC3
  void exited() noexcept { exits.fetch_add(1, mo::seq_cst); }     // seq_cst: LC1, LC4
};

// LC3: the fibers alive over the counts at(0) .. at(n-1) and the OS threads'.
template <class Seam, class At>
std::uint64_t live_sum(unsigned n, At at, const live_count<Seam>& os) noexcept {
  std::uint64_t exited = 0, created = 0;
  for (unsigned i = 0; i < n; ++i) exited += at(i).exits.load(mo::seq_cst);  // seq_cst: LC3
  for (unsigned i = 0; i < n; ++i) created += at(i).creates.load(mo::seq_cst);  // seq_cst: LC3
  created += os.creates.load(mo::seq_cst);  // seq_cst: LC3
  return created - exited;
}

template <class Seam>
using live_waiter = typename Seam::template atomic<typename Seam::parker_type*>;

// LC4, the exit's side: counts the exit on `mine`; true: a waiter must sum
// again (live_wake).
template <class Seam>
bool live_exit(live_count<Seam>& mine, const live_waiter<Seam>& waiter) noexcept {
  mine.exited();
  return waiter.load(mo::seq_cst) != nullptr;  // seq_cst: LC4
}
template <class Seam>
void live_wake(const live_waiter<Seam>& waiter) noexcept {
  // A parker is type-stable and its owner loops on its condition (I-P4): a
  // wake that arrives after the wait ended is harmless.
  if (typename Seam::parker_type* p = waiter.load(mo::seq_cst)) p->unpark();  // seq_cst: LC4
}

// LC4, the waiter's side: returns once sum() is 0.
template <class Seam, class Sum>
void live_wait_none(live_waiter<Seam>& waiter, typename Seam::parker_type& me, Sum sum) noexcept {
  waiter.store(&me, mo::seq_cst);  // seq_cst: LC4
  while (sum() != 0) me.park();
  waiter.store(nullptr, mo::seq_cst);  // seq_cst: as above
}

}  // namespace fiber::detail
