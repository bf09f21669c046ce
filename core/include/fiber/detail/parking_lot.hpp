// fiber/detail/parking_lot.hpp - waiting on an address for a lock that lives
// elsewhere (a libc pthread_mutex_t, sem_t, pthread_rwlock_t, pthread_cond_t).
//
// What it does.  A party that failed to take a resource it does not own the
// code of (libc's trylock said "busy") parks in a bucket keyed by the
// resource's address; whoever releases the resource through a path the runtime
// sees (the interposed unlock/post/signal, core/src/interpose_locks.cpp) calls
// unpark_one/unpark_all on the same address, and the woken party retries.  The
// lot never owns the resource: it only turns "retry later" into a park of the
// fiber instead of a futex wait of its KLT.  Written over the seam and checked
// by models/parking_lot.cpp.
//
// Layout: kBuckets buckets, each a spinlock, a FIFO wait_queue of wait_nodes
// (wait_node::data holds the key while queued) and a count of queued nodes
// that a releaser reads without the lock.  Several keys may share a bucket.
//
// The protocol (the lost wake-up is the whole difficulty):
//   waiter:   try(); enqueue (count++, under the lock); FENCE; try() again;
//             only then wait for a grant.
//   releaser: release (libc's unlock/post: an RMW on the resource); FENCE;
//             load count; if nonzero, pop one (or all) node of that key under
//             the lock and grant it.  Right after an RMW the releaser's fence
//             is Seam::fence_after_rmw (free on x86-64, a seq_cst fence in
//             the model): ~15 ns of the uncontended unlock on this machine.
// The two seq_cst fences make this a store-buffering pair: either the
// waiter's second try() sees the release, or the releaser's load sees the
// count (and then the node, which was queued before the count moved).
//
// Invariants (cited as I-LOTn by code, model and tests):
//   I-LOT1 No lost wake-up: a waiter that sleeps was registered before its
//          last try() failed, so every release after that try() finds it.
//   I-LOT2 A node leaves its queue only under the bucket lock, either popped
//          by a releaser (then granted after the lock is dropped: I-W3,
//          I-GL2) or removed by its own waiter (cancel); exactly one of the
//          two (I-W2).  count equals the number of queued nodes whenever the
//          bucket lock is free.
//   I-LOT3 A grant that its waiter does not turn into an acquisition (it
//          timed out after being granted) is passed on to the next waiter of
//          the key, so a release is never swallowed by a party that left.
//   I-LOT4 Every wake is a hint: the woken party retries try(), and parks
//          again (re-registering) when it loses the race to a barging taker.
//   I-LOT5 (optional, acquire()'s recheck_ns) A release that bypasses wake()
//          - libc releasing a mutex inside its own pthread_cond_wait on an OS
//          thread - is found by the waiter's own bounded re-check: the wait
//          then ends within the recheck period, never hangs.
#pragma once

#include <cerrno>
#include <cstdint>

#include "fiber/detail/grant_list.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/wait_queue.hpp"

namespace fiber::detail {

template <class Seam, unsigned kBuckets = 256>
class basic_parking_lot {
 public:
  using node = wait_node<Seam>;
  // What a try function returns when the resource is busy (then the caller
  // waits); 0 is success, anything else an error passed through at once.
  static constexpr int kBusy = -1;
  static constexpr std::uint64_t kMaxRecheckNs = std::uint64_t{64} << 20;  // ~67 ms: the longest recheck period

  // Registers n (on the caller's stack, with the caller's parker) under key.
  // Ends with the waiter's fence (I-LOT1): the caller's next read of the
  // resource is ordered after the registration.
  void enqueue(node* n, const void* key, wait_kind kind = wait_kind::libc_lock) noexcept {
    Seam::note_wait(*n->parker, kind, key);  // diagnostics (fiber_dump): what n's owner waits on
    bucket& b = bucket_of(key);
    {
      lock_guard<basic_spinlock<Seam>> g(b.lock_);
      n->data.store(reinterpret_cast<std::uintptr_t>(key));
      b.q_.push_back(n);
      // relaxed: the fence below orders it before the waiter's re-try.
      b.count_.store(b.count_.load(mo::relaxed) + 1, mo::relaxed);
    }
    Seam::fence(mo::seq_cst);  // I-LOT1: pairs with the releaser's fence in wake()
  }

  // Removes n if still queued (I-LOT2).  False: a releaser granted it.
  bool cancel(node* n, const void* key) noexcept {
    bucket& b = bucket_of(key);
    lock_guard<basic_spinlock<Seam>> g(b.lock_);
    if (!b.q_.remove(n)) return false;
    b.count_.store(b.count_.load(mo::relaxed) - 1, mo::relaxed);  // relaxed: under the lock
    return true;
  }

  // After a release of the resource at key: wakes one waiter (all: every
  // waiter) of that key.  Returns how many were granted.  after_rmw: the
  // caller's release was an atomic RMW instruction just before (libc's
  // unlock and post are), which lets the releaser's fence be the cheap
  // Seam::fence_after_rmw (I-LOT1).
  unsigned unpark_one(const void* key, bool after_rmw = false) noexcept {
    return wake(key, false, after_rmw);
  }
  unsigned unpark_all(const void* key, bool after_rmw = false) noexcept {
    return wake(key, true, after_rmw);
  }

  // Takes the resource: try_fn() until it returns 0 (acquired) or an error,
  // parking between tries.  ETIMEDOUT when the deadline passed first.
  // recheck_ns (0: never) bounds each park: the waiter then retries by itself,
  // first after recheck_ns, doubling up to 64x - a safety net for releases
  // that do not go through wake() (I-LOT5, interpose_locks.cpp).
  template <class Try>
  int acquire(const void* key, Try&& try_fn, std::uint64_t deadline,
              std::uint64_t recheck_ns = 0, wait_kind kind = wait_kind::libc_lock) noexcept {
    for (;;) {
      int r = try_fn();
      if (r != kBusy) return r;
      node n(&Seam::current_parker());
      enqueue(&n, key, kind);
      r = try_fn();  // the re-check after registering (I-LOT1)
      if (r != kBusy) {
        if (!cancel(&n, key)) {  // granted meanwhile: let the grant land
          while (!n.wait(kNoDeadline)) {}
          if (r != 0) unpark_one(key);  // not acquired: the grant goes on (I-LOT3)
        }
        return r;
      }
      std::uint64_t until = deadline;
      if (recheck_ns != 0) {
        const std::uint64_t poll = Seam::now_ns() + recheck_ns;
        if (poll < until) until = poll;
        if (recheck_ns < kMaxRecheckNs) recheck_ns *= 2;
      }
      if (n.wait(until)) continue;  // granted: retry (I-LOT4)
      if (cancel(&n, key)) {
        if (until != deadline) continue;  // only the recheck period ended (I-LOT5)
        return ETIMEDOUT;
      }
      while (!n.wait(kNoDeadline)) {}  // a releaser holds n: wait for its grant
      if (deadline == kNoDeadline || Seam::now_ns() < deadline) continue;  // granted: retry (I-LOT4)
      r = try_fn();
      if (r != kBusy) return r;
      unpark_one(key);  // I-LOT3: the grant we leave with goes on
      return ETIMEDOUT;
    }
  }

 private:
  struct alignas(64) bucket {
    basic_spinlock<Seam> lock_;
    wait_queue<Seam> q_;  // guarded by lock_ (I-W1)
    typename Seam::template atomic<std::uint32_t> count_{0};  // queued nodes (I-LOT2)
  };

  bucket& bucket_of(const void* key) noexcept {
    auto h = reinterpret_cast<std::uintptr_t>(key);
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    return buckets_[(h >> 32) % kBuckets];
  }

  // The releaser's fast path (inlined into every unlock): a fence and a load.
  unsigned wake(const void* key, bool all, bool after_rmw) noexcept {
    bucket& b = bucket_of(key);
    if (after_rmw)
      Seam::fence_after_rmw();  // I-LOT1: pairs with enqueue()'s fence
    else
      Seam::fence(mo::seq_cst);  // I-LOT1: pairs with enqueue()'s fence
    // relaxed: ordered by the fence above; a nonzero count is re-read under the lock.
    if (b.count_.load(mo::relaxed) == 0) return 0;
    return wake_slow(b, key, all);
  }

  __attribute__((noinline)) unsigned wake_slow(bucket& b, const void* key, bool all) noexcept {
    grant_list<Seam> out;
    {
      lock_guard<basic_spinlock<Seam>> g(b.lock_);
      take_locked(b, key, all, out);
    }
    unsigned n = out.size();
    out.grant_all();  // after the lock: I-GL1..I-GL3, I-W3
    return n;
  }

  // Under b.lock_: moves the nodes of key (the first one, or all) to out.
  void take_locked(bucket& b, const void* key, bool all, grant_list<Seam>& out) noexcept {
    const auto k = reinterpret_cast<std::uintptr_t>(key);
    node* n = b.q_.front();
    while (n != nullptr) {
      node* next = n->next_.load();
      if (n->data.load() == k) {
        b.q_.remove(n);
        b.count_.store(b.count_.load(mo::relaxed) - 1, mo::relaxed);  // relaxed: under the lock
        out.push_back(n);  // reuses data: the key is no longer needed
        if (!all) return;
      }
      n = next;
    }
  }

  bucket buckets_[kBuckets];
};

}  // namespace fiber::detail
