// core/src/io_interrupt.hpp - the program's signals cut a fiber's parked
// blocking call short with EINTR, as they cut a thread's system call short
// (io_interrupt.cpp; the handler side: signals_program.cpp).  Not installed.
//
// Rule (papers/design.md 14.6): an arrival of signal S whose handler is the
// program's own function (not SIG_DFL, not SIG_IGN, not one of the runtime's
// ticks) interrupts every call that
//   * was entered before the handler returned (its entry stamp is older),
//   * is parked in an interposed blocking call or about to park in one,
//   * belongs to a fiber whose own signal mask does not block S (I8), and
//   * is not restarted: the handler lacks SA_RESTART, or the call is one
//     signal(7) never restarts (poll, select, epoll_wait, the sleeps, a
//     socket call bounded by SO_RCVTIMEO / SO_SNDTIMEO).
// Such a call returns -1 with EINTR (a sleep: the time left; a write that
// already moved bytes: their count), after the handler has run, so the
// classic `while (!stop) { n = read(...); if (n < 0 && errno == EINTR)
// continue; }` sees `stop`.  Every fiber that qualifies is interrupted, not
// one picked at random: deterministic, and what a program that handles EINTR
// in every thread already copes with.
//
// Lifecycle: a call takes intr_begin() at entry (one load); a park goes
// through an intr_guard, whose enter() puts the fiber's parker on a registry
// and then checks; the handler's trampoline calls intr_signal_arrived
// (async-signal-safe: atomics, and an eventfd write when a parker is
// registered), and the poller thread, woken by the eventfd, unparks every
// registered parker (intr_wake_all).  A woken fiber evaluates intr_pending
// itself.  The protocol (I-INT1..I-INT3) is fiber/detail/interrupts.hpp,
// model-checked by models/interrupts.cpp.
#pragma once

#include <cstdint>

#include "fiber/detail/interrupts.hpp"
#include "runtime.hpp"

namespace fiber::detail {

// The stamp of a call's entry.
std::uint64_t intr_begin() noexcept;

// True when a signal that arrived since `since` interrupts the calling
// fiber's call; `restartable`: the call is one SA_RESTART restarts.
bool intr_pending(std::uint64_t since, bool restartable) noexcept;

// Registers the calling fiber's parker for the interrupt wake-up while it is
// in scope: construct, enter() (links, then checks: I-INT1), then park.
class intr_guard {
 public:
  explicit intr_guard(parker& p) noexcept : g_(&p) {}
  ~intr_guard();
  intr_guard(const intr_guard&) = delete;
  intr_guard& operator=(const intr_guard&) = delete;

  // Once per guard: true when a signal already interrupted the call.
  bool enter(std::uint64_t since, bool restartable) noexcept;

 private:
  basic_interrupts<native_seam>::guard g_;
  bool linked_ = false;
};

// From the program's signal handler trampoline, after the handler returned
// (async-signal-safe).  `restart`: the handler has SA_RESTART.
void intr_signal_arrived(int sig, bool restart) noexcept;
// The program installed a handler of its own (signals_program.cpp): from now
// on a park makes sure the poller runs, which delivers the wake-ups.
void intr_handler_installed() noexcept;

// In a child forked while a runtime ran (its interposers are off): the
// registry may hold the parent's parkers and a lock a vanished thread held,
// so nothing here touches it again.
void intr_forget_in_child() noexcept;

// Poller side: the eventfd the trampoline writes (-1: none), set once the
// poller starts; intr_wake_all unparks every registered parker.
void intr_attach_eventfd(int efd) noexcept;
int intr_eventfd() noexcept;
void intr_wake_all() noexcept;

// The sigaction() of every signal but the preemption signal
// (signals_program.cpp): the program's handler is wrapped by a trampoline
// that calls it and then intr_signal_arrived.  `real` is libc's sigaction.
using sigaction_fn_t = int (*)(int, const struct sigaction*, struct sigaction*);
int signals_program_sigaction(int signo, const struct sigaction* act, struct sigaction* old,
                              sigaction_fn_t real) noexcept;

}  // namespace fiber::detail
