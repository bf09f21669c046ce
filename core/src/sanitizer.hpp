// core/src/sanitizer.hpp - fiber-switch annotations for ASan and TSan.
// Without them a throw on a fiber gives false ASan reports and TSan loses
// track of happens-before across switches (platform-facts).  Empty otherwise.
#pragma once

#include <cstddef>

#if defined(FIBER_ASAN) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define FIBER_HAVE_ASAN 1
#endif
#if defined(FIBER_TSAN) || defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define FIBER_HAVE_TSAN 1
#endif

namespace fiber::detail {

// fake_save: where ASan keeps the leaving context's fake stack (nullptr when
// the leaving context dies: ASan frees it).  bottom/size: the stack we enter.
inline void san_start_switch(void** fake_save, const void* bottom, std::size_t size,
                             void* tsan_to) noexcept {
#ifdef FIBER_HAVE_ASAN
  __sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
  (void)fake_save; (void)bottom; (void)size;
#endif
#ifdef FIBER_HAVE_TSAN
  __tsan_switch_to_fiber(tsan_to, 0);
#else
  (void)tsan_to;
#endif
}

inline void san_finish_switch(void* fake_save) noexcept {
#ifdef FIBER_HAVE_ASAN
  __sanitizer_finish_switch_fiber(fake_save, nullptr, nullptr);
#else
  (void)fake_save;
#endif
}

// A stack handed to a new fiber (a reused slot's, or a fresh arena stack a
// previous runtime's fiber used) may carry ASan poison from frames that never
// returned (switch_out of an exiting fiber); clear it, or the new fiber's
// writes below those frames are reported as stack-buffer-underflow.
inline void san_fresh_stack(const void* lo, std::size_t size) noexcept {
#ifdef FIBER_HAVE_ASAN
  __asan_unpoison_memory_region(lo, size);
#else
  (void)lo;
  (void)size;
#endif
}

inline void* san_current_fiber() noexcept {
#ifdef FIBER_HAVE_TSAN
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}
inline void* san_create_fiber() noexcept {
#ifdef FIBER_HAVE_TSAN
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}
inline void san_destroy_fiber(void* f) noexcept {
#ifdef FIBER_HAVE_TSAN
  if (f) __tsan_destroy_fiber(f);
#else
  (void)f;
#endif
}

constexpr bool kTsanBuild =
#ifdef FIBER_HAVE_TSAN
    true;
#else
    false;
#endif

}  // namespace fiber::detail
