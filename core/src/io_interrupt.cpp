// core/src/io_interrupt.cpp - which parked calls a program signal interrupts,
// and the wake-up that tells them (io_interrupt.hpp has the rule; the
// protocol, I-INT1..I-INT3, is fiber/detail/interrupts.hpp over the seam).
//
// Natively: one basic_interrupts for the process; the fiber's mask (I8) is
// the mask pending() filters with; arrived()'s "wake needed" becomes an
// eventfd write, read by the poller thread, which runs wake_all() (no runtime
// lock is ever taken in a signal handler).  I-INT2: the runtime's ticks never
// call intr_signal_arrived (signals.cpp / preempt.cpp handle them).
#include "io_interrupt.hpp"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "poller.hpp"
#include "signals.hpp"

namespace fiber::detail {

namespace {

basic_interrupts<native_seam> g_intr;
std::atomic<int> g_efd{-1};
std::atomic<bool> g_handlers{false};  // the program installed a handler (ever)
std::atomic<bool> g_child{false};     // forked while a runtime ran: the registry is off

std::uint64_t own_mask() noexcept {
  fcb* f = current_fiber();
  return f ? f->sigmask : 0;  // I8: the fiber's own field, read by the fiber
}

}  // namespace

std::uint64_t intr_begin() noexcept { return g_intr.begin(); }

bool intr_pending(std::uint64_t since, bool restartable) noexcept {
  return g_intr.pending(since, own_mask(), restartable);
}

bool intr_guard::enter(std::uint64_t since, bool restartable) noexcept {
  if (g_child.load(std::memory_order_relaxed)) return false;  // relaxed: the child has one thread
  if (g_handlers.load(std::memory_order_relaxed)) io_poller_start();  // relaxed: a hint, see intr_handler_installed
  linked_ = true;
  return g_intr.enter(g_, since, own_mask(), restartable);
}

intr_guard::~intr_guard() {
  if (linked_) g_intr.leave(g_);
}

void intr_signal_arrived(int sig, bool restart) noexcept {
  if (knobs.no_signal_interrupt.load(std::memory_order_relaxed)) return;  // relaxed: a test knob
  int saved = errno;
  int fd = g_efd.load(std::memory_order_acquire);  // acquire: pairs with intr_attach_eventfd
  if (g_intr.arrived(sig, restart) && fd >= 0) {
    std::uint64_t one = 1;
    (void)syscall(SYS_write, fd, &one, sizeof one);  // the poller runs intr_wake_all (I-INT1)
  }
  errno = saved;
}

void intr_handler_installed() noexcept {
  g_handlers.store(true, std::memory_order_relaxed);  // relaxed: a hint for the next parks
  if (g_child.load(std::memory_order_relaxed)) return;  // relaxed: the child has one thread
  // Fibers already parked without a poller (sleeps only) would miss the
  // wake-up: start it now if any is registered.
  if (g_intr.any_linked() && g_rt.load(std::memory_order_acquire)) io_poller_start();  // acquire: pairs with fiber_init
}

void intr_forget_in_child() noexcept {
  g_child.store(true, std::memory_order_relaxed);  // relaxed: the child has one thread
}

void intr_attach_eventfd(int efd) noexcept {
  g_efd.store(efd, std::memory_order_release);  // release: the descriptor is set up before use
}

int intr_eventfd() noexcept {
  return g_efd.load(std::memory_order_acquire);  // acquire: as intr_attach_eventfd
}

void intr_wake_all() noexcept { g_intr.wake_all(); }

}  // namespace fiber::detail
