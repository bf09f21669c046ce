// core/src/arch/context.hpp - the machine-dependent half of a context switch.
//
// Everything architecture-specific is one assembly file per architecture
// (arch/context_<arch>.S) behind these three symbols; adding aarch64 means
// writing arch/context_aarch64.S with the same contract.
//
//   fiber_ctx_switch(save, load): saves the callee-saved registers, the stack
//       pointer and the floating-point control words (x86-64: MXCSR and the
//       x87 control word) on the current stack, stores the stack pointer in
//       *save, and resumes the context whose stack pointer is `load`.  No
//       system call: the signal mask is not part of the context (ucontext's
//       swapcontext makes a sigprocmask call per switch); install() in
//       sched.cpp switches it only when two fibers' masks differ (I8).
//   fiber_ctx_make(top, entry, arg): lays out a frame at the 16-byte aligned
//       `top` so that switching to the returned stack pointer calls
//       entry(arg) on that stack.  entry must never return.
//   fiber_preempt_trampoline: entered, as if called, by a fiber whose
//       interrupted context the tick handler rewrote (preempt.cpp).  Saves
//       every register the interrupted code may have live (general purpose,
//       flags, the full xsave state), calls fiber_preempt_entry(saved) with
//       `saved` the lowest address of that save area (everything the
//       interrupted code holds lies between it and the top of its stack:
//       tls_scan.cpp), restores them and returns to the interrupted
//       instruction.
#pragma once

#include <cstddef>

extern "C" {
void fiber_ctx_switch(void** save_sp, void* load_sp);
void fiber_preempt_trampoline(void);
// Filled by preempt.cpp at init: bytes needed by xsave for the enabled state
// components (0 = no XSAVE: the trampoline uses fxsave).
extern unsigned fiber_xsave_size __attribute__((visibility("hidden")));
void fiber_preempt_entry(const void* saved) __attribute__((visibility("hidden")));
void fiber_ctx_start(void) __attribute__((visibility("hidden")));
// fiber_finish(f, fn(arg)), fn entered with the stack below and every register
// but its argument cleared (tls_scan.cpp); never returns.
[[noreturn]] void fiber_run_clean(void* (*fn)(void*), void* arg, void* f) __attribute__((visibility("hidden")));
// A fiber's start function returned ret (sched.cpp): its exit.
[[noreturn]] void fiber_finish(void* f, void* ret) __attribute__((visibility("hidden")));
// Bounds of the assembly above; a tick landing between them is never taken.
extern const char fiber_asm_begin[] __attribute__((visibility("hidden")));
extern const char fiber_asm_end[] __attribute__((visibility("hidden")));
}

namespace fiber::detail {

using ctx_entry = void (*)(void*);

inline void* ctx_make(void* top, ctx_entry entry, void* arg) noexcept {
#if defined(__x86_64__)
  // Frame read by fiber_ctx_switch's epilogue, lowest address first:
  //   [0] MXCSR (low 4 bytes) | x87 control word (next 2 bytes)
  //   [1] r15 [2] r14 [3] r13 = entry [4] r12 = arg [5] rbx [6] rbp = 0
  //   [7] return address = fiber_ctx_start, at top - 8, so that rsp is
  //       16-byte aligned at fiber_ctx_start, which then calls entry(arg).
  auto* sp = static_cast<unsigned long*>(top) - 8;
  sp[0] = 0x1F80ul | (0x037Ful << 32);  // default MXCSR, default x87 control word
  sp[1] = 0;
  sp[2] = 0;
  sp[3] = reinterpret_cast<unsigned long>(entry);
  sp[4] = reinterpret_cast<unsigned long>(arg);
  sp[5] = 0;
  sp[6] = 0;
  sp[7] = reinterpret_cast<unsigned long>(&fiber_ctx_start);
  return sp;
#else
#error "fiber: no context switch for this architecture (add core/src/arch/context_<arch>.S)"
#endif
}

}  // namespace fiber::detail
