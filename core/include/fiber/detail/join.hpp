// fiber/detail/join.hpp - the join/exit/detach protocol of one fiber slot.
//
// Each fiber control block owns a join_state.  It is reused when the slot is
// recycled, so every operation names the fiber id it means, and the id check
// and the state change are one critical section (a stale id can never act on
// the slot's next fiber).
//
//   I-J1 exit() happens after the exiting fiber left its stack (the scheduler
//        calls it), so whoever frees the slot next never frees a running stack.
//   I-J2 Exactly one party frees a fiber: exit() if detached, detach() if
//        already exited, or the single joiner.  The slot's id reads 0 from
//        then on, so a later join/detach with the old id gives ESRCH.
//   I-J3 join after exit returns at once with the value; join before exit parks
//        and is woken by exit (park protocol, I-P1: never lost).
//   I-J4 At most one joiner; join of a detached fiber and detach of a fiber
//        being joined are EINVAL.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/parker.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"

namespace fiber::detail {

template <class Seam>
class join_state {
 public:
  enum class free_by : unsigned char { nobody, caller };

  // Before the fiber is published (no concurrency yet).
  void reset(std::uint64_t id, bool detached) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    id_.store(id);
    detached_.store(detached);
    exited_.store(false);
    joiner_.store(nullptr);
    retval_.store(nullptr);
  }

  // Called by the scheduler once the fiber is off its stack (I-J1).  Returns
  // free_by::caller when the fiber was detached and the caller must free it.
  free_by exit(void* retval) noexcept {
    basic_parker<Seam>* joiner;
    {
      lock_guard<basic_spinlock<Seam>> g(lock_);
      retval_.store(retval);
      exited_.store(true);
      if (detached_.load()) {
        id_.store(0);  // I-J2
        return free_by::caller;
      }
      joiner = joiner_.load();
    }
    if (joiner) joiner->unpark();  // I-J3; the parker is type-stable (I-P4)
    return free_by::nobody;
  }

  // Returns 0 (caller must free the fiber: I-J2), ESRCH or EINVAL.
  int join(std::uint64_t id, void** retval) noexcept {
    basic_parker<Seam>& me = Seam::current_parker();
    lock_.lock();
    if (id_.load() != id) return unlock_with(ESRCH);
    if (detached_.load() || joiner_.load() != nullptr) return unlock_with(EINVAL);  // I-J4
    joiner_.store(&me);
    Seam::note_wait(me, wait_kind::join, this);
    while (!exited_.load()) {
      lock_.unlock();
      me.park();
      lock_.lock();
    }
    if (retval) *retval = retval_.load();
    id_.store(0);  // I-J2
    joiner_.store(nullptr);
    lock_.unlock();
    return 0;
  }

  // Returns 0 (with *must_free set when it already exited), ESRCH or EINVAL.
  int detach(std::uint64_t id, bool* must_free) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    *must_free = false;
    if (id_.load() != id) return ESRCH;
    if (detached_.load() || joiner_.load() != nullptr) return EINVAL;  // I-J4
    if (exited_.load()) {
      id_.store(0);  // I-J2
      *must_free = true;
    } else {
      detached_.store(true);
    }
    return 0;
  }

  // True when `id` names this slot's live fiber (a snapshot).
  bool is(std::uint64_t id) noexcept {
    lock_guard<basic_spinlock<Seam>> g(lock_);
    return id_.load() == id;
  }

 private:
  int unlock_with(int err) noexcept {
    lock_.unlock();
    return err;
  }

  basic_spinlock<Seam> lock_;
  typename Seam::template var<std::uint64_t> id_{0};                  // guarded by lock_
  typename Seam::template var<bool> detached_{false};                 // guarded by lock_
  typename Seam::template var<bool> exited_{false};                   // guarded by lock_
  typename Seam::template var<basic_parker<Seam>*> joiner_{nullptr};  // guarded by lock_
  typename Seam::template var<void*> retval_{nullptr};                // guarded by lock_
};

}  // namespace fiber::detail
