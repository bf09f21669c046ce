// core/tests/diag_state_word_test.cpp - the fiber state word (core/src/diag.hpp)
// before any runtime has run.  The clock table a transition adds was zero
// until the first diagnostics ticker set it, so a fiber created by an OS
// thread between fiber_init's publication of the runtime and the ticker's
// start stayed "free" while queued (stress_lifecycle under ASan, 5-10% of
// runs).  That window cannot be hit on purpose through the API, so this test
// moves a state word directly, in a fresh process (a re-executed death test)
// where no runtime ever ran.  Includes an internal header: the only unit test
// that does (CMakeLists.txt gives this file core/src).
#include <gtest/gtest.h>

#include <cstdlib>

#include "diag.hpp"

namespace {

using fiber::detail::fiber_diag;
using fiber::detail::fstate;

// Exits with the state after free -> runnable -> running -> parked.
[[noreturn]] void three_moves() {
  fiber_diag d;
  d.move(fstate::free, fstate::runnable);
  d.move(fstate::runnable, fstate::running);
  d.move(fstate::running, fstate::parked);
  std::_Exit(static_cast<int>(d.state()));
}

TEST(DiagStateWord, MovesBeforeAnyRuntimeChangeTheState) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: no ticker ever ran
  EXPECT_EXIT(three_moves(), testing::ExitedWithCode(static_cast<int>(fstate::parked)), "");
}

}  // namespace
