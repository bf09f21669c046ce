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
rc::Gen<io_step> gen_io_step(bool with_close, unsigned nf) {
  std::vector<io_op> ops{io_op::run, io_op::data, io_op::run, io_op::poll, io_op::run, io_op::data, io_op::poll};
  if (with_close) ops.push_back(io_op::close);
  return rc::gen::map(rc::gen::tuple(one_of(ops), small(0, kIoFibers)), [nf](const std::tuple<io_op, unsigned>& t) {
    const io_op o = std::get<0>(t);
    const unsigned arg = o == io_op::poll ? 0 : std::get<1>(t) % (o == io_op::run ? nf : kFds);
    return io_step{o, static_cast<std::uint8_t>(arg)};
  });
}

rc::Gen<io_scenario> gen_io(bool with_close) {
  return rc::gen::exec([with_close] {
    io_scenario sc;
    const unsigned nf = *small(1, kIoFibers + 1);
    for (unsigned i = 0; i < nf; ++i)
      sc.reads.push_back(*rc::gen::resize(3, rc::gen::container<std::vector<std::uint8_t>>(below(kFds))));
    sc.steps = *rc::gen::resize(50, rc::gen::container<std::vector<io_step>>(gen_io_step(with_close, nf)));
    return sc;
  });
}

template <class R = readiness_t>
void readiness_holds(bool with_close, unsigned bugs = 0, unsigned checks = kAllW) {
  const io_scenario sc = *gen_io(with_close);
  io_sim<R> s(sc, bugs, checks);
  s.run_all();
  // Which race windows this case went through (RapidCheck prints the shares).
  RC_CLASSIFY(s.windows().refused != 0, "edge between snapshot and enqueue");
  RC_CLASSIFY(s.windows().token != 0, "unpark between enqueue and commit");
  RC_CLASSIFY(s.windows().spurious != 0, "spurious wake-up re-tried");
  RC_CLASSIFY(s.windows().ebadf != 0, "EBADF");
}

}  // namespace
}  // namespace fiber_sim::io

using namespace fiber_sim;
using namespace fiber_sim::io;
using namespace fiber_sim::planted;

// Cases per property: 2000 take about 0.4 s each; under TSan every fiber
// switch is annotated and 2000 took 20 s each on the 2-CPU VM, so fewer there.
constexpr int kCases = fiber::detail::kTsanBuild ? 300 : 2000;
FIBER_PROP(Io, ReadyFdWakesWithinOnePoll, kCases, ()) { readiness_holds(false); }
FIBER_PROP(Io, CloseWakesWaitersWithEbadf, kCases, ()) { readiness_holds(true); }

TEST(IoControl, CatchesEnqueueWithoutRecheck) {
  expect_counterexample("IoControl/CatchesEnqueueWithoutRecheck", 3000,
                        [] { readiness_holds<no_recheck_readiness>(false); });
}
TEST(IoControl, CatchesNotifyWakingOne) {
  expect_counterexample("IoControl/CatchesNotifyWakingOne", 3000, [] { readiness_holds<wake_one_readiness>(false); });
}
TEST(IoControl, CatchesPollDroppingAnEvent) {
  expect_counterexample("IoControl/CatchesPollDroppingAnEvent", 3000, [] { readiness_holds(false, kPollDropsLast); });
}
TEST(IoControl, CatchesCloseNotWaking) {
  expect_counterexample("IoControl/CatchesCloseNotWaking", 3000, [] { readiness_holds(true, kCloseNoWake); });
}
TEST(IoControl, CatchesTrustedWakeup) {
  expect_counterexample("IoControl/CatchesTrustedWakeup", 3000, [] { readiness_holds(false, kTrustWake); });
}
TEST(IoControl, CatchesPollNotifyingTheWrongFd) {
  expect_counterexample("IoControl/CatchesPollNotifyingTheWrongFd", 3000,
                        [] { readiness_holds(false, kPollWrongFd); });
}
// The same bug with W4 alone (W1 catches it first above): a wake-up must
// come from a notify of the descriptor the fiber waits on.
TEST(IoControl, CauseCheckAloneCatchesPollNotifyingTheWrongFd) {
  expect_counterexample("IoControl/CauseCheckAloneCatchesPollNotifyingTheWrongFd", 3000,
                        [] { readiness_holds(false, kPollWrongFd, kW4); });
}
// W5 alone (the drain's liveness): a fiber left asleep on a closed
// descriptor never finishes.
TEST(IoControl, FinishCheckAloneCatchesCloseNotWaking) {
  expect_counterexample("IoControl/FinishCheckAloneCatchesCloseNotWaking", 3000,
                        [] { readiness_holds(true, kCloseNoWake, kW5); });
}
