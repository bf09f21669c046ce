// proptests/sim_fds.hpp - the simulator with file descriptors (issue 12,
// Deliver 3): fibers that read from descriptors through the SHIPPED readiness
// protocol (core/include/fiber/detail/readiness.hpp, with its parker,
// wait_queue and spinlock), descriptors whose readiness a generated schedule
// flips, a poll step (the poller thread's epoll_wait + notify) and close.
//
// The shipped code runs verbatim: basic_readiness<io_seam>::wait() parks the
// fiber through basic_parker<io_seam>::park_until -> io_seam::block, and the
// simulator suspends it there.  To do that each fiber runs on its own stack
// (ucontext; one OS thread, deterministic); io_seam's block/wake/current_parker
// are the simulator's.  What the fiber runs around wait() is the runtime's
// waiter loop (core/src/io_fiber.cpp, park_loop): snapshot, attempt the
// non-blocking read, on EAGAIN wait(seen), retry.
//
// Vocabulary:
//   fd      d0..d2: a count of queued messages (ready = count > 0), an
//           "event pending" flag (epoll's ready list, EPOLLET: one entry per
//           descriptor however many arrivals), closed.
//   script  per fiber, a list of reads: read(dJ) waits until one message can
//           be taken from dJ (returns data) or dJ is closed (returns EBADF);
//           readt(dJ) the same with a timeout (SO_RCVTIMEO): it may also
//           return EAGAIN once its timer fired.
//   step    run(fI)   fiber I takes one step: up to its next yield point.
//                     Yield points: after the snapshot, after a failed
//                     attempt, and inside block() before the commit (the
//                     runtime commits a parking fiber in the scheduler after
//                     it left its stack, I-P5: an unpark may come between).
//                     A parking fiber's run step is the commit: it blocks, or
//                     (a token came) resumes at once.
//           data(dJ)  a message arrives on dJ: count+1, event pending.
//           poll      the poller: every pending event is delivered, in
//                     descriptor order, as readiness::notify() (dispatch).
//           close(dJ) dJ is closed; the runtime's close path notifies its
//                     readiness (fio_closed -> io_notify_all), directly.
//           timer(fI) fiber I's deadline passes: if it is in a timed wait,
//                     its timer unparks it (native_seam::block's timer_add:
//                     expiry unparks, I6); io_seam::now_ns() then reads as
//                     past the deadline for that fiber.
//   drain   after the schedule: run every fiber; when all are blocked, a
//           message arrives for the lowest blocked one and a poll follows.
//
// Checks (a violation throws fiber_sim::violation, which RapidCheck shrinks):
//   W1 no lost wake-up, within one poll: a fiber blocked on dJ whose attempt
//      failed before some arrival on dJ is not blocked once a poll step ran
//      after that arrival (I-RD1, I-P1: the edge found it queued, or its
//      enqueue saw the sequence move, or its commit saw the token).
//   W2 close wakes: no fiber is blocked on a closed descriptor (the EBADF
//      path), checked after every step, close steps included.
//   W3 wake-ups are hints, re-checked: every read that returns data took a
//      message, so reads returning data never exceed arrivals (a waiter that
//      trusted a spurious wake-up, I-RD3, returns data that is not there).
//   W4 a wake-up has a cause: io_seam::wake() (the unpark that found the
//      fiber committed) happens only inside a notify() of the descriptor the
//      fiber waits on, and only for a committed (blocked) fiber (I-P2).
//   W5 after the drain every fiber ran its script to the end exactly once.
//   W6 I-RD4 (the timeout path above all): when wait() returns, no node of
//      the fiber is left in the descriptor's queue (its frame is gone; the
//      next wait would link a node over it and notify() would loop).  The
//      queue is private to basic_readiness; it is read through queue_of()
//      below (the standard's explicit-instantiation access rule), never
//      changed.
//   FIBER_ASSERT in the shipped code is recorded and raised (sim.hpp).
//
// Planted bugs (planted.hpp) are template arguments (a readiness class) or
// bits of `bugs` (simulator-side: the poller, close, the waiter loop).
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "sim.hpp"  // first: sim_seam, and FIBER_ASSERT recorded, not aborted on
#include "sim_trace.hpp"
#include "fiber/detail/readiness.hpp"
#include "../core/src/sanitizer.hpp"  // the runtime's ASan/TSan switch annotations

namespace fiber_sim::io {

using fiber::detail::kNoDeadline;

struct io_seam;
using parker_t = fiber::detail::basic_parker<io_seam>;
using readiness_t = fiber::detail::basic_readiness<io_seam>;

// The simulator as io_seam sees it (one instance runs at a time).
struct io_host {
  virtual parker_t& current_parker() noexcept = 0;
  virtual void block(parker_t& p, std::uint64_t deadline) noexcept = 0;
  virtual void wake(parker_t& p) noexcept = 0;
  virtual std::uint64_t now() noexcept = 0;
  static io_host*& current() noexcept {
    static io_host* h = nullptr;
    return h;
  }

 protected:
  ~io_host() = default;
};

// sim_seam's sequential atomics plus the platform half of the parker.
struct io_seam : sim_seam {
  using parker_type = parker_t;
  static parker_t& current_parker() noexcept { return io_host::current()->current_parker(); }
  static void block(parker_t& p, std::uint64_t deadline) noexcept { io_host::current()->block(p, deadline); }
  static void wake(parker_t& p) noexcept { io_host::current()->wake(p); }
  // Virtual time is per fiber: past the deadline once its timer fired.
  static std::uint64_t now_ns() noexcept { return io_host::current()->now(); }
};

// ------------------------------------------------- reading a private queue
// An explicit instantiation may name a private member ([temp.spec]/6), so
// this names basic_readiness<io_seam>::q_ without touching readiness.hpp.
// A planted readiness class offers queue_for_sim() instead.  An explicit
// instantiation may appear once per program: include this header in one
// translation unit of each test binary (each prop_* is one file).
using wait_queue_t = fiber::detail::wait_queue<io_seam>;
struct readiness_q_tag {
  using type = wait_queue_t readiness_t::*;
  friend type member_of(readiness_q_tag);
};
template <class Tag, typename Tag::type M>
struct expose_member {
  friend typename Tag::type member_of(Tag) { return M; }
};
template struct expose_member<readiness_q_tag, &readiness_t::q_>;

inline const wait_queue_t& queue_of(const readiness_t& r) { return r.*member_of(readiness_q_tag{}); }
template <class R>
const wait_queue_t& queue_of(const R& r) {
  return r.queue_for_sim();
}
// Whether a node on the stack [lo, hi) is linked in q.  Such a node is in a
// dead frame (its wait returned), so it is recognised by its address and
// never read (ASan reports the read as stack-use-after-scope); the nodes
// before it are live waiters' (a dead one would have failed an earlier
// check).  Bounded, so that a corrupted list cannot hang the check.
inline bool holds_node_in(const wait_queue_t& q, const char* lo, const char* hi) {
  const auto in = [&](const void* x) {
    const auto a = reinterpret_cast<std::uintptr_t>(x);
    return a >= reinterpret_cast<std::uintptr_t>(lo) && a < reinterpret_cast<std::uintptr_t>(hi);
  };
  unsigned n = 0;
  for (const auto* x = q.front(); x != nullptr && n < 64; x = x->next_.load(), ++n)
    if (in(x)) return true;
  return false;
}

// ------------------------------------------------------------ scenarios
inline constexpr unsigned kFds = 3, kIoFibers = 4;

enum class io_op : std::uint8_t { run, data, poll, close, timer };
inline constexpr std::uint8_t kTimed = 0x10;           // in a script: readt(dJ)
inline constexpr std::uint64_t kDeadline = 1;          // every timed read's deadline
struct io_step {
  io_op o = io_op::run;
  std::uint8_t arg = 0;  // run: fiber; data, close: descriptor
};
struct io_scenario {
  std::vector<std::vector<std::uint8_t>> reads;  // per fiber: descriptors it reads, in order
  std::vector<io_step> steps;
};

inline std::ostream& operator<<(std::ostream& os, const io_step& s) {
  switch (s.o) {
    case io_op::run: return os << "run(f" << unsigned(s.arg) << ")";
    case io_op::data: return os << "data(d" << unsigned(s.arg) << ")";
    case io_op::poll: return os << "poll";
    case io_op::close: return os << "close(d" << unsigned(s.arg) << ")";
    case io_op::timer: return os << "timer(f" << unsigned(s.arg) << ")";
  }
  return os;
}
inline std::ostream& operator<<(std::ostream& os, const io_scenario& sc) {
  os << "{fibers=[";
  for (std::size_t i = 0; i < sc.reads.size(); ++i) {
    os << (i ? ", " : "") << "f" << i << "=[";
    for (std::size_t j = 0; j < sc.reads[i].size(); ++j) {
      const unsigned r = sc.reads[i][j];
      os << (j ? ", " : "") << ((r & kTimed) ? "readt(d" : "read(d") << (r & ~unsigned{kTimed}) << ")";
    }
    os << "]";
  }
  return os << "], steps=" << show_list(sc.steps) << "}";
}

// Simulator-side planted bugs (planted.hpp names them).
enum io_bug : unsigned {
  kPollDropsLast = 1,  // a poll with >= 2 events delivers all but the last (an off-by-one)
  kCloseNoWake = 2,    // close does not notify the descriptor's readiness
  kTrustWake = 4,      // the waiter returns data after a wake-up without re-trying the read
  kPollWrongFd = 8,    // the poll dispatches dJ's event to d(J+1)'s readiness (a wrong table index)
};

// Checks (all on by default; a control may keep one alone to show it bites).
enum io_check : unsigned { kW1 = 1, kW2 = 2, kW3 = 4, kW4 = 8, kW5 = 16, kW6 = 32, kAllW = 63 };

enum class fst : std::uint8_t { runnable, parking, blocked, done };

struct io_fiber {
  static constexpr std::size_t kStack = 64 * 1024;
  unsigned id = 0;
  std::vector<std::uint8_t> reads;
  std::size_t pc = 0;
  fst state = fst::runnable;
  parker_t parker;
  int waiting_fd = -1;          // the read in progress
  std::uint64_t attempt_t = 0;  // time (step count) of its last failed attempt
  bool started = false;
  bool parked = false;          // block() was called in the current wait()
  bool timed = false;           // in a readt: its wait has a deadline
  bool fired = false;           // ... and its timer fired (now() >= deadline)
  unsigned timeouts = 0;
  unsigned exits = 0, got = 0, ebadf = 0;
  ucontext_t ctx{};
  std::unique_ptr<char[]> stack;
  void* fake = nullptr;      // ASan's fake stack of this context while switched out
  void* tsan = nullptr;      // TSan's fiber
};

template <class Readiness = readiness_t>
class io_sim final : io_host {
 public:
  io_sim(const io_scenario& sc, unsigned bugs, unsigned checks = kAllW)
      : sc_(sc), bugs_(bugs), checks_(checks), fds_(kFds) {
    pending_assert().clear();
    prev_host_ = io_host::current();
    io_host::current() = this;
    for (std::size_t i = 0; i < sc.reads.size() && i < kIoFibers; ++i) {
      fibers_.emplace_back();
      io_fiber& f = fibers_.back();
      f.id = static_cast<unsigned>(i);
      f.reads = sc.reads[i];
      f.parker.owner = &f;
    }
    sim_trace& rec = sim_trace::get();  // the run as a trace (controls only: sim_trace.hpp)
    rec.cur.nklts = 1;
    for (const io_fiber& f : fibers_) rec.add(sim_event::create, kNoKlt, f.id);
    main_tsan_ = fiber::detail::san_current_fiber();
  }
  ~io_sim() {
    for (io_fiber& f : fibers_) fiber::detail::san_destroy_fiber(f.tsan);
    io_host::current() = prev_host_;
  }
  io_sim(const io_sim&) = delete;
  io_sim& operator=(const io_sim&) = delete;

  void run_all() {
    for (step_ = 0; step_ < sc_.steps.size(); ++step_) {
      ++sim_trace::get().cur.schedule_steps;
      do_step(sc_.steps[step_]);
      check();
    }
    drain();
  }
  std::size_t fibers() const { return fibers_.size(); }
  // How often the race windows were hit (the property tags cases with them):
  // an edge between snapshot and enqueue (wait() returned without parking),
  // an unpark between enqueue and commit (the commit found the token), a
  // wake-up whose re-try found no data (spurious, I-RD3), an EBADF return, a
  // timed-out read, a timer that unparked a parked waiter, and a waiter woken
  // by a grant although its deadline had passed (the grant beat dequeue).
  struct window_counts {
    unsigned refused = 0, token = 0, spurious = 0, ebadf = 0, timeout = 0, timer_unpark = 0, late_grant = 0;
  };
  const window_counts& windows() const { return win_; }

 private:
  struct fd_t {
    Readiness r;
    unsigned count = 0;
    bool pending = false, closed = false;
    std::vector<std::uint64_t> arrivals;  // times of data steps
    unsigned returned = 0;                // reads that returned data
  };

  [[noreturn]] void fail(const std::string& what) const {
    std::string where = step_ < sc_.steps.size()
                            ? "at step " + std::to_string(step_ + 1) + " of " + std::to_string(sc_.steps.size())
                            : "in the drain after " + std::to_string(sc_.steps.size()) + " steps";
    throw violation(what + " (" + where + ")");
  }
  // Failures seen on a fiber's stack are recorded there and raised here, on
  // the simulator's, so that no exception crosses a context switch.
  void note(const std::string& what) {
    if (pending_assert().empty()) pending_assert() = what;
  }
  void raise() const {
    if (!pending_assert().empty()) fail(pending_assert());
  }
  static std::string fib(const io_fiber& f) { return "f" + std::to_string(f.id); }
  static std::string dn(int j) { return "d" + std::to_string(j); }

  void do_step(const io_step& s) {
    ++t_;
    switch (s.o) {
      case io_op::run:
        if (!fibers_.empty()) run(fibers_[s.arg % fibers_.size()]);
        break;
      case io_op::data: data(s.arg % kFds); break;
      case io_op::poll: poll(); break;
      case io_op::close: close(s.arg % kFds); break;
      case io_op::timer:
        if (!fibers_.empty()) timer(fibers_[s.arg % fibers_.size()]);
        break;
    }
    raise();
  }

  void data(unsigned j) {
    fd_t& d = fds_[j];
    if (d.closed) return;
    sim_trace::get().add(sim_event::io_data, kNoKlt, 0, j);
    ++d.count;
    d.pending = true;
    d.arrivals.push_back(t_);
  }
  void poll() {
    sim_trace::get().add(sim_event::io_poll, kNoKlt);
    std::vector<unsigned> events;
    for (unsigned j = 0; j < kFds; ++j)
      if (fds_[j].pending && !fds_[j].closed) events.push_back(j);
    if ((bugs_ & kPollDropsLast) && events.size() >= 2) {
      fds_[events.back()].pending = false;  // PLANTED: consumed, never dispatched
      events.pop_back();
    }
    for (unsigned j : events) {
      fds_[j].pending = false;
      notify(j, true);
    }
    last_poll_ = t_;
  }
  void close(unsigned j) {
    fd_t& d = fds_[j];
    if (d.closed) return;
    sim_trace::get().add(sim_event::io_close, kNoKlt, 0, j);
    d.closed = true;
    d.pending = false;  // epoll forgets a closed descriptor
    if (!(bugs_ & kCloseNoWake)) notify(j);
  }
  // The deadline of a timed wait passes: the timer unparks the fiber.
  void timer(io_fiber& f) {
    if (!f.timed || f.fired) return;
    sim_trace::get().add(sim_event::io_timer, kNoKlt, f.id);
    f.fired = true;  // now() reads as past its deadline from here on
    // The timer is armed only inside block() (timer_add before the switch):
    // before that, a passed deadline is seen by block() itself.
    if (f.state != fst::parking && f.state != fst::blocked) return;
    ++win_.timer_unpark;
    notifying_ = kTimerFiring;
    timer_of_ = &f;
    f.parker.unpark();
    notifying_ = -1;
    timer_of_ = nullptr;
  }
  void notify(unsigned j, bool from_poll = false) {
    notifying_ = static_cast<int>(j);
    if (from_poll && (bugs_ & kPollWrongFd)) j = (j + 1) % kFds;  // PLANTED
    fds_[j].r.notify();  // the shipped notify(): bump, grant, unpark (-> wake below)
    notifying_ = -1;
  }

  // ---------------------------------------------------------- fibers
  void run(io_fiber& f) {
    if (f.state == fst::done || f.state == fst::blocked) return;
    if (f.state == fst::parking) {
      // The scheduler's half of block(): commit, unless a token came (I-P1).
      if (f.parker.try_commit()) {
        f.state = fst::blocked;
        return;
      }
      ++win_.token;
      f.state = fst::runnable;  // resumes at once: block() returns
    }
    sim_trace& rec = sim_trace::get();
    rec.add(sim_event::run, 0, f.id);
    resume(f);
    // How it left: parking (block(), committed at its next run), done, or a
    // yield point of the waiter loop.
    const int fd = f.waiting_fd < 0 ? 0 : f.waiting_fd;
    rec.add(f.state == fst::parking ? sim_event::park : f.state == fst::done ? sim_event::exit : sim_event::yield, 0,
            f.id, static_cast<unsigned long long>(fd));
  }
  void resume(io_fiber& f) {
    if (!f.started) start(f);
    cur_ = &f;
    void* fake = nullptr;
    fiber::detail::san_start_switch(&fake, f.stack.get(), io_fiber::kStack, f.tsan);
    swapcontext(&main_, &f.ctx);
    fiber::detail::san_finish_switch(fake);
    cur_ = nullptr;
  }
  void start(io_fiber& f) {
    f.started = true;
    f.stack.reset(new char[io_fiber::kStack]);
    f.tsan = fiber::detail::san_create_fiber();
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = io_fiber::kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, &io_sim::trampoline, 0);
  }
  // Back to the simulator; returns when the fiber is resumed.
  void yield_to_main(io_fiber& f, bool last = false) {
    fiber::detail::san_start_switch(last ? nullptr : &f.fake, main_bottom_, main_size_, main_tsan_);
    swapcontext(&f.ctx, &main_);
    entered(f);
  }
  void entered(io_fiber& f) {
#ifdef FIBER_HAVE_ASAN
    __sanitizer_finish_switch_fiber(f.fake, &main_bottom_, &main_size_);
#else
    (void)f;
#endif
  }
  static void trampoline() {
    auto* self = static_cast<io_sim*>(io_host::current());
    io_fiber& f = *self->cur_;
    self->entered(f);
    for (; f.pc < f.reads.size(); ++f.pc) self->read(f, f.reads[f.pc] & (kTimed - 1), (f.reads[f.pc] & kTimed) != 0);
    f.state = fst::done;
    ++f.exits;
    self->yield_to_main(f, true);  // never resumed
  }

  // The runtime's waiter loop (io_fiber.cpp, park_loop) around the shipped wait().
  void read(io_fiber& f, unsigned j, bool timed) {
    fd_t& d = fds_[j % kFds];
    f.timed = timed;
    f.fired = false;
    for (bool woken = false;;) {
      const std::uint32_t seen = d.r.snapshot();  // before the attempt (I-RD1)
      yield_to_main(f);                          // an edge may come here...
      if (d.closed) {                            // the attempt: EBADF
        ++f.ebadf;
        ++win_.ebadf;
        f.timed = false;
        return;
      }
      if (woken) win_.spurious += d.count == 0;
      if (d.count > 0) {  // data: take one message
        --d.count;
        ++d.returned;
        ++f.got;
        f.timed = false;
        return;
      }
      f.attempt_t = t_;  // EAGAIN
      f.waiting_fd = static_cast<int>(j);
      yield_to_main(f);  // ... or here
      f.parked = false;
      const bool woke = d.r.wait(seen, timed ? kDeadline : kNoDeadline);
      win_.refused += !f.parked;
      win_.late_grant += woke && f.parked && f.fired;  // the grant beat the deadline's dequeue
      woken = f.parked;
      f.waiting_fd = -1;
      if ((checks_ & kW6) && holds_node_in(queue_of(d.r), f.stack.get(), f.stack.get() + io_fiber::kStack))
        note("W6 (I-RD4): " + fib(f) + "'s wait on " + dn(static_cast<int>(j % kFds)) + " returned " +
             (woke ? "woken" : "timed out") + " with its node still queued");
      if (!woke) {  // the deadline passed with no edge since `seen`: EAGAIN
        ++f.timeouts;
        ++win_.timeout;
        f.timed = false;
        return;
      }
      if ((bugs_ & kTrustWake) && woke) {  // PLANTED: the wake-up taken as data
        ++d.returned;
        ++f.got;
        return;
      }
    }
  }

  // io_host: the platform half of the parker.
  parker_t& current_parker() noexcept override { return cur_->parker; }
  std::uint64_t now() noexcept override { return cur_ != nullptr && cur_->fired ? kDeadline : 0; }
  void block(parker_t& p, std::uint64_t deadline) noexcept override {
    io_fiber& f = *static_cast<io_fiber*>(p.owner);
    if (deadline != kNoDeadline && now() >= deadline) return;  // as native_seam::block
    f.state = fst::parking;  // leaves its stack; the next run(f) commits (I-P5)
    f.parked = true;
    yield_to_main(f);
    p.finish();
  }
  void wake(parker_t& p) noexcept override {
    io_fiber& f = *static_cast<io_fiber*>(p.owner);
    if (f.state != fst::blocked)
      note("I-P2: wake of " + fib(f) + ", which is not blocked");
    else if (notifying_ == kTimerFiring && timer_of_ != &f)
      note("W4: " + fib(f) + " woken by another fiber's timer");
    else if ((checks_ & kW4) && notifying_ != kTimerFiring && (notifying_ < 0 || notifying_ != f.waiting_fd))
      note("W4: " + fib(f) + " (waiting on " + dn(f.waiting_fd) + ") woken outside a notify of its descriptor" +
           (notifying_ >= 0 ? " (notify of " + dn(notifying_) + ")" : ""));
    sim_trace::get().add(sim_event::wake, kNoKlt, f.id);
    f.state = fst::runnable;
  }

  // ---------------------------------------------------------- checks
  void check() {
    for (const io_fiber& f : fibers_) {
      if (f.state != fst::blocked) continue;
      const fd_t& d = fds_[f.waiting_fd];
      if (d.closed && (checks_ & kW2)) fail("W2: " + fib(f) + " still sleeps on closed " + dn(f.waiting_fd) + " (no EBADF wake-up)");
      for (std::uint64_t a : d.arrivals) {
        if (a <= f.attempt_t) continue;
        if (last_poll_ > a && (checks_ & kW1))
          fail("W1: lost wake-up: " + fib(f) + " tried " + dn(f.waiting_fd) + " at t=" + std::to_string(f.attempt_t) +
               ", data arrived at t=" + std::to_string(a) + ", a poll ran at t=" + std::to_string(last_poll_) +
               ", and " + fib(f) + " still sleeps");
        break;  // only the first arrival after the attempt matters
      }
    }
    for (unsigned j = 0; j < kFds; ++j)
      if ((checks_ & kW3) && fds_[j].returned > fds_[j].arrivals.size())
        fail("W3: reads of " + dn(static_cast<int>(j)) + " returned data " + std::to_string(fds_[j].returned) +
             " times, but only " + std::to_string(fds_[j].arrivals.size()) +
             " messages arrived (a wake-up trusted without re-trying)");
  }

  void drain() {
    step_ = sc_.steps.size();
    for (unsigned round = 0; round < 2000; ++round) {
      bool ran = false;
      for (io_fiber& f : fibers_) {
        if (f.state != fst::runnable && f.state != fst::parking) continue;
        ran = true;
        ++sim_trace::get().cur.drain_steps;
        ++t_;
        run(f);
        raise();
        check();
      }
      if (ran) continue;
      const io_fiber* b = nullptr;
      for (const io_fiber& f : fibers_)
        if (f.state == fst::blocked) { b = &f; break; }
      if (!b) break;
      ++t_;
      data(static_cast<unsigned>(b->waiting_fd));
      ++t_;
      poll();
      raise();
      check();
    }
    for (const io_fiber& f : fibers_)
      if ((checks_ & kW5) && (f.state != fst::done || f.exits != 1))
        fail("W5: " + fib(f) + " did not finish its reads (read " + std::to_string(f.pc) + " of " +
             std::to_string(f.reads.size()) + ")");
  }

  const io_scenario& sc_;
  unsigned bugs_;
  unsigned checks_;
  std::deque<fd_t> fds_;         // Readiness is neither copyable nor movable
  std::deque<io_fiber> fibers_;  // stable addresses: parkers are type-stable (I-P4)
  io_fiber* cur_ = nullptr;
  ucontext_t main_{};
  const void* main_bottom_ = nullptr;
  std::size_t main_size_ = 0;
  void* main_tsan_ = nullptr;
  io_host* prev_host_ = nullptr;
  static constexpr int kTimerFiring = -2;
  int notifying_ = -1;            // the descriptor being notified, or kTimerFiring
  io_fiber* timer_of_ = nullptr;  // whose timer is firing
  window_counts win_;
  std::size_t step_ = 0;
  std::uint64_t t_ = 0, last_poll_ = 0;
};

}  // namespace fiber_sim::io
