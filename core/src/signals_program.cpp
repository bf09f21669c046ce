// core/src/signals_program.cpp - sigaction() for every signal but the
// preemption signal (signals.cpp routes it here): the program's handler is
// kept, as given, and wrapped by a trampoline that runs it and then reports
// the arrival (intr_signal_arrived), so fibers parked in interposed blocking
// calls return EINTR as a thread's system call would (io_interrupt.hpp).
//
// What the program sees is unchanged: its handler runs with its own mask,
// flags (SA_RESTART, SA_NODEFER, SA_ONSTACK, SA_RESETHAND are passed to the
// kernel as given; SA_SIGINFO is added for the trampoline) and arguments;
// sigaction()'s old action is the program's, not the trampoline.  SIG_DFL and
// SIG_IGN are installed as given: such a signal interrupts nothing.  Not
// wrapped: SIGKILL, SIGSTOP, glibc's internal 32 and 33, and the synchronous
// faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS: a fault is the
// faulting thread's, and the runtime chains its own SIGSEGV/SIGBUS handler).
//
// Records are interned (one per distinct action) and never freed: a handler
// running on another thread may be reading one.  One atomic pointer per
// signal publishes the current record; it is stored before the kernel sees
// the trampoline, so the trampoline always finds a record.
//
// Limits: a handler installed by a path that bypasses this interposer
// (a raw rt_sigaction system call, libc-internal installs) is not wrapped and
// interrupts nothing; a handler that leaves by longjmp interrupts nothing
// (the report comes after it returns).
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>

#include "io_interrupt.hpp"
#include "signals.hpp"

namespace fiber::detail {

namespace {

constexpr int kSignals = 65;

struct action_record {
  struct sigaction sa;
  action_record* next;
};

std::atomic<bool> g_mu{false};  // a spin flag, taken with every signal blocked (no preemption)
action_record* g_records = nullptr;                // guarded by g_mu; never freed
std::atomic<const action_record*> g_current[kSignals];

bool wrappable(int s) noexcept {
  switch (s) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP: case SIGSYS:
      return false;
    default:
      return s > 0 && s < kSignals && s != 32 && s != 33;
  }
}

bool is_function(const struct sigaction& sa) noexcept {
  return sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;  // sa_sigaction shares the storage
}

// Every signal blocked (but the unblockable ones and the faults) and g_mu
// held.  A spin flag, not a mutex: sigaction() may be called before the
// runtime resolved libc's locks, or from a handler; with the preemption
// signal blocked the holder is never preempted, and it holds the flag for
// one intern and one sigaction system call.
struct locked {
  std::uint64_t saved_ = 0;
  locked() noexcept {
    std::uint64_t all = ~(sig_bit(32) | sig_bit(33) | sig_bit(SIGKILL) | sig_bit(SIGSTOP) |
                          sig_bit(SIGSEGV) | sig_bit(SIGBUS));
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &saved_, sizeof all);
    // acquire: pairs with the release below (the records and g_current).
    while (g_mu.exchange(true, std::memory_order_acquire)) sched_yield();
  }
  ~locked() {
    g_mu.store(false, std::memory_order_release);  // release: pairs with the acquire above
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved_, nullptr, sizeof saved_);
  }
  locked(const locked&) = delete;
  locked& operator=(const locked&) = delete;
};

const action_record* intern(const struct sigaction& sa) noexcept {
  for (action_record* r = g_records; r; r = r->next)
    if (std::memcmp(&r->sa, &sa, sizeof sa) == 0) return r;
  auto* r = new (std::nothrow) action_record{sa, g_records};
  if (r) g_records = r;
  return r;
}

void trampoline(int sig, siginfo_t* si, void* uc) {
  // acquire: pairs with the release store in signals_program_sigaction.
  const action_record* r = sig > 0 && sig < kSignals ? g_current[sig].load(std::memory_order_acquire) : nullptr;
  if (!r || !is_function(r->sa)) return;  // replaced meanwhile: the newer action wins
  if (r->sa.sa_flags & SA_SIGINFO) r->sa.sa_sigaction(sig, si, uc); else r->sa.sa_handler(sig);
  intr_signal_arrived(sig, (r->sa.sa_flags & SA_RESTART) != 0);
}

bool is_trampoline(const struct sigaction& sa) noexcept {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == trampoline;
}

}  // namespace

namespace {

// Under the lock: installs act (wrapped when it is a handler); *wrapped says so.
int install_locked(int signo, const struct sigaction* act, struct sigaction* old, sigaction_fn_t real,
                   bool* wrapped) noexcept {
  const action_record* cur = g_current[signo].load(std::memory_order_relaxed);  // relaxed: under g_mu
  struct sigaction prev, install;
  std::memset(&prev, 0, sizeof prev);
  const action_record* next = nullptr;
  if (act) {
    install = *act;
    if (is_function(*act)) {
      struct sigaction clean;  // padding and sa_restorer zeroed: one record per action
      std::memset(&clean, 0, sizeof clean);
      clean.sa_sigaction = act->sa_sigaction;
      clean.sa_mask = act->sa_mask;
      clean.sa_flags = act->sa_flags;
      if (!(next = intern(clean))) {
        errno = ENOMEM;
        return -1;
      }
      install.sa_sigaction = trampoline;
      install.sa_flags |= SA_SIGINFO;
      g_current[signo].store(next, std::memory_order_release);  // release: pairs with trampoline's acquire
    }
  }
  if (real(signo, act ? &install : nullptr, &prev) != 0) {
    int e = errno;
    g_current[signo].store(cur, std::memory_order_release);  // release: as above
    errno = e;
    return -1;
  }
  if (act && !next) g_current[signo].store(nullptr, std::memory_order_release);  // release: as above
  // The kernel's previous action, unless it was our trampoline (then the
  // program's record; SA_RESETHAND's reset shows as SIG_DFL, as it should).
  if (old) *old = is_trampoline(prev) && cur ? cur->sa : prev;
  *wrapped = next != nullptr;
  return 0;
}

}  // namespace

int signals_program_sigaction(int signo, const struct sigaction* act, struct sigaction* old,
                              sigaction_fn_t real) noexcept {
  if (!wrappable(signo)) return real(signo, act, old);
  bool wrapped = false;
  int r;
  {
    locked lock;
    r = install_locked(signo, act, old, real, &wrapped);
  }
  if (wrapped) intr_handler_installed();  // may start the poller: not under the lock
  return r;
}

}  // namespace fiber::detail
