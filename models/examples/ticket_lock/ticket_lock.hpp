// models/examples/ticket_lock/ticket_lock.hpp - a user primitive written against
// the fiber seam, so the same source runs natively (fiber::detail::native_seam)
// and under Relacy (relacy_seam).  FIFO spin lock: take a ticket, wait for it.
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

template <class Seam>
class ticket_lock {
  using mo = fiber::detail::mo;

 public:
  void lock() noexcept {
    // relaxed: the ticket only orders lockers; the acquire below synchronises.
    std::uint32_t me = next_.fetch_add(1, mo::relaxed);
    unsigned iter = 0;
    // acquire: pairs with unlock()'s release store of serving_.
    while (serving_.load(mo::acquire) != me) Seam::spin_hint(iter++);
  }
  void unlock() noexcept {
    // relaxed: only the owner writes serving_, so it reads its own last value.
    std::uint32_t s = serving_.load(mo::relaxed);
    serving_.store(s + 1, mo::release);  // release: pairs with lock()'s acquire load
  }

 private:
  typename Seam::template atomic<std::uint32_t> next_{0};
  typename Seam::template atomic<std::uint32_t> serving_{0};
};
