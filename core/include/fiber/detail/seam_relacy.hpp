// fiber/detail/seam_relacy.hpp - the Relacy backend of the seam (see seam.hpp).
//
// Selected by -DFIBER_SEAM_RELACY=1 (models/ only).  The production algorithms
// of core/include/fiber/detail/ are instantiated with relacy_seam and run
// under Relacy's scheduler (full, context-bound or random search) with its
// C++11 memory model, so the very source that ships is what is model-checked.
//
//   atomic<T>      rl::atomic<T>; fiber::detail::mo maps to rl::mo_*.
//   var<T>         rl::var<T>: an access not ordered by happens-before with a
//                  conflicting one is reported as DATA RACE.
//   fence          rl::atomic_thread_fence.
//   spin_hint      rl::yield, so bounded searches terminate (a spin loop without
//                  it is reported as LIVELOCK at the execution depth limit).
//   preempt_*      no scheduling effect (Relacy threads stand for KLTs or OS
//                  threads); they only count a per-thread depth that models
//                  read through preempt_depth() to check I-S1.
//   block/wake     the parker word is the futex: block() commits (try_commit),
//                  then sleeps with rl::atomic::wait while the word still reads
//                  kParked, then finish().  wake() is rl::atomic::wake.
//   os_wait/wake   the same on an arbitrary word.
//   now_ns         a virtual per-thread clock, 0 at start; a timed wait that
//                  Relacy times out moves the waiter's clock to its deadline.
//   current_parker one parker per Relacy thread, owned by a relacy_env that
//                  the test creates (Relacy crashes on static rl::atomic and on
//                  heap use outside rl::simulate()).
//   self_id        rl::thread_index() + 1.
//   FIBER_ASSERT   reported by Relacy as a failed user assertion at the core
//                  source line.
//
// Spurious wake-ups (allowed by the seam contract, I-P4) are switchable per
// search with relacy_set_spurious(): off for full search (Relacy's spurious
// wake-ups there make every correct waiter look like a LIVELOCK), on for
// random and context-bound search.
//
// Include order: standard headers first, then <relacy/relacy.hpp>, then undo
// the macros Relacy defines that break ordinary C++ (memory_order_*, new,
// delete, malloc/free, assert, errno, E* codes).  Core code never spells `$`
// or rl::; only this file (and models/) do.
#pragma once

// Every standard header a core header or a model may want, before Relacy.
#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#pragma push_macro("assert")
#pragma push_macro("errno")
#pragma push_macro("EINVAL")
#pragma push_macro("ETIMEDOUT")
#pragma push_macro("EBUSY")
#pragma push_macro("EINTR")
#pragma push_macro("EAGAIN")
#pragma push_macro("EWOULDBLOCK")
#include <relacy/relacy.hpp>
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef assert
#undef errno
#undef EINVAL
#undef ETIMEDOUT
#undef EBUSY
#undef EINTR
#undef EAGAIN
#undef EWOULDBLOCK
#pragma pop_macro("assert")
#pragma pop_macro("errno")
#pragma pop_macro("EINVAL")
#pragma pop_macro("ETIMEDOUT")
#pragma pop_macro("EBUSY")
#pragma pop_macro("EINTR")
#pragma pop_macro("EAGAIN")
#pragma pop_macro("EWOULDBLOCK")

#define FIBER_ENABLE_ASSERTS 1
#include "fiber/detail/assert.hpp"

// Reported by Relacy (history + replay state) at the core source line.
#undef FIBER_ASSERT
#define FIBER_ASSERT(cond, msg)                                                     \
  RL_ASSERT_IMPL(cond, ::rl::test_result_user_assert_failed,                        \
                 "fiber assertion failed: " msg " (" #cond ")", RL_INFO)

namespace fiber::detail {

enum class mo : unsigned char;
template <class Seam> class basic_parker;

// The caller's source position, so Relacy's histories name core/ lines.
struct src_loc {
  ::rl::debug_info info;
  static src_loc current(const char* file = __builtin_FILE(), int line = __builtin_LINE(),
                         const char* func = __builtin_FUNCTION()) noexcept {
    return src_loc{::rl::debug_info(func, file, static_cast<unsigned>(line))};
  }
};

inline ::rl::memory_order to_rl(mo m) noexcept {
  switch (m) {
    case mo::relaxed: return ::rl::mo_relaxed;
    case mo::acquire: return ::rl::mo_acquire;
    case mo::release: return ::rl::mo_release;
    case mo::acq_rel: return ::rl::mo_acq_rel;
    default: return ::rl::mo_seq_cst;
  }
}

// Failure order of a CAS, derived as the standard does.
inline ::rl::memory_order to_rl_fail(mo m) noexcept {
  switch (m) {
    case mo::release: return ::rl::mo_relaxed;
    case mo::acq_rel: return ::rl::mo_acquire;
    default: return to_rl(m);
  }
}

// Per-search and per-test state.  Plain globals (no rl:: objects: those may
// only live inside a simulated test).  The model runner sets `spurious` before
// each search; relacy_env (below) resets the rest at every iteration.
struct relacy_globals {
  static constexpr unsigned kMaxThreads = 8;
  bool spurious = false;
  void* parkers[kMaxThreads] = {};
  std::uint64_t clock[kMaxThreads] = {};
  int preempt[kMaxThreads] = {};
  bool env_live = false;  // a relacy_env exists (it resets the above per iteration)
  // A simulated asynchronous interrupt (a signal) of one Relacy thread: when
  // armed, `handler` runs at every interrupt point of `thread` - before each
  // of its seam atomic and var operations - except inside the handler itself
  // (the signal is blocked while it runs).  The handler decides whether a
  // signal is pending and what it does; when it returns true, `after` runs
  // next, with the signal unblocked again: the code a handler redirects the
  // interrupted context into (the preemption trampoline).  models/preempt.cpp.
  struct irq_t {
    unsigned thread = 0;
    bool (*handler)(void*) = nullptr;
    void (*after)(void*) = nullptr;
    void* ctx = nullptr;
    bool in_handler = false;
  } irq;
  // Called by note_wait (a model's observer; reset with the environment).
  void (*wait_hook)(void*) = nullptr;
  void* wait_ctx = nullptr;
};
inline relacy_globals g_relacy;

inline void relacy_set_spurious(bool on) noexcept { g_relacy.spurious = on; }

// Arms (handler != nullptr) or disarms the simulated interrupt of `thread`.
inline void relacy_set_irq(unsigned thread, bool (*handler)(void*), void (*after)(void*),
                           void* ctx) noexcept {
  g_relacy.irq = relacy_globals::irq_t{thread, handler, after, ctx, false};
}

// An interrupt point: a signal may be delivered to this thread here.
inline void relacy_irq_point() {
  relacy_globals::irq_t& q = g_relacy.irq;
  if (q.handler == nullptr || q.in_handler || ::rl::thread_index() != q.thread) return;
  q.in_handler = true;
  const bool redirect = q.handler(q.ctx);
  q.in_handler = false;
  if (redirect) q.after(q.ctx);
}

inline bool relacy_spurious() noexcept { return g_relacy.spurious; }

template <class T>
class relacy_atomic {
 public:
  relacy_atomic() : a_(T{}) {}
  explicit relacy_atomic(T v) : a_(v) {}
  relacy_atomic(const relacy_atomic&) = delete;
  relacy_atomic& operator=(const relacy_atomic&) = delete;

  T load(mo m, src_loc l = src_loc::current()) const {
    relacy_irq_point();
    return a_.load(to_rl(m), l.info);
  }
  void store(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    a_.store(v, to_rl(m), l.info);
  }
  T exchange(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.exchange(v, to_rl(m), l.info);
  }
  bool compare_exchange_strong(T& e, T d, mo ok, mo fail, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.compare_exchange_strong(e, d, to_rl(ok), l.info, to_rl_fail(fail), l.info);
  }
  bool compare_exchange_weak(T& e, T d, mo ok, mo fail, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.compare_exchange_weak(e, d, to_rl(ok), l.info, to_rl_fail(fail), l.info);
  }
  T fetch_add(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.fetch_add(v, to_rl(m), l.info);
  }
  T fetch_sub(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.fetch_sub(v, to_rl(m), l.info);
  }
  T fetch_or(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.fetch_or(v, to_rl(m), l.info);
  }
  T fetch_and(T v, mo m, src_loc l = src_loc::current()) {
    relacy_irq_point();
    return a_.fetch_and(v, to_rl(m), l.info);
  }

  // Relacy-only: the word the platform half waits on.
  ::rl::atomic<T>& raw() noexcept { return a_; }

 private:
  mutable ::rl::atomic<T> a_;
};

template <class T>
class relacy_var {
 public:
  relacy_var() : v_(T{}) {}
  explicit relacy_var(T v) : v_(v) {}
  relacy_var(const relacy_var&) = delete;
  relacy_var& operator=(const relacy_var&) = delete;

  T load(src_loc l = src_loc::current()) const { relacy_irq_point(); return v_(l.info).load(); }
  void store(T v, src_loc l = src_loc::current()) { relacy_irq_point(); v_(l.info).store(v); }

 private:
  ::rl::var<T> v_;
};

struct relacy_seam {
  template <class T> using atomic = relacy_atomic<T>;
  template <class T> using var = relacy_var<T>;
  using parker_type = basic_parker<relacy_seam>;

  static void fence(mo m, src_loc l = src_loc::current()) {
    ::rl::atomic_thread_fence(to_rl(m), l.info);
  }
  // What the native fence_after_rmw stands for: a full seq_cst fence.
  static void fence_after_rmw(src_loc l = src_loc::current()) {
    ::rl::atomic_thread_fence(::rl::mo_seq_cst, l.info);
  }
  // Same thread as the handler it orders against: program order suffices.
  static void signal_fence(src_loc = src_loc::current()) {}
  static void spin_hint(unsigned /*iter*/, src_loc l = src_loc::current()) {
    ::rl::yield(1, l.info);
  }
  static void os_yield(src_loc l = src_loc::current()) { ::rl::yield(1, l.info); }
  static void preempt_disable() {
    RL_ASSERT(g_relacy.env_live && "no relacy_env in this test: make one a test member");
    ++g_relacy.preempt[me()];
  }
  static void preempt_enable() {
    RL_ASSERT(g_relacy.preempt[me()] > 0 && "preempt_enable without preempt_disable");
    --g_relacy.preempt[me()];
  }
  static int preempt_depth() { return g_relacy.preempt[me()]; }

  static unsigned me() { return ::rl::thread_index(); }

  static parker_type& current_parker() {
    void* p = g_relacy.parkers[me()];
    RL_ASSERT(g_relacy.env_live && p != nullptr && "no relacy_env in this test: make one a test member");
    return *static_cast<parker_type*>(p);
  }
  static std::uint64_t self_id() { return std::uint64_t{me()} + 1; }
  static std::uint64_t now_ns() { return g_relacy.clock[me()]; }
  // Diagnostics natively; here a model may observe the moment (the mutex
  // calls it under its lock as it queues: models/mutex.cpp's I-M3 cases).
  template <class Parker>
  static void note_wait(Parker&, wait_kind, const void*) {
    if (g_relacy.wait_hook != nullptr) g_relacy.wait_hook(g_relacy.wait_ctx);
  }

  // --- mutex tuning (mutex.hpp, I-M3): small, so that searches reach the
  // starvation mode; spinning always "useful", so that its code is checked.
  static constexpr unsigned kMutexBargeLimit = 2;
  static constexpr unsigned kMutexSpinLimit = 1;
  static bool spin_useful(std::uint64_t) { return true; }
  // The native trace's lock events and planted defects: nothing here.
  static void trace_lock(const void*, lock_ev, unsigned = 0, const void* = nullptr, unsigned = 0) {}
  static constexpr bool mutex_defect_on(mutex_defect) { return false; }

  // Park platform.  Templates so that basic_parker may still be incomplete here.
  template <class Parker>
  static void block(Parker& p, std::uint64_t deadline, src_loc l = src_loc::current()) {
    if (!p.try_commit()) return;  // a token arrived meanwhile (I-P1)
    wait_while(p.word(), Parker::kParked, deadline, l);
    p.finish();
  }
  template <class Parker>
  static void wake(Parker& p, src_loc l = src_loc::current()) {
    p.word().raw().wake(::rl::ctx(), 1, l.info);
  }

  static void os_wait(atomic<std::uint32_t>& w, std::uint32_t expected, std::uint64_t deadline,
                      src_loc l = src_loc::current()) {
    wait_while(w, expected, deadline, l, /*once=*/true);
  }
  static std::uint32_t os_wake(atomic<std::uint32_t>& w, std::uint32_t count,
                               src_loc l = src_loc::current()) {
    return static_cast<std::uint32_t>(w.raw().wake(::rl::ctx(), count, l.info));
  }

 private:
  // Futex semantics: the value check and the sleep are one step (Relacy does
  // not switch threads between them).  The check is a relaxed RMW so that it
  // reads the latest value, as the kernel does, without adding any ordering
  // the algorithm does not itself provide.  Returns on a change of the word,
  // a timeout (the clock jumps to the deadline) or a spurious wake-up.
  template <class W>
  static void wait_while(W& w, std::uint32_t v, std::uint64_t deadline, src_loc l,
                         bool once = false) {
    const bool timed = deadline != ~std::uint64_t{0};
    std::uint64_t& clock = g_relacy.clock[me()];
    for (;;) {
      if (w.raw().fetch_add(0, ::rl::mo_relaxed, l.info) != v) return;
      if (timed && clock >= deadline) return;
      ::rl::unpark_reason r = w.raw().wait(::rl::ctx(), timed, g_relacy.spurious, l.info);
      if (r == ::rl::unpark_reason_timeout) {
        if (clock < deadline) clock = deadline;
        return;
      }
      if (r == ::rl::unpark_reason_spurious || once) return;
    }
  }
};

// Per-test environment: one parker, one clock and one preemption depth per
// Relacy thread, reset at every iteration (an iteration Relacy abandons on a
// failure must not leak its state into the history re-run).  Every model test
// makes one a member (first, so it outlives the algorithm's objects); the
// seam asserts it exists.
template <class Parker = basic_parker<relacy_seam>>
class relacy_env_t {
 public:
  relacy_env_t() {
    g_relacy.env_live = true;
    for (unsigned i = 0; i < relacy_globals::kMaxThreads; ++i) {
      g_relacy.parkers[i] = &parkers_[i];
      g_relacy.clock[i] = 0;
      g_relacy.preempt[i] = 0;
    }
    g_relacy.irq = relacy_globals::irq_t{};
    g_relacy.wait_hook = nullptr;
    g_relacy.wait_ctx = nullptr;
  }
  ~relacy_env_t() {
    g_relacy.env_live = false;
    g_relacy.irq = relacy_globals::irq_t{};
    g_relacy.wait_hook = nullptr;
    g_relacy.wait_ctx = nullptr;
    for (unsigned i = 0; i < relacy_globals::kMaxThreads; ++i) g_relacy.parkers[i] = nullptr;
  }
  Parker& parker(unsigned thread) noexcept { return parkers_[thread]; }

 private:
  Parker parkers_[relacy_globals::kMaxThreads];
};

}  // namespace fiber::detail
