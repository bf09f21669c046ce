// core/src/io_interrupt.cpp - which parked calls a program signal interrupts,
// and the wake-up that tells them (io_interrupt.hpp has the rule).
//
// Stamps: g_epoch counts handled arrivals; an arrival with number e records e
// in g_any[S] (it interrupts calls that are never restarted) and, when its
// handler lacks SA_RESTART, in g_plain[S] (it interrupts every call).  A call
// entered at stamp s is interrupted by S iff its fiber does not block S and
// the relevant table holds a value > s for S.  The check is the fiber's own,
// against its own mask (I8): the poller only wakes.
//
//   I-INT1 No lost interrupt: a fiber registers its parker (under g_lock),
//          then evaluates intr_pending, then parks.  The poller, after the
//          trampoline's stamps (eventfd write -> read), walks the registry
//          under g_lock and unparks each parker.  Either the walk finds the
//          parker (its unpark makes the park return, I-P1) or the walk's
//          unlock happened before the registration's lock, and the fiber's
//          check then sees the stamps.
//   I-INT3 The trampoline writes the eventfd only when a guard is registered
//          (a program taking many signals with no fiber parked pays no system
//          call): it bumps the epoch, then loads g_registered; a guard
//          increments g_registered, then loads the epoch (intr_pending); all
//          four seq_cst, so one of the two sees the other's write (Dekker).
//   I-INT2 The runtime's ticks never stamp: they are not the program's
//          handler (signals.cpp handles the preemption signal; a program-sent
//          preemption signal that reaches the program's handler stamps).
#include "io_interrupt.hpp"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "fiber/detail/spinlock.hpp"
#include "poller.hpp"
#include "signals.hpp"

namespace fiber::detail {

namespace {

constexpr int kSignals = 65;  // 1..64

std::atomic<std::uint64_t> g_epoch{0};
std::atomic<std::uint64_t> g_any[kSignals];    // latest arrival with a program handler
std::atomic<std::uint64_t> g_plain[kSignals];  // latest arrival whose handler lacks SA_RESTART
std::atomic<int> g_efd{-1};
std::atomic<bool> g_handlers{false};  // the program installed a handler (ever)
std::atomic<bool> g_child{false};     // forked while a runtime ran: the registry is off

basic_spinlock<native_seam> g_lock;
intr_guard* g_head = nullptr;       // guarded by g_lock
std::atomic<int> g_registered{0};  // guards on the list (I-INT3)

void raise_to(std::atomic<std::uint64_t>& a, std::uint64_t e) noexcept {
  // relaxed: ordered by the caller's release fetch_add on g_epoch, which
  // intr_pending's acquire load of g_epoch pairs with (loaded after it).
  std::uint64_t cur = a.load(std::memory_order_relaxed);
  while (cur < e && !a.compare_exchange_weak(cur, e, std::memory_order_relaxed)) {
  }
}

}  // namespace

std::uint64_t intr_begin() noexcept {
  return g_epoch.load(std::memory_order_acquire);  // acquire: pairs with intr_signal_arrived's bump
}

bool intr_pending(std::uint64_t since, bool restartable) noexcept {
  // seq_cst: I-INT3 (and acquire: pairs with intr_signal_arrived's release
  // bump, so the tables' values for arrivals up to this epoch are visible).
  if (g_epoch.load(std::memory_order_seq_cst) == since) return false;
  fcb* f = current_fiber();
  std::uint64_t mask = f ? f->sigmask : 0;  // I8: the fiber's own field, read by the fiber
  const std::atomic<std::uint64_t>* table = restartable ? g_plain : g_any;
  for (int s = 1; s < kSignals; ++s) {
    if (mask & sig_bit(s)) continue;
    // relaxed: written before the release bump the acquire above read.
    if (table[s].load(std::memory_order_relaxed) > since) return true;
  }
  return false;
}

intr_guard::intr_guard(parker& p) noexcept : p_(&p) {
  if (g_child.load(std::memory_order_relaxed)) return;  // relaxed: the child has one thread
  if (g_handlers.load(std::memory_order_relaxed)) io_poller_start();  // relaxed: a hint, see intr_handler_installed
  lock_guard<basic_spinlock<native_seam>> g(g_lock);
  next_ = g_head;
  if (g_head) g_head->prev_ = this;
  g_head = this;
  g_registered.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: I-INT3
}

intr_guard::~intr_guard() {
  if (g_child.load(std::memory_order_relaxed)) return;  // relaxed: as the constructor
  lock_guard<basic_spinlock<native_seam>> g(g_lock);
  if (prev_) prev_->next_ = next_; else g_head = next_;
  if (next_) next_->prev_ = prev_;
  g_registered.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a stale count costs one eventfd write
}

void intr_signal_arrived(int sig, bool restart) noexcept {
  if (sig <= 0 || sig >= kSignals) return;
  if (knobs.no_signal_interrupt.load(std::memory_order_relaxed)) return;  // relaxed: a test knob
  int saved = errno;
  // The tables first, then the bump that publishes them: the bump is the
  // release a reader's acquire load of g_epoch pairs with.  An arrival's
  // number is the bumped value, so every call entered before it (stamp <=
  // the old value) sees "> since".
  std::uint64_t e = g_epoch.load(std::memory_order_relaxed) + 1;  // relaxed: refined by the CAS loop
  raise_to(g_any[sig], e);
  if (!restart) raise_to(g_plain[sig], e);
  // Raised to at least e (another arrival may have gone further), then one
  // RMW of ours in every case: seq_cst, it publishes the tables (release,
  // pairs with intr_begin / intr_pending's loads) and orders them before the
  // load of g_registered below (I-INT3).
  std::uint64_t cur = g_epoch.load(std::memory_order_relaxed);  // relaxed: refined by the CAS
  // release: a reader that reads this value sees the tables; relaxed on failure: retried.
  while (cur < e && !g_epoch.compare_exchange_weak(cur, e, std::memory_order_release, std::memory_order_relaxed)) {
  }
  g_epoch.fetch_add(0, std::memory_order_seq_cst);
  int fd = g_efd.load(std::memory_order_acquire);  // acquire: pairs with intr_attach_eventfd
  if (fd >= 0 && g_registered.load(std::memory_order_seq_cst) > 0) {  // seq_cst: I-INT3
    std::uint64_t one = 1;
    (void)syscall(SYS_write, fd, &one, sizeof one);  // the poller wakes the parked (I-INT1)
  }
  errno = saved;
}

void intr_handler_installed() noexcept {
  g_handlers.store(true, std::memory_order_relaxed);  // relaxed: a hint for the next parks
  if (g_child.load(std::memory_order_relaxed)) return;  // relaxed: the child has one thread
  // Fibers already parked without a poller (sleeps only) would miss the
  // wake-up: start it now if any is registered.
  bool parked;
  {
    lock_guard<basic_spinlock<native_seam>> g(g_lock);
    parked = g_head != nullptr;
  }
  if (parked && g_rt.load(std::memory_order_acquire)) io_poller_start();  // acquire: pairs with fiber_init
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

void intr_wake_all() noexcept {
  lock_guard<basic_spinlock<native_seam>> g(g_lock);
  for (intr_guard* w = g_head; w; w = w->next_) w->p_->unpark();
}

}  // namespace fiber::detail
