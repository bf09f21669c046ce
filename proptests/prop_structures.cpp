// proptests/prop_structures.cpp - run_queue (I-Q1..I-Q4), local_queue
// (I-L1..I-L3, I-L5, sequentially: its races are the model's, models/
// local_queue.cpp) and timer_heap (I-T1, I-T2) against simple sequential
// models with rapidcheck/state.h, and the steal bound (I-Q3, I-L3) as a
// direct property.  Same sim_seam instantiation
// as the simulator.  Each property has a planted-bug control (planted.hpp).
#include <map>

#include <rapidcheck/state.h>

#include "planted.hpp"
#include "prop_util.hpp"

namespace fiber_sim {
namespace {

constexpr unsigned kNodes = 10;

// -1 for "nothing": RapidCheck cannot show a null pointer in RC_ASSERT.
int id_or_none(const sim_fiber* f) { return f != nullptr ? static_cast<int>(f->id) : -1; }

// --------------------------------------------------------- run_queue
// Model: two FIFOs of node ids and each node's pinned flag.
struct rq_model {
  std::deque<unsigned> q[2];
  bool pinned[kNodes] = {};
  bool half_of_unpinned = false;  // local_queue (I-L3): half of the unpinned nodes, not of all
  bool queued(unsigned id) const {
    for (const auto& d : q)
      if (std::find(d.begin(), d.end(), id) != d.end()) return true;
    return false;
  }
  // I-Q3 as the model: ceil(n/2) oldest unpinned nodes, order kept.
  std::size_t steal(unsigned from) {
    std::deque<unsigned>& v = q[from];
    std::size_t n = v.size();
    if (half_of_unpinned) n = static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [&](unsigned id) { return !pinned[id]; }));
    std::size_t want = (n + 1) / 2, moved = 0;
    std::deque<unsigned> keep;
    for (unsigned id : v) {
      if (moved < want && !pinned[id]) q[1 - from].push_back(id), ++moved;
      else keep.push_back(id);
    }
    v = keep;
    return moved;
  }
};

template <class Q>
struct rq_sut {
  Q q[2];
  sim_fiber n[kNodes];
  rq_sut() { for (unsigned i = 0; i < kNodes; ++i) n[i].id = i; }
};

template <class Q>
void rq_compare(const rq_model& m, rq_sut<Q>& s) {
  for (unsigned w = 0; w < 2; ++w) {
    std::vector<unsigned> got;
    for (sim_fiber* f : contents(s.q[w])) got.push_back(f->id);
    RC_ASSERT(got == std::vector<unsigned>(m.q[w].begin(), m.q[w].end()));  // I-Q1, I-Q2
    RC_ASSERT(s.q[w].size_hint() == m.q[w].size());                          // I-Q4
  }
}

template <class Q>
struct rq_push : rc::state::Command<rq_model, rq_sut<Q>> {
  unsigned w, id;
  bool pin;
  rq_push() : w(*small(0, 2)), id(*small(0, kNodes)), pin(*rc::gen::arbitrary<bool>()) {}
  void checkPreconditions(const rq_model& m) const override { RC_PRE(!m.queued(id)); }
  void apply(rq_model& m) const override { m.q[w].push_back(id); m.pinned[id] = pin; }
  void run(const rq_model& m, rq_sut<Q>& s) const override {
    s.n[id].pinned.store(pin);
    s.q[w].push_back(&s.n[id]);
    rq_compare(this->nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "push(q" << w << ", n" << id << (pin ? ", pinned)" : ")"); }
};

template <class Q>
struct rq_pop : rc::state::Command<rq_model, rq_sut<Q>> {
  unsigned w;
  rq_pop() : w(*small(0, 2)) {}
  void apply(rq_model& m) const override { if (!m.q[w].empty()) m.q[w].pop_front(); }
  void run(const rq_model& m, rq_sut<Q>& s) const override {
    const int got = id_or_none(s.q[w].pop_front());
    const int want = m.q[w].empty() ? -1 : static_cast<int>(m.q[w].front());
    RC_ASSERT(got == want);  // I-Q2, I-Q4: FIFO and never spuriously empty
    rq_compare(this->nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "pop(q" << w << ")"; }
};

template <class Q>
struct rq_steal : rc::state::Command<rq_model, rq_sut<Q>> {
  unsigned from;
  rq_steal() : from(*small(0, 2)) {}
  void apply(rq_model& m) const override { m.steal(from); }
  void run(const rq_model& m, rq_sut<Q>& s) const override {
    rq_model after = m;
    const std::size_t want = after.steal(from);
    RC_ASSERT(s.q[from].steal_half_into(s.q[1 - from]) == want);  // I-Q3
    rq_compare(after, s);
  }
  void show(std::ostream& os) const override { os << "steal(q" << from << " -> q" << 1 - from << ")"; }
};

// A KLT's queue with a 2-slot first array, so that pushes grow it.
using small_local_queue_t = fiber::detail::local_queue<sim_seam, sim_fiber, 2>;
template <class Q>
constexpr bool kHalfOfUnpinned = false;
template <>
constexpr bool kHalfOfUnpinned<small_local_queue_t> = true;
template <>
constexpr bool kHalfOfUnpinned<planted::pinned_last_queue> = true;

template <class Q>
void run_queue_stateful() {
  rq_sut<Q> sut;
  rq_model initial;
  initial.half_of_unpinned = kHalfOfUnpinned<Q>;
  rc::state::check(initial, sut, rc::state::gen::execOneOfWithArgs<rq_push<Q>, rq_pop<Q>, rq_steal<Q>>());
}

// I-Q3 directly, as the header states it (an upper bound, not the exact
// choice): at most min(ceil(n/2), cap) moved, none pinned, at least one if
// any node is unpinned, and the relative order of what moved and what stayed
// is kept.
template <class Q>
void steal_bounds() {
  const auto victim = *rc::gen::container<std::vector<bool>>(rc::gen::arbitrary<bool>());
  const std::size_t dst_len = *small(0, 4);
  const std::size_t cap = *small(1, 40);
  RC_PRE(victim.size() + dst_len <= 64);
  std::vector<sim_fiber> n(victim.size() + dst_len);
  Q v, d;
  for (std::size_t i = 0; i < n.size(); ++i) {
    n[i].id = static_cast<unsigned>(i);
    n[i].pinned.store(i < victim.size() && victim[i]);
    (i < victim.size() ? v : d).push_back(&n[i]);
  }
  const std::size_t moved = v.steal_half_into(d, cap);
  const std::vector<sim_fiber*> left = contents(v), got = contents(d);
  const std::size_t unpinned = static_cast<std::size_t>(std::count(victim.begin(), victim.end(), false));
  RC_ASSERT(moved <= (victim.size() + 1) / 2);
  RC_ASSERT(moved <= cap);
  RC_ASSERT(unpinned == 0 || moved >= 1);
  RC_ASSERT(left.size() + moved == victim.size() && got.size() == dst_len + moved);
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i < dst_len) RC_ASSERT(got[i]->id == i + victim.size());  // dst's own nodes stay first
    else RC_ASSERT(!got[i]->pinned.load() && got[i]->id < victim.size());
    if (i > dst_len) RC_ASSERT(got[i - 1]->id < got[i]->id);      // stolen keep their order
  }
  for (std::size_t i = 1; i < left.size(); ++i) RC_ASSERT(left[i - 1]->id < left[i]->id);
}

// --------------------------------------------------------- timer_heap
// Model: (deadline, push order) -> id, ordered as I-T1 requires.
struct th_model {
  std::map<std::pair<std::uint64_t, std::uint64_t>, unsigned> m;
  std::uint64_t seq = 0;
  bool queued(unsigned id) const {
    for (const auto& e : m) if (e.second == id) return true;
    return false;
  }
};

template <class H>
struct th_sut {
  H h;
  sim_fiber n[kNodes];
  th_sut() { for (unsigned i = 0; i < kNodes; ++i) n[i].id = i; }
};

template <class H>
struct th_push : rc::state::Command<th_model, th_sut<H>> {
  unsigned id;
  std::uint64_t deadline;
  th_push() : id(*small(0, kNodes)), deadline(*small(1, 6)) {}
  void checkPreconditions(const th_model& m) const override { RC_PRE(!m.queued(id)); }
  void apply(th_model& m) const override { m.m[{deadline, m.seq++}] = id; }
  void run(const th_model& m, th_sut<H>& s) const override {
    s.h.push(&s.n[id], deadline);
    RC_ASSERT(s.h.size() == m.m.size() + 1);
  }
  void show(std::ostream& os) const override { os << "push(n" << id << ", due " << deadline << ")"; }
};

template <class H>
struct th_pop : rc::state::Command<th_model, th_sut<H>> {
  std::uint64_t now;
  th_pop() : now(*small(0, 7)) {}
  void apply(th_model& m) const override {
    if (!m.m.empty() && m.m.begin()->first.first <= now) m.m.erase(m.m.begin());
  }
  void run(const th_model& m, th_sut<H>& s) const override {
    const int got = id_or_none(s.h.pop_expired(now));
    const bool due = !m.m.empty() && m.m.begin()->first.first <= now;
    RC_ASSERT(got == (due ? static_cast<int>(m.m.begin()->second) : -1));  // I-T1
  }
  void show(std::ostream& os) const override { os << "pop_expired(now " << now << ")"; }
};

template <class H>
struct th_remove : rc::state::Command<th_model, th_sut<H>> {
  unsigned id;
  th_remove() : id(*small(0, kNodes)) {}
  void apply(th_model& m) const override {
    for (auto it = m.m.begin(); it != m.m.end(); ++it)
      if (it->second == id) { m.m.erase(it); return; }
  }
  void run(const th_model& m, th_sut<H>& s) const override {
    RC_ASSERT(s.h.remove(&s.n[id]) == m.queued(id));  // I-T2: not queued is a no-op
    RC_ASSERT(s.h.size() == this->nextState(m).m.size());
  }
  void show(std::ostream& os) const override { os << "remove(n" << id << ")"; }
};

template <class H>
void timer_heap_stateful() {
  th_sut<H> sut;
  const th_model initial;
  rc::state::check(initial, sut, rc::state::gen::execOneOfWithArgs<th_push<H>, th_pop<H>, th_remove<H>>());
}

}  // namespace
}  // namespace fiber_sim

using namespace fiber_sim;
using namespace fiber_sim::planted;

FIBER_PROP(RunQueue, StatefulAgainstDequeModel, 1500, ()) { run_queue_stateful<run_queue_t>(); }
FIBER_PROP(RunQueue, StealBounds, 3000, ()) { steal_bounds<run_queue_t>(); }
FIBER_PROP(LocalQueue, StatefulAgainstDequeModel, 1500, ()) { run_queue_stateful<small_local_queue_t>(); }
FIBER_PROP(LocalQueue, StealBounds, 3000, ()) { steal_bounds<small_local_queue_t>(); }
FIBER_PROP(TimerHeap, StatefulAgainstMultimapModel, 1500, ()) { timer_heap_stateful<heap_t>(); }

TEST(LocalQueueControl, StatefulCatchesPinnedLast) {
  expect_counterexample("LocalQueueControl/StatefulCatchesPinnedLast", 3000,
                        [] { run_queue_stateful<pinned_last_queue>(); });
}
TEST(RunQueueControl, StatefulCatchesLifoQueue) {
  expect_counterexample("RunQueueControl/StatefulCatchesLifoQueue", 3000, [] { run_queue_stateful<lifo_queue>(); });
}
TEST(RunQueueControl, StatefulCatchesGreedySteal) {
  expect_counterexample("RunQueueControl/StatefulCatchesGreedySteal", 3000,
                        [] { run_queue_stateful<greedy_steal_queue>(); });
}
TEST(RunQueueControl, StealBoundsCatchesGreedySteal) {
  expect_counterexample("RunQueueControl/StealBoundsCatchesGreedySteal", 3000,
                        [] { steal_bounds<greedy_steal_queue>(); });
}
TEST(TimerHeapControl, StatefulCatchesLifoTies) {
  expect_counterexample("TimerHeapControl/StatefulCatchesLifoTies", 3000, [] { timer_heap_stateful<lifo_tie_heap>(); });
}
