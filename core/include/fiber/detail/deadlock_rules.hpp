// fiber/detail/deadlock_rules.hpp - the deadlock detector's decision, as
// pure code over a *source* of readings, so that the runtime's detector
// (core/src/deadlock.cpp, readings of the live runtime) and the property
// test (proptests/prop_deadlock.cpp, readings of a simulated program whose
// future is known) run the same rules.  Not public API.
//
// What it guarantees (argued in papers/design.md section 12, checked by the
// property test):
//   rule 1, all asleep: reported only when nobody can ever run again (no
//     fiber runnable or running, no timer armed, no fiber waiting for a
//     descriptor (the world outside may wake it), every thread of the process
//     other than KLTs and runtime threads parked in the runtime without a
//     deadline), and reported at the second check after that state forms.
//   rule 2, waits-for cycles among fiber mutexes (edge: waiter -> owner,
//     I-M4) and joins (edge: joiner -> joined fiber): a reported cycle is
//     real (its members never run again), and every cycle is reported, once,
//     at the first scan after it forms (a scan every kCycleEvery checks, and
//     at a rule-1 report).
//
// The source (Src) is read one datum at a time and may change between two
// reads (the runtime runs on; the simulator interleaves steps there), so the
// rules never trust a single reading:
//   rule 1 compares the progress counters read before the first of two
//     consecutive quiet checks with those read after the second: equal means
//     nobody ran, woke, fell asleep or blocked anew in between;
//   rule 2 re-reads every edge of a cycle, then every member (its stamp and
//     wait), after the walk: unchanged means each member stayed parked in
//     the same untimed wait from its first reading to its last, so none of
//     them could release a mutex or exit while the edges were re-read.
//
// Src provides (all noexcept, each a reading at the moment of the call):
//   dl_progress progress();             switches, KLT idle sleeps, OS-thread
//                                       park attempts and returns, live fibers
//   unsigned nklts(); bool klt_idle(k); bool has_work(); bool timer_armed();
//   bool io_waiting();                  a fiber parked on a descriptor
//   void os_waiters(long* parked_untimed, bool* parked_timed);
//   std::uint64_t live(); long internal_threads(); long process_threads();
//   bool skip_thread_check();           a planted bug (tests), else false
//   using handle = ...; static handle none();
//   void each_fiber(void (*fn)(handle, void*), void* ctx);
//   bool read(handle, dl_member<handle>*);   false unless parked; fills all;
//                                       stamp: a value that changes at every
//                                       transition of the fiber (the runtime:
//                                       its state word, diag.hpp)
//   handle blocker(const dl_member<handle>&); the fiber it waits for, or none()
//   std::uint64_t id(handle);
//   void report_cycle(const dl_member<handle>*, int n);  m[i] waits for m[i+1 mod n]
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

inline constexpr int kMaxCycle = 16;      // longer cycles are left to rule 1
inline constexpr unsigned kCycleEvery = 3;  // checks per cycle scan (a scan reads every fiber)
inline constexpr int kMaxReported = 64;   // cycles remembered (each reported once)

struct dl_progress {
  std::uint64_t switches = 0, idle_sleeps = 0, os_blocks = 0, live = 0;
  bool operator==(const dl_progress& o) const noexcept {
    return switches == o.switches && idle_sleeps == o.idle_sleeps && os_blocks == o.os_blocks &&
           live == o.live;
  }
};

template <class H>
struct dl_member {
  H f{};
  std::uint64_t stamp = 0;  // changes at every transition (see Src::read)
  wait_kind kind = wait_kind::none;
  const void* obj = nullptr;
};

// One reading of "nobody can wake anybody": every KLT idle, no queued fiber,
// no timer armed, no fiber waiting for I/O, no OS thread parked with a deadline, something to be
// deadlocked (a live fiber or a parked OS thread), and the process's thread
// count equal to the threads the runtime knows (KLTs, its own threads, the
// OS threads parked untimed), so an unknown thread - it might post a
// semaphore - vetoes.
template <class Src>
bool dl_quiet(Src& s) noexcept {
  for (unsigned k = 0; k < s.nklts(); ++k)
    if (!s.klt_idle(k)) return false;
  if (s.has_work() || s.timer_armed() || s.io_waiting()) return false;
  long untimed = 0;
  bool timed = false;
  s.os_waiters(&untimed, &timed);
  if (timed) return false;
  if (s.live() + static_cast<std::uint64_t>(untimed) == 0) return false;
  if (s.skip_thread_check()) return true;
  return s.process_threads() == static_cast<long>(s.nklts()) + s.internal_threads() + untimed;
}

// The detector's memory between checks, and its two rules.
class dl_detector {
 public:
  enum class verdict { none, asleep };

  // One check (every period).  Scans for cycles every kCycleEvery checks and
  // before an asleep verdict (so the report names them).
  template <class Src>
  verdict check(Src& s) noexcept {
    const dl_progress pre = s.progress();
    const bool q = dl_quiet(s);
    const dl_progress post = s.progress();
    if (q && have_prev_ && prev_quiet_ && prev_pre_ == post) {
      scan(s);
      have_prev_ = false;  // a new quiet spell is needed for another verdict
      return verdict::asleep;
    }
    have_prev_ = true;
    prev_quiet_ = q;
    prev_pre_ = pre;
    if (++tick_ % kCycleEvery == 0) scan(s);
    return verdict::none;
  }

  // Rule 2 over every fiber: reports each confirmed cycle once.
  template <class Src>
  void scan(Src& s) noexcept {
    struct ctx_t { dl_detector* d; Src* s; } ctx{this, &s};
    s.each_fiber([](typename Src::handle h, void* p) noexcept {
      auto& c = *static_cast<ctx_t*>(p);
      c.d->cycle_from(*c.s, h);
    }, &ctx);
  }

 private:
  template <class Src>
  static bool waits_on_fiber(Src& s, typename Src::handle h, dl_member<typename Src::handle>* m) noexcept {
    return s.read(h, m) && (m->kind == wait_kind::mutex || m->kind == wait_kind::join);
  }

  template <class Src>
  static bool same(Src& s, const dl_member<typename Src::handle>& m) noexcept {
    dl_member<typename Src::handle> again;
    return s.read(m.f, &again) && again.stamp == m.stamp && again.kind == m.kind && again.obj == m.obj;
  }

  bool seen(std::uint64_t min_id) const noexcept {
    for (int i = 0; i < nreported_; ++i)
      if (reported_[i] == min_id) return true;
    return false;
  }

  // From `start`, follow edges while the next fiber is parked on a mutex or
  // a join; back at start is a cycle, reported from its smallest id only.
  template <class Src>
  void cycle_from(Src& s, typename Src::handle start) noexcept {
    using H = typename Src::handle;
    dl_member<H> ms[kMaxCycle];
    if (!waits_on_fiber(s, start, &ms[0])) return;
    int n = 1;
    for (;;) {
      H next = s.blocker(ms[n - 1]);
      if (next == Src::none()) return;
      if (next == start) break;
      for (int i = 1; i < n; ++i)
        if (ms[i].f == next) return;  // a cycle not through start: found from one of its members
      if (n == kMaxCycle || !waits_on_fiber(s, next, &ms[n])) return;
      ++n;
    }
    std::uint64_t min_id = ~std::uint64_t{0};
    for (int i = 0; i < n; ++i)
      if (s.id(ms[i].f) < min_id) min_id = s.id(ms[i].f);
    if (s.id(start) != min_id || seen(min_id)) return;  // each cycle once
    for (int i = 0; i < n; ++i)  // confirm: edges again, then members again (see top)
      if (s.blocker(ms[i]) != ms[(i + 1) % n].f) return;
    for (int i = 0; i < n; ++i)
      if (!same(s, ms[i])) return;
    if (nreported_ < kMaxReported) reported_[nreported_++] = min_id;
    s.report_cycle(ms, n);
  }

  bool have_prev_ = false;
  bool prev_quiet_ = false;
  dl_progress prev_pre_{};
  unsigned tick_ = 0;
  std::uint64_t reported_[kMaxReported] = {};  // the smallest member id of each reported cycle
  int nreported_ = 0;
};

}  // namespace fiber::detail
