// fiber/detail/timer_heap.hpp - the runtime's timer structure: an indexed
// binary min-heap of (deadline, sequence) -> Node.  Sequential: the runtime
// guards it with a spinlock (core/src/timers.cpp), the simulator uses it as is.
//
// Node requirements: members `std::uint64_t timer_deadline`, `std::uint64_t
// timer_seq`, `std::size_t timer_index` (kNotQueued when not in the heap).
//   I-T1 Equal deadlines expire in insertion order (the sequence number), so
//        sleepers of the same length wake FIFO.
//   I-T2 remove() of a node not in the heap is a no-op (cancel racing expiry).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace fiber::detail {

template <class Node>
class timer_heap {
 public:
  static constexpr std::size_t kNotQueued = ~std::size_t{0};

  bool empty() const noexcept { return v_.empty(); }
  std::size_t size() const noexcept { return v_.size(); }
  std::uint64_t next_deadline() const noexcept {
    return v_.empty() ? ~std::uint64_t{0} : v_.front()->timer_deadline;
  }

  void push(Node* n, std::uint64_t deadline) {
    n->timer_deadline = deadline;
    n->timer_seq = seq_++;
    n->timer_index = v_.size();
    v_.push_back(n);
    up(n->timer_index);
  }
  // Pops the earliest node if its deadline is <= now.
  Node* pop_expired(std::uint64_t now) noexcept {
    if (v_.empty() || v_.front()->timer_deadline > now) return nullptr;
    Node* n = v_.front();
    remove_at(0);
    return n;
  }
  bool remove(Node* n) noexcept {  // I-T2
    if (n->timer_index == kNotQueued) return false;
    remove_at(n->timer_index);
    return true;
  }
  void reserve(std::size_t n) { v_.reserve(n); }

 private:
  static bool less(const Node* a, const Node* b) noexcept {
    return a->timer_deadline != b->timer_deadline ? a->timer_deadline < b->timer_deadline
                                                  : a->timer_seq < b->timer_seq;
  }
  void set(std::size_t i, Node* n) noexcept { v_[i] = n; n->timer_index = i; }
  void up(std::size_t i) noexcept {
    Node* n = v_[i];
    while (i > 0) {
      std::size_t p = (i - 1) / 2;
      if (!less(n, v_[p])) break;
      set(i, v_[p]);
      i = p;
    }
    set(i, n);
  }
  void down(std::size_t i) noexcept {
    Node* n = v_[i];
    const std::size_t sz = v_.size();
    for (;;) {
      std::size_t c = 2 * i + 1;
      if (c >= sz) break;
      if (c + 1 < sz && less(v_[c + 1], v_[c])) ++c;
      if (!less(v_[c], n)) break;
      set(i, v_[c]);
      i = c;
    }
    set(i, n);
  }
  void remove_at(std::size_t i) noexcept {
    Node* gone = v_[i];
    Node* last = v_.back();
    v_.pop_back();
    gone->timer_index = kNotQueued;
    if (i == v_.size()) return;
    set(i, last);
    if (i > 0 && less(last, v_[(i - 1) / 2])) up(i); else down(i);
  }

  std::vector<Node*> v_;
  std::uint64_t seq_ = 0;
};

}  // namespace fiber::detail
