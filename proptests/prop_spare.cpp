// proptests/prop_spare.cpp - the spare KLTs of the policy (policy.hpp I-R7):
// random sequences of pushes (new, yield, preempt, wake, from regular KLTs,
// spares and OS threads), picks, parks, evacuations and the monitor turning
// spares on and off, against the shipped sched_policy over the sequential
// seam, checked after every operation against a model of where each fiber
// is.  Properties:
//   * no fiber lost or duplicated, and every queued fiber is picked once all
//     KLTs drain (the spares turned off: what a stall's end leaves);
//   * a retiring spare's pick returns only a fiber preempted on it (pinned),
//     and leaves only pinned fibers in its queue: it takes no global work,
//     steals nothing, and hands the unpinned on;
//   * an unpinned fiber pushed by a retiring spare never lands in its queue;
//   * a retiring spare with an empty queue has no work (it may sleep apart),
//     whatever the global queue holds;
//   * no KLT but the one it was preempted on picks a pinned fiber (I-R3).
// The controls plant the two ways a retiring spare can keep running:
// pushing a yielded fiber to its own queue, and picking as if it were on.
#include <array>
#include <sstream>
#include <string>

#include "planted.hpp"
#include "prop_util.hpp"

namespace fiber_sim {
namespace {

constexpr unsigned kSpares = 2;
constexpr unsigned kFibers = 8;

enum class sop : unsigned char { create, pick, yield, preempt, park, wake, spare_on, spare_off, evacuate };

struct sstep {
  sop o;
  unsigned k;  // the KLT slot acting (kNoKlt for an OS thread's create or wake)
  unsigned f;  // the fiber (wake)
};

struct spare_case {
  unsigned nklts = 1;
  std::vector<sstep> steps;
};

std::ostream& operator<<(std::ostream& os, const sstep& s) {
  static const char* names[] = {"create", "pick", "yield", "preempt", "park", "wake", "spare_on", "spare_off", "evacuate"};
  os << names[static_cast<unsigned>(s.o)] << "(k" << (s.k == kNoKlt ? std::string("os") : std::to_string(s.k));
  if (s.o == sop::wake) os << ", f" << s.f;
  return os << ")";
}
std::ostream& operator<<(std::ostream& os, const spare_case& c) {
  os << c.nklts << " KLTs + " << kSpares << " spares:";
  for (const auto& s : c.steps) os << " " << s;
  return os;
}

rc::Gen<spare_case> gen_spare_case() {
  return rc::gen::mapcat(small(1, 3), [](unsigned nklts) {
    const unsigned slots = nklts + kSpares;
    auto step = rc::gen::apply(
        [slots](unsigned o, unsigned k, unsigned f) {
          sstep s{static_cast<sop>(o), k, f};
          if ((s.o == sop::create || s.o == sop::wake) && k == slots) s.k = kNoKlt;  // an OS thread
          else s.k = k % slots;
          return s;
        },
        small(0, 9), small(0, slots + 1), small(0, kFibers));
    return rc::gen::apply(
        [nklts](std::vector<sstep> v) {
          spare_case c;
          c.nklts = nklts;
          c.steps = std::move(v);
          return c;
        },
        rc::gen::resize(60, rc::gen::container<std::vector<sstep>>(step)));
  });
}

// Where the model says a fiber is.
enum class at : unsigned char { unborn, queued, running, parked };

template <class P>
struct spare_sim {
  explicit spare_sim(unsigned nklts) : nklts_(nklts), p_(nklts, fiber::detail::policy_opts{}, kSpares) {
    for (unsigned i = 0; i < kFibers; ++i) nodes_[i].id = i;
    running_.fill(kNone);
  }

  void fail(const std::string& why) { RC_FAIL(why); }
  unsigned slots() const { return nklts_ + kSpares; }
  bool up(unsigned k) const { return k < nklts_ + spares_up_; }
  unsigned idx(const sim_fiber* n) const { return static_cast<unsigned>(n - nodes_.data()); }

  // A push of fiber i by KLT k (or an OS thread); checks I-R7's push side.
  void push(unsigned i, unsigned k, sop why) {
    sim_fiber* n = &nodes_[i];
    const bool retiring = k != kNoKlt && p_.retiring(k);
    const std::size_t before = k != kNoKlt ? p_.queued_hint(k) : 0;
    pinned_to_[i] = kNoKlt;
    switch (why) {
      case sop::create: p_.on_new(n, k); break;
      case sop::yield: p_.on_yield(n, k); break;
      case sop::preempt: p_.on_preempted(n, k); pinned_to_[i] = k; break;
      default: p_.on_wake(n, k); break;
    }
    where_[i] = at::queued;
    if (retiring && why != sop::preempt && p_.queued_hint(k) != before) {
      std::ostringstream ss;
      ss << "I-R7: retiring spare k" << k << " kept unpinned fiber f" << i << " in its own queue";
      fail(ss.str());
    }
  }

  void pick(unsigned k) {
    if (running_[k] != kNone) return;
    const bool retiring = p_.retiring(k);
    sim_fiber* n = p_.pick_next(k);
    if (!n) {
      check_retiring_after_pick(k, retiring);
      return;
    }
    const unsigned i = idx(n);
    if (where_[i] != at::queued) {
      std::ostringstream ss;
      ss << "k" << k << " picked f" << i << ", which is not queued (duplicated)";
      fail(ss.str());
    }
    if (pinned_to_[i] != kNoKlt && pinned_to_[i] != k) {
      std::ostringstream ss;
      ss << "I-R3: k" << k << " picked f" << i << ", pinned to k" << pinned_to_[i];
      fail(ss.str());
    }
    if (retiring && pinned_to_[i] != k) {
      std::ostringstream ss;
      ss << "I-R7: retiring spare k" << k << " picked f" << i << ", which was not preempted on it";
      fail(ss.str());
    }
    pinned_to_[i] = kNoKlt;
    where_[i] = at::running;
    running_[k] = i;
    check_retiring_after_pick(k, retiring);
  }

  void check_retiring_after_pick(unsigned k, bool retiring) {
    if (!retiring) return;
    if (p_.queued_hint(k) != pinned_in(k)) {
      std::ostringstream ss;
      ss << "I-R7: retiring spare k" << k << " holds unpinned fibers after its pick";
      fail(ss.str());
    }
    if (!p_.has_work(k) && p_.queued_hint(k) != 0) fail("I-R7: has_work false with its own pinned fibers queued");
    if (p_.queued_hint(k) == 0 && p_.has_work(k)) fail("I-R7: a retiring spare with nothing of its own has work");
  }

  // Queued fibers pinned to k (the model's count).
  std::size_t pinned_in(unsigned k) const {
    std::size_t c = 0;
    for (unsigned i = 0; i < kFibers; ++i) c += where_[i] == at::queued && pinned_to_[i] == k;
    return c;
  }

  void apply(const sstep& s) {
    switch (s.o) {
      case sop::create: {
        if (born_ == kFibers || (s.k != kNoKlt && !up(s.k))) return;
        push(born_++, s.k, sop::create);
        return;
      }
      case sop::pick:
        if (up(s.k)) pick(s.k);
        return;
      case sop::yield:
      case sop::preempt:
      case sop::park: {
        const unsigned i = running_[s.k];
        if (i == kNone) return;
        running_[s.k] = kNone;
        if (s.o == sop::park) where_[i] = at::parked;
        else push(i, s.k, s.o);
        return;
      }
      case sop::wake:
        if (where_[s.f] != at::parked || (s.k != kNoKlt && !up(s.k))) return;
        push(s.f, s.k, sop::wake);
        return;
      case sop::spare_on:
      case sop::spare_off: {
        if (s.k < nklts_) return;
        const unsigned sp = s.k - nklts_;
        const bool on = s.o == sop::spare_on;
        // A spare starts turned on, in order (monitor.cpp start_spare); one
        // never started cannot be turned off.
        if (!up(s.k) && (!on || sp != spares_up_)) return;
        if (!up(s.k)) ++spares_up_;
        p_.spare_on(s.k, on);
        return;
      }
      case sop::evacuate: p_.evacuate(s.k); return;
    }
  }

  // The stall is over: every spare off, every running fiber yields, and the
  // KLTs pick (parking what they pick) until none finds anything.  Every
  // queued fiber must come out exactly once.
  void drain() {
    for (unsigned s = 0; s < spares_up_; ++s) p_.spare_on(nklts_ + s, false);
    for (unsigned k = 0; k < slots(); ++k)
      if (running_[k] != kNone) apply({sop::yield, k, 0});
    for (bool any = true; any;) {
      any = false;
      for (unsigned k = 0; k < slots(); ++k) {
        if (!up(k)) continue;
        pick(k);
        if (running_[k] != kNone) {
          any = true;
          apply({sop::park, k, 0});
        }
      }
    }
    for (unsigned i = 0; i < born_; ++i) {
      if (where_[i] == at::queued) {
        std::ostringstream ss;
        ss << "f" << i << " was queued and no KLT ever picked it (lost)";
        fail(ss.str());
      }
    }
    if (p_.has_work_hint()) fail("the queues hold fibers the model does not know (duplicated)");
  }

  static constexpr unsigned kNone = ~0u;
  unsigned nklts_;
  P p_;
  std::array<sim_fiber, kFibers> nodes_{};
  std::array<at, kFibers> where_{};
  std::array<unsigned, kFibers> pinned_to_ = [] {
    std::array<unsigned, kFibers> a{};
    a.fill(kNoKlt);
    return a;
  }();
  std::array<unsigned, 8> running_{};
  unsigned born_ = 0;
  unsigned spares_up_ = 0;
};

template <class P>
void spares_keep_every_fiber() {
  const spare_case c = *gen_spare_case();
  spare_sim<P> s(c.nklts);
  for (const sstep& st : c.steps) s.apply(st);
  s.drain();
}

// ------------------------------------------------------------ the controls

// PLANTED: a retiring spare requeues a yielded fiber on itself (no redirect).
struct yield_stays_policy : fifo {
  using fifo::fifo;
  bool on_yield(sim_fiber* n, unsigned klt) noexcept {
    if (!retiring(klt)) return fifo::on_yield(n, klt);
    n->pinned.store(false);
    local_[klt].push_back(n);
    return false;
  }
};

// PLANTED: a retiring spare picks as if it were on (global intake, steals).
struct greedy_spare_policy : fifo {
  using fifo::fifo;
  sim_fiber* pick_next(unsigned klt) noexcept {
    if (!retiring(klt)) return fifo::pick_next(klt);
    take_global(klt);
    return pick_local(klt);
  }
};

FIBER_PROP(Spare, RetiringSparesKeepEveryFiberAndOnlyTheirPinned, 2000, ()) { spares_keep_every_fiber<fifo>(); }

TEST(SpareControl, CatchesYieldStayingOnARetiringSpare) {
  expect_counterexample("SpareControl/CatchesYieldStayingOnARetiringSpare", 5000,
                        [] { spares_keep_every_fiber<yield_stays_policy>(); });
}
TEST(SpareControl, CatchesGreedyRetiringSpare) {
  expect_counterexample("SpareControl/CatchesGreedyRetiringSpare", 5000,
                        [] { spares_keep_every_fiber<greedy_spare_policy>(); });
}

}  // namespace
}  // namespace fiber_sim
