// proptests/prop_io.cpp - the readiness protocol (core/include/fiber/detail/
// readiness.hpp, I-RD1..I-RD4) as fibers use it, driven by the simulator with
// file descriptors (sim_fds.hpp) over generated, shrinkable schedules: a
// ready descriptor wakes its waiters within one poll (W1), close wakes them
// (W2), wake-ups are re-checked hints (W3), every wake-up has a cause (W4),
// every fiber finishes (W5).  Each property has planted-bug controls
// (planted.hpp) that it must catch.
#include "planted.hpp"
#include "prop_util.hpp"

namespace fiber_sim::io {
namespace {

rc::Gen<std::uint8_t> below(unsigned n) {
  return rc::gen::map(small(0, n), [](unsigned v) { return static_cast<std::uint8_t>(v); });
}

// Ops weighted toward running fibers; close only when asked for.  Arguments
// are reduced here (run: a fiber of the nf; data, close: a descriptor), so a
// printed counterexample names what the simulator does.
struct io_gen_opts {
  bool close = false;   // close steps
  bool timers = false;  // timed reads (readt) and timer steps
};

rc::Gen<io_step> gen_io_step(io_gen_opts g, unsigned nf) {
  std::vector<io_op> ops{io_op::run, io_op::data, io_op::run, io_op::poll, io_op::run, io_op::data, io_op::poll};
  if (g.close) ops.push_back(io_op::close);
  if (g.timers) ops.insert(ops.end(), {io_op::timer, io_op::timer});
  return rc::gen::map(rc::gen::tuple(one_of(ops), small(0, kIoFibers)), [nf](const std::tuple<io_op, unsigned>& t) {
    const io_op o = std::get<0>(t);
    const bool per_fiber = o == io_op::run || o == io_op::timer;
    const unsigned arg = o == io_op::poll ? 0 : std::get<1>(t) % (per_fiber ? nf : kFds);
    return io_step{o, static_cast<std::uint8_t>(arg)};
  });
}

// A read: a descriptor, timed (readt) with probability 1/2 when timers are on.
rc::Gen<std::uint8_t> gen_read(bool timers) {
  return rc::gen::map(rc::gen::tuple(below(kFds), below(timers ? 2 : 1)), [](const std::tuple<std::uint8_t, std::uint8_t>& t) {
    return static_cast<std::uint8_t>(std::get<0>(t) | (std::get<1>(t) ? kTimed : 0));
  });
}

rc::Gen<io_scenario> gen_io(io_gen_opts o) {
  return rc::gen::exec([o] {
    io_scenario sc;
    const unsigned nf = *small(1, kIoFibers + 1);
    for (unsigned i = 0; i < nf; ++i)
      sc.reads.push_back(*rc::gen::resize(3, rc::gen::container<std::vector<std::uint8_t>>(gen_read(o.timers))));
    sc.steps = *rc::gen::resize(50, rc::gen::container<std::vector<io_step>>(gen_io_step(o, nf)));
    return sc;
  });
}

constexpr io_gen_opts kPlainGen{false, false}, kCloseGen{true, false}, kTimedGen{true, true};

template <class R = readiness_t>
void readiness_holds(io_gen_opts o, unsigned bugs = 0, unsigned checks = kAllW) {
  const io_scenario sc = *gen_io(o);
  io_sim<R> s(sc, bugs, checks);
  s.run_all();
  // Which race windows this case went through (RapidCheck prints the shares).
  RC_CLASSIFY(s.windows().refused != 0, "edge between snapshot and enqueue");
  RC_CLASSIFY(s.windows().token != 0, "unpark between enqueue and commit");
  RC_CLASSIFY(s.windows().spurious != 0, "spurious wake-up re-tried");
  RC_CLASSIFY(s.windows().ebadf != 0, "EBADF");
  RC_CLASSIFY(s.windows().timeout != 0, "timed out");
  RC_CLASSIFY(s.windows().timer_unpark != 0, "timer unparked a parked waiter");
  RC_CLASSIFY(s.windows().late_grant != 0, "woken although its deadline had passed");
}

}  // namespace
}  // namespace fiber_sim::io

using namespace fiber_sim;
using namespace fiber_sim::io;
using namespace fiber_sim::planted;

// Cases per property: 2000 take about 0.4 s each; under TSan every fiber
// switch is annotated and 2000 took 20 s each on the 2-CPU VM, so fewer there.
constexpr int kCases = fiber::detail::kTsanBuild ? 300 : 2000;
FIBER_PROP(Io, ReadyFdWakesWithinOnePoll, kCases, ()) { readiness_holds(kPlainGen); }
FIBER_PROP(Io, CloseWakesWaitersWithEbadf, kCases, ()) { readiness_holds(kCloseGen); }
// Timed reads (SO_RCVTIMEO) beside close: the timeout path of wait() (I-RD4).
FIBER_PROP(Io, TimedReadsLeaveNoNodeBehind, kCases, ()) { readiness_holds(kTimedGen); }

TEST(IoControl, CatchesEnqueueWithoutRecheck) {
  expect_counterexample("IoControl/CatchesEnqueueWithoutRecheck", 3000,
                        [] { readiness_holds<no_recheck_readiness>(kPlainGen); });
}
TEST(IoControl, CatchesNotifyWakingOne) {
  expect_counterexample("IoControl/CatchesNotifyWakingOne", 3000, [] { readiness_holds<wake_one_readiness>(kPlainGen); });
}
TEST(IoControl, CatchesPollDroppingAnEvent) {
  expect_counterexample("IoControl/CatchesPollDroppingAnEvent", 3000, [] { readiness_holds(kPlainGen, kPollDropsLast); });
}
TEST(IoControl, CatchesCloseNotWaking) {
  expect_counterexample("IoControl/CatchesCloseNotWaking", 3000, [] { readiness_holds(kCloseGen, kCloseNoWake); });
}
TEST(IoControl, CatchesTrustedWakeup) {
  expect_counterexample("IoControl/CatchesTrustedWakeup", 3000, [] { readiness_holds(kPlainGen, kTrustWake); });
}
TEST(IoControl, CatchesPollNotifyingTheWrongFd) {
  expect_counterexample("IoControl/CatchesPollNotifyingTheWrongFd", 3000,
                        [] { readiness_holds(kPlainGen, kPollWrongFd); });
}
// The same bug with W4 alone (W1 catches it first above): a wake-up must
// come from a notify of the descriptor the fiber waits on.
TEST(IoControl, CauseCheckAloneCatchesPollNotifyingTheWrongFd) {
  expect_counterexample("IoControl/CauseCheckAloneCatchesPollNotifyingTheWrongFd", 3000,
                        [] { readiness_holds(kPlainGen, kPollWrongFd, kW4); });
}
// W5 alone (the drain's liveness): a fiber left asleep on a closed
// descriptor never finishes.
TEST(IoControl, FinishCheckAloneCatchesCloseNotWaking) {
  expect_counterexample("IoControl/FinishCheckAloneCatchesCloseNotWaking", 3000,
                        [] { readiness_holds(kCloseGen, kCloseNoWake, kW5); });
}
// I-RD4: a timed-out waiter that returns without taking its node off the
// queue (the node lives in its dead frame).
TEST(IoControl, TimedCatchesTimeoutWithoutDequeue) {
  expect_counterexample("IoControl/TimedCatchesTimeoutWithoutDequeue", 3000,
                        [] { readiness_holds<no_dequeue_readiness>(kTimedGen); });
}
