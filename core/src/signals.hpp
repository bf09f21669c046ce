// core/src/signals.hpp - the runtime's side of the program's signal calls
// (signals.cpp): the preemption signal's handler is shared with the program,
// and each fiber has its own signal mask.  Not installed.
//
// Preemption signal (SIGPROF unless fiber_set_preempt_signal): while the
// runtime's tick handler is installed, sigaction()/signal() on that signal
// record the program's handler instead of replacing the runtime's; the tick
// handler passes every arrival of that signal that is not one of its own
// ticks to it (signals_forward).  fiber_shutdown installs the program's
// latest handler for real.
//
// Signal masks (I8, runtime.hpp): pthread_sigmask()/sigprocmask() called by a
// fiber change that fiber's mask (fcb::sigmask), not its KLT's; install()
// (sched.cpp) gives the KLT the mask of the fiber it runs when it differs from
// the KLT's current one (klt::sigmask), so a switch between fibers with the
// same mask makes no system call.  The preemption signal is never really
// blocked on a KLT: a fiber that blocks it is still preempted, and a
// program-sent preemption signal that arrives while it is blocked is held
// until the fiber unblocks it.  OS threads keep libc's behaviour.
#pragma once

#include <signal.h>

#include <cstdint>

namespace fiber::detail {

struct klt;
struct fcb;

using tick_handler = void (*)(int, siginfo_t*, void*);

// Installs `h` for `signo` (SA_SIGINFO|SA_RESTART|SA_ONSTACK); the handler
// that was there becomes the program's.  false: sigaction failed.
bool signals_install_tick(int signo, tick_handler h) noexcept;
// Puts the program's latest handler for the signal back.
void signals_uninstall_tick() noexcept;
// The sigev_value of every tick timer; a tick is SI_TIMER with this value.
void* signals_tick_tag() noexcept;
inline bool signals_is_tick(const siginfo_t* si) noexcept {
  return si && si->si_code == SI_TIMER && si->si_value.sival_ptr == signals_tick_tag();
}
// In the tick handler, for a preemption signal that is not a tick: runs the
// program's handler, or holds the signal if the running fiber blocks it.
void signals_forward(int sig, siginfo_t* si, void* uc) noexcept;

// Masks use the kernel's format: bit (signo - 1).
constexpr std::uint64_t sig_bit(int signo) noexcept { return std::uint64_t{1} << (signo - 1); }
// On a new KLT, before it runs fibers: records its mask, unblocks the preemption signal.
void signals_klt_start(klt& k) noexcept;
// Gives KLT k (the calling one) the fiber mask `mask` (install()'s slow path).
void signals_apply(klt& k, std::uint64_t mask) noexcept;
// At fiber_create: the new fiber's mask is its creator's if a fiber, else
// fiber_init's caller's (the mask the KLTs inherited); nothing held.
void signals_init_fiber(fcb* f) noexcept;

}  // namespace fiber::detail
