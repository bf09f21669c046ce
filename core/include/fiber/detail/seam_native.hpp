// fiber/detail/seam_native.hpp - the native backend of the seam (see seam.hpp).
//
// Stand-ins cost nothing: atomic<T> is std::atomic<T> with the order passed
// through, var<T> is a plain T, src_loc is empty.  The park/wake platform and
// the preemption counter live in the runtime (core/src/lifecycle.cpp,
// core/src/native_seam.cpp) because they need the scheduler.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "fiber/detail/assert.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace fiber::detail {

enum class mo : unsigned char;
enum class wait_kind : unsigned char;
enum class lock_ev : unsigned char;
enum class mutex_defect : unsigned char;
template <class Seam> class basic_parker;

// Empty source location: the Relacy seam fills it, the native one ignores it.
struct src_loc {
  static constexpr src_loc current(const char* = __builtin_FILE(), int = __builtin_LINE(),
                                   const char* = __builtin_FUNCTION()) noexcept {
    return {};
  }
};

constexpr std::memory_order to_std(mo m) noexcept {
  switch (m) {
    case mo::relaxed: return std::memory_order_relaxed;
    case mo::acquire: return std::memory_order_acquire;
    case mo::release: return std::memory_order_release;
    case mo::acq_rel: return std::memory_order_acq_rel;
    default: return std::memory_order_seq_cst;
  }
}

// A failure order may not be release/acq_rel: derive it as the standard does.
constexpr std::memory_order to_std_fail(mo m) noexcept {
  switch (m) {
    case mo::release: return std::memory_order_relaxed;
    case mo::acq_rel: return std::memory_order_acquire;
    default: return to_std(m);
  }
}

template <class T>
class native_atomic {
 public:
  constexpr native_atomic() noexcept : v_(T{}) {}
  constexpr explicit native_atomic(T v) noexcept : v_(v) {}
  native_atomic(const native_atomic&) = delete;
  native_atomic& operator=(const native_atomic&) = delete;

  T load(mo m, src_loc = src_loc::current()) const noexcept { return v_.load(to_std(m)); }
  void store(T v, mo m, src_loc = src_loc::current()) noexcept { v_.store(v, to_std(m)); }
  T exchange(T v, mo m, src_loc = src_loc::current()) noexcept { return v_.exchange(v, to_std(m)); }
  bool compare_exchange_strong(T& e, T d, mo ok, mo fail, src_loc = src_loc::current()) noexcept {
    return v_.compare_exchange_strong(e, d, to_std(ok), to_std_fail(fail));
  }
  bool compare_exchange_weak(T& e, T d, mo ok, mo fail, src_loc = src_loc::current()) noexcept {
    return v_.compare_exchange_weak(e, d, to_std(ok), to_std_fail(fail));
  }
  T fetch_add(T v, mo m, src_loc = src_loc::current()) noexcept { return v_.fetch_add(v, to_std(m)); }
  T fetch_sub(T v, mo m, src_loc = src_loc::current()) noexcept { return v_.fetch_sub(v, to_std(m)); }
  T fetch_or(T v, mo m, src_loc = src_loc::current()) noexcept { return v_.fetch_or(v, to_std(m)); }
  T fetch_and(T v, mo m, src_loc = src_loc::current()) noexcept { return v_.fetch_and(v, to_std(m)); }

  // Native-only: the address a futex waits on (the platform half of park).
  std::atomic<T>& raw() noexcept { return v_; }

 private:
  std::atomic<T> v_;
};

template <class T>
class native_var {
 public:
  constexpr native_var() noexcept : v_{} {}
  constexpr explicit native_var(T v) noexcept : v_(v) {}
  T load(src_loc = src_loc::current()) const noexcept { return v_; }
  void store(T v, src_loc = src_loc::current()) noexcept { v_ = v; }

 private:
  T v_;
};

struct native_seam {
  template <class T> using atomic = native_atomic<T>;
  template <class T> using var = native_var<T>;
  using parker_type = basic_parker<native_seam>;

  static void fence(mo m, src_loc = src_loc::current()) noexcept {
    std::atomic_thread_fence(to_std(m));
  }
  // A seq_cst fence right after a locked RMW instruction (Linux's
  // smp_mb__after_atomic): on x86-64 the RMW is already a full barrier, so
  // only the compiler must not move accesses across (parking_lot.hpp).
  static void fence_after_rmw(src_loc = src_loc::current()) noexcept {
    static_assert(sizeof(void*) == 8 && __x86_64__, "fence_after_rmw relies on x86-64 locked RMWs");
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  // Orders against the tick handler of this same thread (preempt_gate.hpp).
  static void signal_fence() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

  // Retry-loop hint.  Bounded spinning: a holder of a runtime spinlock never
  // blocks while holding it and has preemption disabled, but it may be an OS
  // thread the kernel descheduled, so after a while we give the CPU away.
  static void spin_hint(unsigned iter, src_loc = src_loc::current()) noexcept {
    if (iter < 64) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#elif defined(__aarch64__)
      asm volatile("yield" ::: "memory");
#endif
    } else {
      os_yield();
    }
  }

  static void os_yield() noexcept;              // sched_yield()
  static void preempt_disable() noexcept;       // running fiber's counter++ (I5)
  static void preempt_enable() noexcept;        // counter--; takes a pending preemption at 0
  static parker_type& current_parker() noexcept;
  static std::uint64_t self_id() noexcept;
  static std::uint64_t now_ns() noexcept;
  // Diagnostics (core/src/diag.cpp): records what the parker's owner waits on.
  static void note_wait(parker_type& p, wait_kind k, const void* obj) noexcept;

  // Park platform (parker.hpp): block until woken, timed out (deadline) or
  // spuriously; on return the parker is back to kEmpty.  wake: the parker was
  // kParked and its owner must be made runnable.
  static void block(parker_type& p, std::uint64_t deadline) noexcept;
  static void wake(parker_type& p) noexcept;

  // OS-level wait on a word (futex).  Only KLTs and OS threads call these,
  // never a fiber (it would block its KLT).  Returns when *w != expected, on
  // a wake, on timeout or spuriously.  os_wake returns how many it woke.
  static void os_wait(atomic<std::uint32_t>& w, std::uint32_t expected,
                      std::uint64_t deadline) noexcept;
  static std::uint32_t os_wake(atomic<std::uint32_t>& w, std::uint32_t count) noexcept;

  // --- mutex tuning (mutex.hpp, I-M3; papers/design.md "mutex: spinning,
  // barging and the starvation bound") --------------------------------------
  // Barges allowed past waiters between two acquisitions by waiters.
  static constexpr unsigned kMutexBargeLimit = 64;
  // Spin rounds (one pause each, one spin_useful check) before parking.
  static constexpr unsigned kMutexSpinLimit = 48;
  // Whether spinning on a mutex owned by `owner` (a self_id, 0: unknown) can
  // help: the runtime has two or more KLTs and the owner is a fiber running
  // on one of them (not ours), or an OS thread.  False on one KLT and for an
  // owner that is parked, queued or preempted.  Racy by nature: a hint.
  static bool spin_useful(std::uint64_t owner) noexcept;

  // --- the trace's lock events and the planted mutex defects (seam.hpp;
  // core/src/trace_lock.cpp) ------------------------------------------------
  // Exported (not hidden like the scheduler's flag): the inline mutex paths
  // of fiber::mutex are compiled into the program.  Set by trace_open before
  // the KLTs start, cleared by trace_close after they were joined.
  static std::atomic<bool> lock_trace;
  static std::atomic<unsigned> mutex_defects;  // mutex_defect bits (test knobs 23-25)
  static void trace_lock(const void* m, lock_ev ev, unsigned aux = 0, const void* node = nullptr,
                         unsigned barge_limit = 0) noexcept {
    // relaxed: written before the KLTs start and published with the runtime
    // (trace_open), as the scheduler's g_trace_on (core/src/trace.hpp).
    if (__builtin_expect(lock_trace.load(std::memory_order_relaxed), 0))
      trace_lock_slow(m, ev, aux, node, barge_limit);
  }
  static void trace_lock_slow(const void* m, lock_ev ev, unsigned aux, const void* node,
                              unsigned barge_limit) noexcept;
  // The knob test inline; whether this call plants it (only while tracing,
  // double_owner one contended lock in four) out of line.
  static bool mutex_defect_on(mutex_defect d) noexcept {
    // relaxed: a test knob, set before the run it plants the defect in.
    return __builtin_expect((mutex_defects.load(std::memory_order_relaxed) & static_cast<unsigned>(d)) != 0, 0) &&
           mutex_defect_fires(d);
  }
  static bool mutex_defect_fires(mutex_defect d) noexcept;
};

}  // namespace fiber::detail
