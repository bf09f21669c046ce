// core/src/mapped_array.hpp - a growable array of trivially copyable T in its
// own anonymous mapping, for the runtime's pools that grow on a KLT's switch
// path (the stack pools, stacks.cpp I-ST4; the slot pool's chains, slots.cpp
// I-SC2).  Not malloc: glibc gives a thread that first calls malloc an arena
// of its own, 64 MiB of address space that outlives the runtime (a test of
// fiber_shutdown's unmapping saw it), and a KLT's exit path should not take
// malloc's locks.  The caller provides the locking; reset() unmaps it all.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace fiber::detail {

template <class T>
struct mapped_array {
  static_assert(std::is_trivially_copyable_v<T>, "moved with memcpy");
  T* v = nullptr;
  std::size_t cap = 0;  // elements the mapping holds

  // Room for `need` elements, `used` of them in use (copied on growth).
  // False: the mapping could not grow; the array is unchanged.
  bool reserve(std::size_t need, std::size_t used) noexcept {
    if (need <= cap) return true;
    std::size_t bytes = cap ? 2 * cap * sizeof(T) : 64 * 1024;
    while (bytes / sizeof(T) < need) bytes *= 2;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    if (used) std::memcpy(p, v, used * sizeof(T));
    reset();
    v = static_cast<T*>(p);
    cap = bytes / sizeof(T);
    return true;
  }

  void reset() noexcept {
    if (v) munmap(v, cap * sizeof(T));
    v = nullptr;
    cap = 0;
  }
};

}  // namespace fiber::detail
