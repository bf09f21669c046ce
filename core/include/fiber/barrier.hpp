// fiber/barrier.hpp - fiber::barrier, a reusable rendezvous of N parties.
//
// What it does: like C++20 std::barrier's arrive_and_wait (in C++17), for
// fibers and OS threads: each of `expected` parties calls arrive_and_wait();
// all block until the last one arrives, then all are released and the barrier
// is ready for the next phase.  An optional completion function runs once per
// phase, in the last arriving party, after everyone arrived and before anyone
// is released.  A blocked fiber parks (its KLT runs other fibers).
//
// Guarantees: every party's writes before arrive_and_wait() happen-before
// every party's return from it; exactly one party per phase gets `true` from
// arrive_and_wait() (the one that ran the completion function, like
// PTHREAD_BARRIER_SERIAL_THREAD); phases never mix (a fast party arriving for
// the next phase waits for that phase).
//
// Lifecycle: construct with expected > 0 parties; destroy when no party waits
// (checked in debug builds).  It may be destroyed as soon as every party of
// the last phase has returned.
//
// Example:
//     fiber::barrier sync(4);
//     // in each of 4 fibers:  compute_part(i); sync.arrive_and_wait(); merge();
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "fiber/detail/barrier.hpp"
#include "fiber/detail/seam.hpp"

namespace fiber {

namespace detail {
struct no_completion {
  void operator()() noexcept {}
};
}  // namespace detail

template <class CompletionFunction = detail::no_completion>
class basic_barrier_t {
 public:
  // Precondition (asserted in debug builds): 0 < expected <= UINT32_MAX.
  explicit basic_barrier_t(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : impl_(static_cast<std::uint32_t>(expected)), completion_(std::move(f)) {
    FIBER_ASSERT(expected > 0 && static_cast<std::uint64_t>(expected) <= UINT32_MAX,
                 "fiber::barrier: expected must be in [1, UINT32_MAX]");
  }
  ~basic_barrier_t() { FIBER_ASSERT(impl_.check_destroy() == 0, "fiber::barrier destroyed with waiters"); }
  basic_barrier_t(const basic_barrier_t&) = delete;
  basic_barrier_t& operator=(const basic_barrier_t&) = delete;

  // Blocks until all parties of this phase arrived.  True for exactly one
  // party per phase (the one that ran the completion function).
  bool arrive_and_wait() noexcept {
    return impl_.arrive_and_wait([this]() noexcept { completion_(); });
  }

 private:
  detail::basic_barrier<detail::seam> impl_;
  CompletionFunction completion_;
};

using barrier = basic_barrier_t<>;

}  // namespace fiber
