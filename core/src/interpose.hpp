// core/src/interpose.hpp - when libfiber's blocking-call interposers act
// (interpose_io.cpp, interpose_sleep.cpp).  Not installed.
#pragma once

#include <time.h>

namespace fiber::detail {

// True when the caller is a fiber (not an OS thread, not a KLT's scheduler),
// the process is not a child forked from a fiber (its runtime's threads are
// gone: the child gets plain blocking calls) and the test knob
// FIBER_KNOB_NO_IO_INTERPOSE is off.
bool io_interposing() noexcept;
// The same without the knob: the explicit API (fiber_read, fiber_offload...).
bool io_explicit_ok() noexcept;

// The fiber half of clock_nanosleep (interpose_sleep.cpp): an error number.
int fiber_clock_sleep(clockid_t clk, int flags, const struct timespec* req) noexcept;

}  // namespace fiber::detail
