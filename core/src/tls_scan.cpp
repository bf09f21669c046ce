// tls_scan.cpp - may a preempted fiber resume on another KLT?  (I-R3,
// fiber_config_t::migrate_preempted = FIBER_MIGRATE_SCAN, the default.)
//
// Compiled code may keep the address of a thread-local object (errno's, from
// the const __errno_location; a thread_local's; the thread pointer itself) in
// a register or a stack slot across any instruction.  A fiber preempted there
// and resumed on another KLT would go on using the first KLT's object.  The
// preemption trampoline (arch/context_x86_64.S) has just saved every register
// the interrupted code had, the vector state included, on the fiber's own
// stack; so every address the fiber holds is a word between the save area and
// the top of its stack.  The fiber may move only if none of those words
// points into its KLT's thread-local storage: a conservative scan, as a
// garbage collector's (a word that merely looks like such an address keeps
// the fiber where it is, which is the safe side).
//
// The range a KLT checks: glibc puts the static TLS blocks of every module
// loaded at start-up and the thread control block (struct pthread, the
// thread pointer's target) at the top of a stack the caller supplies
// (start_klt maps it), so [the lowest static block, the end of the mapping)
// covers them, and nothing the KLT's scheduler uses lies there (its frames
// are below).  Measured from the KLT itself with dl_iterate_phdr, once, when
// it starts.
//
// Not covered (papers/design.md, "Which preempted fibers may move"): TLS of
// modules loaded later with dlopen (dynamic TLS lives on the heap, static
// TLS they take lies below the range), and addresses the program keeps
// outside the fiber's stack (in the heap or a global), which a voluntary
// switch already lets move today.  FIBER_MIGRATE=0 keeps every preempted
// fiber on its KLT.
#include <link.h>
#include <pthread.h>

#include <cstdint>

#include "runtime.hpp"

namespace fiber::detail {
namespace {

struct range_ctx {
  std::uintptr_t map_lo, map_hi;
  std::uintptr_t lowest;
};

int lowest_static_block(dl_phdr_info* info, std::size_t, void* p) {
  auto* c = static_cast<range_ctx*>(p);
  auto a = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);
  if (a >= c->map_lo && a < c->map_hi && a < c->lowest) c->lowest = a;
  return 0;
}

}  // namespace

void tls_range_init(klt& k) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(k.stack_map);
  const auto hi = lo + k.stack_map_size;
  // The thread control block is there even if no module had TLS.
  range_ctx c{lo, hi, reinterpret_cast<std::uintptr_t>(pthread_self())};
  dl_iterate_phdr(lowest_static_block, &c);
  k.tls_lo = c.lowest < hi ? c.lowest : hi;
  k.tls_hi = hi;
}

// Reads the fiber's stack word by word, redzones and all: not instrumented.
__attribute__((no_sanitize_address)) bool stack_holds_tls(const klt& k, const void* from, const void* to) noexcept {
  const std::uintptr_t lo = k.tls_lo, hi = k.tls_hi;
  auto p = reinterpret_cast<const std::uintptr_t*>(reinterpret_cast<std::uintptr_t>(from) & ~std::uintptr_t{7});
  const auto* end = static_cast<const std::uintptr_t*>(to);
  for (; p < end; ++p)
    if (*p - lo < hi - lo) return true;  // one compare: lo <= *p < hi
  return false;
}

}  // namespace fiber::detail
