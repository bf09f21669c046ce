// fiber/detail/local_queue.hpp - a KLT's own FIFO of runnable fibers: the
// owner pushes without an atomic read-modify-write, and the owner, thieves
// and the monitor take with one CAS each (issue 13: the per-KLT run queue
// without a lock).  The global queue, which every thread pushes to, stays the
// locked list of run_queue.hpp.
//
// Shape.  Two parts, one FIFO:
//   ring    the unpinned fibers: a single-producer multi-consumer array
//           indexed by two monotonic counters, top (taken so far; consumers
//           advance it with a CAS) and bottom (pushed so far; only the owner
//           stores it, with release).  The owner is the only producer, so a
//           push is a slot store and a release store.  Taking is Go's
//           runqget / runqgrab: read top and bottom, copy the slots, CAS top
//           forward; a CAS that fails took nothing.  The array grows (the
//           owner copies the live range into one twice as large and publishes
//           it); a retired array is kept, never written again, until the
//           queue is destroyed, so a consumer that read the old pointer still
//           reads the right values (at most the sum of a geometric series:
//           twice the largest array).  Unlike Go's bounded ring, nothing
//           overflows to the global queue: that would break FIFO (I-R1).
//   pinned the fibers preempted on this KLT (policy I-R3): an intrusive list
//           only the owner touches (nobody else may take them).  Each pinned
//           node is stamped with bottom at its push: the ring nodes with a
//           smaller index were pushed before it.  The owner's pop takes the
//           pinned head once top has reached its stamp (every ring node older
//           than it is gone), else the ring's head: one FIFO over both parts.
// Chase-Lev (rejected before, design.md 7) takes at the owner's end, LIFO,
// and cannot skip pinned fibers; here the owner takes at the thieves' end and
// pinned fibers are never in the part that others take from.
//
// Who calls what: the owner (the KLT whose queue it is; its scheduler or a
// fiber running on it with preemption off) push_back, pop_front, push_chain
// and steal_half_into with this queue as dst; any thread evacuate_into and the
// hints.  Owner operations disable preemption (the seam's, I-S1) so that the
// tick cannot stop the owner half-way through a push and let its scheduler
// push into the same slot.
//
// Node requirements: `Seam::var<Node*> rq_next`, `Seam::var<bool> pinned`
// (read at the push: the pusher owns the node), `Seam::var<std::size_t>
// rq_stamp` (pinned nodes only, owner only).
//
// Invariants (I-L1..I-L6, checked by models/local_queue.cpp):
//   I-L1 A node pushed is taken exactly once (pop, steal or evacuation): no
//        loss, no duplicate, across growth of the ring.
//   I-L2 pop_front returns the owner's nodes in push order, pinned and
//        unpinned together (FIFO, policy I-R1).
//   I-L3 steal_half_into takes at most min(ceil(u/2), cap) of the u unpinned
//        nodes, at least one if u > 0 when it reads, never a pinned one, the
//        oldest first, and keeps their order in dst (policy I-R2).
//   I-L4 evacuate_into moves every unpinned node queued when it starts (that
//        no other consumer took first), never a pinned one, in order
//        (policy I-R5).
//   I-L5 stealable_hint() is the number of unpinned nodes and size_hint() of
//        all nodes, exact when no operation is under way; a pop never
//        reports a queue empty that holds a node pushed before it started.
//   I-L6 A consumer returns only a node whose slot it read after the push
//        that wrote it (bottom's release / acquire) and before the producer
//        could reuse the slot (top's acq_rel CAS / the producer's acquire).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

// A cache line of its own, as run_queue (the policy keeps the KLTs' queues in
// one array).  kInitialCap: a power of two (the models use 2, to grow).
template <class Seam, class Node, std::size_t kInitialCap = 256>
class alignas(64) local_queue {
  static_assert(kInitialCap >= 2 && (kInitialCap & (kInitialCap - 1)) == 0, "a power of two");
  using slot_t = typename Seam::template atomic<Node*>;
  // Allocated with the unsized global operator new/delete and placement:
  // Relacy replaces exactly those two (models/), not the sized delete a
  // delete-expression calls.
  struct ring {
    std::size_t mask;
    slot_t* slot;
    ring* older;  // retired arrays, freed with the queue
    static ring* make(std::size_t cap, ring* o) {
      void* mem = ::operator new(sizeof(slot_t) * cap);
      slot_t* s = static_cast<slot_t*>(mem);
      for (std::size_t i = 0; i < cap; ++i) new (s + i) slot_t();
      return new (::operator new(sizeof(ring))) ring{cap - 1, s, o};
    }
    static void destroy(ring* r) noexcept {
      for (std::size_t i = 0; i <= r->mask; ++i) r->slot[i].~slot_t();
      ::operator delete(static_cast<void*>(r->slot));
      r->~ring();
      ::operator delete(static_cast<void*>(r));
    }
  };

 public:
  local_queue() : newest_(ring::make(kInitialCap, nullptr)) { buf_.store(newest_, mo::relaxed); }  // relaxed: before publication
  ~local_queue() {
    for (ring* r = newest_; r;) {
      ring* o = r->older;
      ring::destroy(r);
      r = o;
    }
  }
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;

  void push_back(Node* n) noexcept {  // owner
    Seam::preempt_disable();
    push_owned(n);
    Seam::preempt_enable();
  }

  // Pushes a chain linked through rq_next (the mover owns every node of it),
  // in order (the policy's intake from the global queue).  Owner.
  void push_chain(Node* first) noexcept {
    Seam::preempt_disable();
    for (Node* c = first; c;) {
      Node* next = c->rq_next.load();
      c->rq_next.store(nullptr);
      push_owned(c);
      c = next;
    }
    Seam::preempt_enable();
  }

  Node* pop_front() noexcept {  // owner (I-L2)
    Seam::preempt_disable();
    Node* n = pop_owned();
    Seam::preempt_enable();
    return n;
  }

  // Moves up to half (rounded up) of this queue's unpinned nodes, and at most
  // cap, oldest first, to the tail of dst; returns how many (I-L3).  Called
  // by dst's owner (Go's runqsteal: the thief copies straight into its own
  // array, beyond its bottom, and publishes them only once its CAS won).
  std::size_t steal_half_into(local_queue& dst, std::size_t cap = ~std::size_t{0}) noexcept {
    Seam::preempt_disable();
    std::size_t got = 0;
    for (unsigned spins = 0;; Seam::spin_hint(spins++)) {
      std::size_t t = top_.load(mo::acquire);     // acquire: see I-L6 (the producer's side)
      const std::size_t b = bottom_.load(mo::acquire);  // acquire: the slots below b were written
      if (t >= b) break;
      std::size_t want = (b - t + 1) / 2;
      if (want > cap) want = cap;
      if (want == 0) break;
      ring* src = buf_.load(mo::acquire);  // acquire: the array's copied slots
      dst.reserve(want);
      ring* d = dst.buf_.load(mo::relaxed);  // relaxed: dst's owner is the caller
      const std::size_t db = dst.bottom_.load(mo::relaxed);  // relaxed: idem
      for (std::size_t i = 0; i < want; ++i)  // relaxed: ordered by bottom's acquire above (I-L6)
        d->slot[(db + i) & d->mask].store(src->slot[(t + i) & src->mask].load(mo::relaxed), mo::relaxed);
      // acq_rel: release orders the slot reads above before a producer's
      // reuse of the slots (it reads top with acquire); acquire pairs with
      // the other consumers' CASes.  A failed CAS took nothing.
      if (top_.compare_exchange_strong(t, t + want, mo::acq_rel, mo::relaxed)) {
        dst.bottom_.store(db + want, mo::release);  // release: publishes the copied slots
        got = want;
        break;
      }
    }
    Seam::preempt_enable();
    return got;
  }

  // Moves every unpinned node queued when it starts, oldest first, to the
  // tail of dst (a queue with push_chain, e.g. the global run_queue) and
  // returns how many moved (I-L4).  Any thread: the monitor, or a retiring
  // spare's own KLT.  Takes kChunk nodes per CAS, so it needs no storage.
  template <class Dst>
  std::size_t evacuate_into(Dst& dst) noexcept {
    std::size_t moved = 0;
    std::size_t t = top_.load(mo::acquire);  // acquire: as steal_half_into
    const std::size_t end = bottom_.load(mo::acquire);  // acquire: as steal_half_into
    Node* chunk[kChunk];
    for (unsigned spins = 0; t < end;) {
      const std::size_t k = end - t < kChunk ? end - t : kChunk;
      ring* src = buf_.load(mo::acquire);  // acquire: as steal_half_into
      for (std::size_t i = 0; i < k; ++i) chunk[i] = src->slot[(t + i) & src->mask].load(mo::relaxed);  // relaxed: I-L6
      // acq_rel: as steal_half_into.  On failure t is the current top.
      if (!top_.compare_exchange_strong(t, t + k, mo::acq_rel, mo::acquire)) {
        Seam::spin_hint(spins++);
        continue;
      }
      for (std::size_t i = 0; i + 1 < k; ++i) chunk[i]->rq_next.store(chunk[i + 1]);  // owned now
      chunk[k - 1]->rq_next.store(nullptr);
      dst.push_chain(chunk[0]);
      moved += k;
      t += k;
    }
    return moved;
  }

  // I-L5.  Relaxed loads, top first: a hint, exact when quiescent; the idle
  // protocol's fences order it against pushes (idle.hpp).  top is read
  // before bottom, and a consumer advanced top only below a bottom it read,
  // but without acquire a stale bottom may still be read: clamped at 0.
  std::size_t stealable_hint() const noexcept {
    const std::size_t t = top_.load(mo::relaxed);     // relaxed: hint (see above)
    const std::size_t b = bottom_.load(mo::relaxed);  // relaxed: hint
    return b > t ? b - t : 0;
  }
  std::size_t size_hint() const noexcept {
    return stealable_hint() + pinned_n_.load(mo::relaxed);  // relaxed: hint, written by the owner only
  }

 private:
  static constexpr std::size_t kChunk = 32;

  void push_owned(Node* n) noexcept {
    const std::size_t b = bottom_.load(mo::relaxed);  // relaxed: the owner is its only writer
    if (n->pinned.load()) {
      n->rq_stamp.store(b);  // the ring nodes older than n: indices below b
      n->rq_next.store(nullptr);
      if (Node* t = ptail_.load()) t->rq_next.store(n); else phead_.store(n);
      ptail_.store(n);
      pinned_n_.store(pinned_n_.load(mo::relaxed) + 1, mo::relaxed);  // relaxed: owner-written hint
      return;
    }
    reserve(1);
    ring* r = buf_.load(mo::relaxed);  // relaxed: the owner published it
    r->slot[b & r->mask].store(n, mo::relaxed);  // relaxed: published by the release below
    bottom_.store(b + 1, mo::release);  // release: consumers read the slot after acquiring bottom (I-L6)
  }

  Node* pop_owned() noexcept {
    Node* p = phead_.load();
    for (unsigned spins = 0;; Seam::spin_hint(spins++)) {
      std::size_t t = top_.load(mo::acquire);  // acquire: as steal_half_into
      const std::size_t b = bottom_.load(mo::relaxed);  // relaxed: the owner's own
      if (p && (t >= b || p->rq_stamp.load() <= t)) {  // I-L2: every older ring node is gone
        Node* next = p->rq_next.load();
        phead_.store(next);
        if (!next) ptail_.store(nullptr);
        p->rq_next.store(nullptr);
        pinned_n_.store(pinned_n_.load(mo::relaxed) - 1, mo::relaxed);  // relaxed: owner-written hint
        return p;
      }
      if (t >= b) return nullptr;
      ring* r = buf_.load(mo::relaxed);  // relaxed: the owner's own
      Node* n = r->slot[t & r->mask].load(mo::relaxed);  // relaxed: its own store
      // acq_rel: as steal_half_into (a thief may have taken t meanwhile).
      if (top_.compare_exchange_strong(t, t + 1, mo::acq_rel, mo::relaxed)) return n;
    }
  }

  // Room for k more slots beyond bottom; grows the array (owner only).  top
  // with acquire: a slot is reused only after its consumer's CAS, which
  // comes after the consumer's read of it (I-L6).  A stale top only grows
  // early.
  void reserve(std::size_t k) noexcept {
    const std::size_t t = top_.load(mo::acquire);     // acquire: see above
    const std::size_t b = bottom_.load(mo::relaxed);  // relaxed: the owner's own
    ring* r = buf_.load(mo::relaxed);                 // relaxed: the owner's own
    if (b - t + k <= r->mask + 1) return;
    std::size_t cap = (r->mask + 1) * 2;
    while (cap < b - t + k) cap *= 2;
    ring* nr = ring::make(cap, r);
    newest_ = nr;
    for (std::size_t i = t; i < b; ++i)  // relaxed: the owner's own stores
      nr->slot[i & nr->mask].store(r->slot[i & r->mask].load(mo::relaxed), mo::relaxed);
    buf_.store(nr, mo::release);  // release: consumers read the copies after acquiring buf_
  }

  // Consumers' counter first, then the owner's words: a thief's CAS on top
  // and the owner's bottom store are on different lines, as in Go's p.
  alignas(64) typename Seam::template atomic<std::size_t> top_{0};
  alignas(64) typename Seam::template atomic<std::size_t> bottom_{0};
  typename Seam::template atomic<ring*> buf_{nullptr};
  typename Seam::template atomic<std::size_t> pinned_n_{0};  // owner-written, read as a hint
  typename Seam::template var<Node*> phead_{nullptr};         // owner only
  typename Seam::template var<Node*> ptail_{nullptr};         // owner only
  // The arrays' owner (the newest, which links the older ones): a plain
  // pointer, used by the owner's growth and the destructor only.
  ring* newest_;
};

}  // namespace fiber::detail
