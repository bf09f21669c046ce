// core/src/real_symbol.hpp - the one way libfiber finds the libc functions
// its interposers stand in front of (signals.cpp, interpose_locks.cpp,
// io_real.hpp, interpose_futex.cpp).  Not installed.
//
// What it does.  find_next_symbol(name) is dlsym(RTLD_NEXT, name): the next
// definition after libfiber in symbol lookup order - libc, or a sanitizer's
// interceptor that itself goes on to libc, so a fiber's call still passes
// through ASan/TSan.  next_symbol(cache, name) caches the answer in an atomic
// (relaxed: idempotent, every thread finds the same pointer).
//
// The guard.  dlsym can call back into an interposed function (it takes
// libc's locks; a sanitizer's allocator may make a futex call).  While this
// thread runs a lookup, in_symbol_lookup() is true: an interposer then must
// not start another lookup, and uses its static fallback instead.  An
// interposer whose real function is not known yet (cache empty, during a
// lookup or in a fully static program where dlsym finds nothing) uses the
// fallback too:
//   signals.cpp        glibc's __sigaction, the raw rt_sigprocmask call;
//   interpose_locks    glibc's __pthread_mutex_* entry points;
//   io_real.hpp users  the raw system call (syscall(), i.e. real_syscall);
//   interpose_futex    real_syscall's own inline `syscall` instruction.
//
// Lifecycle: each user resolves its functions at load time (a constructor)
// so that a first call from a signal handler does not run dlsym, and again
// lazily if the constructor ran before libc could answer.
#pragma once

#include <dlfcn.h>

#include <atomic>

namespace fiber::detail {

// True while this thread runs find_next_symbol (real_symbol.cpp defines it;
// __thread + initial-exec: no TLS wrapper call, no __tls_get_addr in the
// shared library - it is read on every interposed call).
extern __thread bool tls_in_symbol_lookup __attribute__((tls_model("initial-exec")));

inline bool in_symbol_lookup() noexcept { return tls_in_symbol_lookup; }

// Sets the guard for a batch of lookups (interpose_locks.cpp resolves 24).
class symbol_lookup_scope {
 public:
  symbol_lookup_scope() noexcept : outer_(tls_in_symbol_lookup) { tls_in_symbol_lookup = true; }
  ~symbol_lookup_scope() { tls_in_symbol_lookup = outer_; }
  symbol_lookup_scope(const symbol_lookup_scope&) = delete;
  symbol_lookup_scope& operator=(const symbol_lookup_scope&) = delete;

 private:
  bool outer_;
};

// dlsym(RTLD_NEXT, name) under the guard; nullptr in a fully static program.
// Inline, so RTLD_NEXT is relative to libfiber (or to the static program that
// contains it), whoever includes this header.
inline void* find_next_symbol(const char* name) noexcept {
  symbol_lookup_scope guard;
  return dlsym(RTLD_NEXT, name);
}

// The cached lookup.  C is the cache's type: the function pointer type F
// (the default), or void*.  Returns nullptr (use the fallback) when the
// symbol is not found or this thread is already inside a lookup.
template <class C>
__attribute__((noinline)) C next_symbol_slow(std::atomic<C>& cache, const char* name) noexcept {
  if (tls_in_symbol_lookup) return nullptr;
  C p = reinterpret_cast<C>(find_next_symbol(name));
  if (p) cache.store(p, std::memory_order_relaxed);  // relaxed: idempotent, see above
  return p;
}

template <class C, class F = C>
F next_symbol(std::atomic<C>& cache, const char* name) noexcept {
  C p = cache.load(std::memory_order_relaxed);  // relaxed: idempotent, see above
  if (__builtin_expect(!p, 0)) p = next_symbol_slow(cache, name);
  return reinterpret_cast<F>(p);
}

// libc's syscall(): the real one behind libfiber's interposer
// (interpose_futex.cpp), or a raw `syscall` instruction when there is none.
// Same contract as syscall(2): -1 and errno on failure.  The runtime's own
// futex waits and wakes (native_seam.cpp) call it directly: they must never
// be taken for a fiber's futex wait.
long real_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept;

// Resolves libc's syscall() (fiber_init; it also links interpose_futex.cpp
// into a static program, so its syscall() is the executable's own).
void interpose_futex_init() noexcept;

}  // namespace fiber::detail
