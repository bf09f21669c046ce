// core/src/backtrace.cpp - the backtrace of a fiber that is not running, for
// fiber_dump (dump.cpp); tools/gdb/fiber_gdb.py does the same in gdb.
//
// Frame 0 is exact: the return address fiber_ctx_switch saved at [sp+7*8]
// (arch/context.hpp), inside switch_out.  Above it, two ways:
//   * frame pointers, when libfiber is built with them (FIBER_FRAME_POINTERS=ON,
//     which also compiles the fiber:: targets' users with them): follow rbp
//     from [sp+6*8]; exact as long as every frame keeps the chain, and
//     through the preemption trampoline (interrupted rip at [rbp+88]).
//   * otherwise (the default), a stack scan, as crash reporters do when they
//     have no unwind tables at hand: every word between the saved sp and the
//     top of the fiber's stack that points just after a call instruction in
//     an executable segment is reported.  The real return addresses are all
//     there; a stale one left in a live frame's slot may show up too (the
//     dump says "scanned").  Chosen over DWARF unwinding (libunwind) because
//     it is async-signal-safe, bounded by the stack mapping, needs no new
//     dependency, and libunwind.so exports _Unwind_* symbols that can
//     interpose libgcc's C++ exception unwinder; and over frame pointers by
//     default because -fno-omit-frame-pointer cost 9-19% more instructions
//     per yield, create+join and ping-pong here (callgrind, papers/design.md section 12).
// Reads only inside the fiber's stack mapping and inside executable segments
// recorded beforehand (module_table_refresh, at init and at every dump that
// is not in a signal handler: dl_iterate_phdr is not async-signal-safe), so a
// fiber that starts running meanwhile gives a torn backtrace, never a fault.
#include <link.h>

#include <atomic>
#include <cstdint>

#include "arch/context.hpp"
#include "runtime.hpp"

namespace fiber::detail {

namespace {

constexpr int kMaxSegments = 256;
struct segment {
  std::uintptr_t lo, hi;
};
segment g_seg[2][kMaxSegments];        // double buffer: readers use g_cur
std::atomic<int> g_cur{-1};            // which buffer is published (-1: none)
std::atomic<int> g_nseg[2] = {{0}, {0}};
std::atomic<bool> g_refreshing{false};

int collect(struct dl_phdr_info* info, size_t, void* p) {
  auto* st = static_cast<std::pair<int, int>*>(p);  // (buffer, count)
  for (int i = 0; i < info->dlpi_phnum && st->second < kMaxSegments; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    g_seg[st->first][st->second++] = {lo, lo + ph.p_memsz};
  }
  return 0;
}

bool in_text(std::uintptr_t a, std::uintptr_t before) noexcept {
  int b = g_cur.load(std::memory_order_acquire);  // acquire: pairs with the refresh's release
  if (b < 0) return false;
  int n = g_nseg[b].load(std::memory_order_relaxed);  // relaxed: published with g_cur
  for (int i = 0; i < n; ++i)
    if (a >= g_seg[b][i].lo + before && a < g_seg[b][i].hi) return true;
  return false;
}

// Is pc right after a call instruction (rel32, or indirect through a
// register or memory, with or without a REX prefix)?
bool after_call(std::uintptr_t pc) noexcept {
  if (!in_text(pc, 7)) return false;
  auto* p = reinterpret_cast<const unsigned char*>(pc);
  if (p[-5] == 0xE8) return true;                                    // call rel32
  if (p[-2] == 0xFF && (p[-1] & 0x38) == 0x10 && (p[-1] >> 6) == 3) return true;  // call *%reg
  if (p[-3] == 0xFF && (p[-2] & 0x38) == 0x10 && (p[-2] >> 6) == 1) return true;  // call *d8(%reg)
  if (p[-6] == 0xFF && (p[-5] & 0x38) == 0x10 && ((p[-5] >> 6) == 2 || (p[-5] & 0xC7) == 0x05))
    return true;                                                     // call *d32(%reg) / *d32(%rip)
  if (p[-7] == 0xFF && (p[-6] & 0x38) == 0x10 && (p[-6] & 7) == 4) return true;  // with a SIB byte
  if (p[-3] == 0xFF && (p[-2] & 0x38) == 0x10 && (p[-2] & 0xC7) == 0x04) return true;  // *(%reg,%reg)
  return false;
}

// One word of a parked fiber's stack.  Not instrumented by ASan: the scan
// reads whole frames, redzones of the fiber's stack variables included, which
// ASan would report as a stack-buffer-underflow of a program that did nothing wrong.
__attribute__((no_sanitize_address)) std::uintptr_t stack_word(std::uintptr_t a) noexcept {
  return __atomic_load_n(reinterpret_cast<const std::uintptr_t*>(a), __ATOMIC_RELAXED);  // racy
}

}  // namespace

void module_table_refresh() noexcept {
  if (g_refreshing.exchange(true, std::memory_order_acquire)) return;  // acquire: one refresher
  int next = g_cur.load(std::memory_order_relaxed) == 0 ? 1 : 0;    // relaxed: refresher only
  std::pair<int, int> st{next, 0};
  dl_iterate_phdr(collect, &st);
  g_nseg[next].store(st.second, std::memory_order_relaxed);  // relaxed: published by g_cur
  g_cur.store(next, std::memory_order_release);  // release: pairs with in_text()'s acquire
  g_refreshing.store(false, std::memory_order_release);  // release: pairs with the exchange
}

int fiber_backtrace(const fcb& f, std::uintptr_t* pcs, int max, bool* scanned) noexcept {
  auto lo = reinterpret_cast<std::uintptr_t>(f.stack_lo());
  auto hi = reinterpret_cast<std::uintptr_t>(f.stack_hi());
  auto sp = reinterpret_cast<std::uintptr_t>(__atomic_load_n(&f.sp, __ATOMIC_RELAXED));  // racy
  auto ok = [&](std::uintptr_t a, std::size_t n) { return a >= lo && a + n <= hi && (a & 7) == 0; };
  auto rd = stack_word;
  if (max <= 0 || !ok(sp, 8 * 8)) return 0;
  int n = 0;
  pcs[n++] = rd(sp + 7 * 8);
#if FIBER_FRAME_POINTERS
  *scanned = false;
  std::uintptr_t fp = rd(sp + 6 * 8);
  std::uintptr_t pc = pcs[0];
  while (n < max) {
    if (pc >= reinterpret_cast<std::uintptr_t>(fiber_asm_begin) &&
        pc < reinterpret_cast<std::uintptr_t>(fiber_asm_end)) {  // the preemption trampoline
      if (!ok(fp, 96)) break;
      pc = rd(fp + 88);
      fp = rd(fp);
    } else {
      if (!ok(fp, 16)) break;
      std::uintptr_t next = rd(fp);
      pc = rd(fp + 8);
      if (next <= fp) break;  // the chain must go up the stack
      fp = next;
    }
    if (!pc) break;
    pcs[n++] = pc;
  }
#else
  *scanned = true;
  for (std::uintptr_t a = sp + 8 * 8; a + 8 <= hi && n < max; a += 8) {
    std::uintptr_t w = rd(a);
    if (after_call(w)) pcs[n++] = w;
  }
#endif
  return n;
}

}  // namespace fiber::detail
