// fiber/detail/assert.hpp - the one internal-invariant macro (Go's throw, marl's debug.h).
//
// FIBER_ASSERT(cond, msg): when FIBER_ENABLE_ASSERTS is nonzero (debug builds,
// sanitizer builds, models) a false condition prints "fiber: assertion failed:
// <msg> (<cond>) at file:line in function" with write(2) - async-signal-safe,
// no allocation - and aborts.  In release builds the condition is not evaluated.
// The Relacy seam redefines it as RL_ASSERT so the model checker reports it.
#pragma once

#ifndef FIBER_ENABLE_ASSERTS
#ifdef NDEBUG
#define FIBER_ENABLE_ASSERTS 0
#else
#define FIBER_ENABLE_ASSERTS 1
#endif
#endif

namespace fiber::detail {
[[noreturn]] void assert_fail(const char* cond, const char* msg, const char* file, int line,
                              const char* func) noexcept;
// Prints one line "fiber: fatal: <msg>" (async-signal-safe) and aborts.
[[noreturn]] void fatal(const char* msg) noexcept;
}  // namespace fiber::detail

#if !defined(FIBER_SEAM_RELACY) || !FIBER_SEAM_RELACY
#if FIBER_ENABLE_ASSERTS
#define FIBER_ASSERT(cond, msg)                                                             \
  ((cond) ? (void)0                                                                         \
          : ::fiber::detail::assert_fail(#cond, (msg), __FILE__, __LINE__, __func__))
#else
#define FIBER_ASSERT(cond, msg) ((void)0)
#endif
#endif
