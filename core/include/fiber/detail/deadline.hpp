// fiber/detail/deadline.hpp - std::chrono time points and durations to the
// seam's deadlines (absolute CLOCK_MONOTONIC nanoseconds, kNoDeadline = none).
//
// Used by the public C++ headers only (not model-checked).  Conversions round
// *up* to whole nanoseconds so that a wait never ends early, and saturate: a
// time point too far away becomes kNoDeadline, one in the past becomes 0.
// std::chrono::steady_clock is CLOCK_MONOTONIC in libstdc++ and libc++ on
// Linux, so its time points convert exactly; other clocks are converted
// through "now" and the caller re-checks the clock when the wait times out.
#pragma once

#include <chrono>
#include <cstdint>
#include <type_traits>

#include "fiber/detail/seam.hpp"

namespace fiber::detail {

// ns (may be fractional or negative) -> a deadline offset, rounded up, saturated.
inline std::uint64_t ceil_ns_saturated(long double ns) noexcept {
  if (!(ns > 0.0L)) return 0;  // also NaN
  if (ns >= 1.8e19L) return kNoDeadline;
  const auto whole = static_cast<std::uint64_t>(ns);
  return (static_cast<long double>(whole) < ns) ? whole + 1 : whole;
}

inline std::uint64_t add_saturated(std::uint64_t a, std::uint64_t b) noexcept {
  return (b >= kNoDeadline - a) ? kNoDeadline : a + b;
}

template <class Rep, class Period>
std::uint64_t deadline_after(const std::chrono::duration<Rep, Period>& d) noexcept {
  using ld_ns = std::chrono::duration<long double, std::nano>;
  const std::uint64_t rel = ceil_ns_saturated(std::chrono::duration_cast<ld_ns>(d).count());
  if (rel == kNoDeadline) return kNoDeadline;
  return add_saturated(seam::now_ns(), rel);
}

template <class Clock, class Duration>
std::uint64_t deadline_at(const std::chrono::time_point<Clock, Duration>& tp) noexcept {
  using ld_ns = std::chrono::duration<long double, std::nano>;
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return ceil_ns_saturated(std::chrono::duration_cast<ld_ns>(tp.time_since_epoch()).count());
  } else {
    const ld_ns rel = std::chrono::duration_cast<ld_ns>(tp.time_since_epoch()) -
                      std::chrono::duration_cast<ld_ns>(Clock::now().time_since_epoch());
    return deadline_after(rel);
  }
}

}  // namespace fiber::detail
