// core/src/signals.cpp - the program's signal calls, seen through the runtime:
// sigaction()/signal() on the preemption signal, and pthread_sigmask()/
// sigprocmask() from fibers (what and why: signals.hpp, papers/design.md
// "Signals").
//
// Interposition: libfiber defines sigaction, signal, pthread_sigmask and
// sigprocmask.  A program linked with libfiber.a resolves its calls to these
// (the archive member is pulled in by the undefined reference, and preempt.o
// needs it anyway); with libfiber.so they come first in symbol lookup because
// libfiber is a DT_NEEDED ahead of libc.  The real functions are found with
// dlsym(RTLD_NEXT) (real_symbol.hpp), so whatever comes next keeps working:
// libc, or ASan's and TSan's interceptors, which themselves find ours with
// RTLD_NEXT when the sanitizer runtime is loaded first.  The runtime's own mask changes use the
// raw rt_sigprocmask system call (8-byte kernel mask), never an interposer.
//
// The program's handler for the preemption signal is an immutable record
// published through one atomic pointer, so the tick handler reads a whole
// record without a lock.  Records are interned (one per distinct handler, mask
// and flags) and never freed: a handler on another KLT may be reading one.
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>

#include "interpose_locks.hpp"
#include "io_interrupt.hpp"
#include "real_symbol.hpp"
#include "runtime.hpp"
#include "signals.hpp"

extern "C" int __sigaction(int, const struct sigaction*, struct sigaction*);  // glibc's own

namespace fiber::detail {

klt* tick_klt() noexcept;  // sched.cpp

namespace {

static_assert(sizeof(unsigned long) == 8, "the kernel's signal mask is one 64-bit word here");

// glibc's SIGCANCEL and SIGSETXID (signals 32 and 33): glibc never lets them be blocked.
constexpr std::uint64_t kInternal = sig_bit(32) | sig_bit(33);
constexpr std::uint64_t kUnblockable = sig_bit(SIGKILL) | sig_bit(SIGSTOP);

struct program_action {
  struct sigaction sa;
  program_action* next;
};

pthread_mutex_t g_sig_mu = PTHREAD_MUTEX_INITIALIZER;   // taken with every signal blocked
program_action* g_interned = nullptr;                  // guarded by g_sig_mu; never freed
std::atomic<const program_action*> g_program{nullptr};  // the program's handler (tick installed)
std::atomic<int> g_tick_signo{0};                       // 0: the tick handler is not installed
program_action g_dfl_record{};                          // SIG_DFL, for SA_RESETHAND in a handler
std::atomic<std::uint64_t> g_init_mask{0};              // fiber_init's caller's mask
int g_tick_tag;                                         // its address tags our timers' ticks

std::uint64_t bits_of(const sigset_t* s) noexcept { return s->__val[0]; }
void set_bits(sigset_t* s, std::uint64_t v) noexcept {
  sigemptyset(s);
  s->__val[0] = v;
}

long raw_sigmask(int how, const std::uint64_t* set, std::uint64_t* old) noexcept {
  return syscall(SYS_rt_sigprocmask, how, set, old, sizeof(std::uint64_t));
}

using sigaction_fn = int (*)(int, const struct sigaction*, struct sigaction*);
using sigmask_fn = int (*)(int, const sigset_t*, sigset_t*);
using signal_fn = sighandler_t (*)(int, sighandler_t);
std::atomic<sigaction_fn> g_real_sigaction{nullptr};
std::atomic<sigmask_fn> g_real_pthread_sigmask{nullptr}, g_real_sigprocmask{nullptr};
std::atomic<signal_fn> g_real_signal{nullptr};

// Resolved at load time, so that a first call from a signal handler (sigaction
// is async-signal-safe) does not run dlsym there.
__attribute__((constructor)) void resolve_next_symbols() {
  next_symbol(g_real_sigaction, "sigaction");
  next_symbol(g_real_signal, "signal");
  next_symbol(g_real_pthread_sigmask, "pthread_sigmask");
  next_symbol(g_real_sigprocmask, "sigprocmask");
}

int real_sigaction(int signo, const struct sigaction* act, struct sigaction* old) noexcept {
  sigaction_fn f = next_symbol(g_real_sigaction, "sigaction");
  return f ? f(signo, act, old) : __sigaction(signo, act, old);  // no dlsym: a fully static program
}

// Runs with every signal blocked and g_sig_mu held (a handler may call sigaction too).
struct sig_locked {
  std::uint64_t saved = 0;
  sig_locked() noexcept {
    std::uint64_t all = ~(kInternal | kUnblockable | sig_bit(SIGSEGV) | sig_bit(SIGBUS));
    raw_sigmask(SIG_BLOCK, &all, &saved);
    real_locks().mutex_lock(&g_sig_mu);  // libc's: a fiber must not park here, signals blocked
  }
  ~sig_locked() {
    real_locks().mutex_unlock(&g_sig_mu);
    raw_sigmask(SIG_SETMASK, &saved, nullptr);
  }
};

bool same_action(const struct sigaction& a, const struct sigaction& b) noexcept {
  return a.sa_flags == b.sa_flags && std::memcmp(&a.sa_mask, &b.sa_mask, sizeof a.sa_mask) == 0 &&
         ((a.sa_flags & SA_SIGINFO) ? a.sa_sigaction == b.sa_sigaction : a.sa_handler == b.sa_handler);
}

// Under g_sig_mu: the record for `sa` (one per distinct action).
const program_action* intern(const struct sigaction& sa) noexcept {
  for (program_action* r = g_interned; r; r = r->next)
    if (same_action(r->sa, sa)) return r;
  auto* r = new (std::nothrow) program_action{sa, g_interned};
  if (r) g_interned = r;
  return r;
}

// Under g_sig_mu, the tick handler installed: sigaction() on the preemption signal.
int program_sigaction_locked(const struct sigaction* act, struct sigaction* old) noexcept {
  const program_action* cur = g_program.load(std::memory_order_relaxed);  // relaxed: writers hold g_sig_mu
  if (old) *old = cur->sa;
  if (!act) return 0;
  const program_action* r = intern(*act);
  if (!r) {
    errno = ENOMEM;
    return -1;
  }
  g_program.store(r, std::memory_order_release);  // release: pairs with signals_forward()'s acquire
  return 0;
}

int fiber_sigmask(fcb* f, int how, const sigset_t* set, sigset_t* old) noexcept;

}  // namespace

void* signals_tick_tag() noexcept { return &g_tick_tag; }

bool signals_install_tick(int signo, tick_handler h) noexcept {
  struct sigaction sa, prev;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  std::uint64_t mine = 0;
  raw_sigmask(SIG_BLOCK, nullptr, &mine);
  g_init_mask.store(mine, std::memory_order_relaxed);  // relaxed: read by fiber_create after init's publication
  sig_locked lock;
  if (g_tick_signo.load(std::memory_order_relaxed) != 0) return true;  // relaxed: under g_sig_mu
  if (real_sigaction(signo, &sa, &prev) != 0) return false;
  const program_action* r = intern(prev);
  if (!r) {
    real_sigaction(signo, &prev, nullptr);
    return false;
  }
  g_program.store(r, std::memory_order_release);  // release: pairs with signals_forward()'s acquire
  g_tick_signo.store(signo, std::memory_order_release);  // release: pairs with the interposers' acquire
  return true;
}

void signals_uninstall_tick() noexcept {
  sig_locked lock;
  int signo = g_tick_signo.load(std::memory_order_relaxed);  // relaxed: under g_sig_mu
  if (signo == 0) return;
  real_sigaction(signo, &g_program.load(std::memory_order_relaxed)->sa, nullptr);  // relaxed: under g_sig_mu
  g_tick_signo.store(0, std::memory_order_release);  // release: pairs with the interposers' acquire
}

void signals_forward(int sig, siginfo_t* si, void* uc) noexcept {
  klt* k = tick_klt();
  fcb* f = k ? k->current : nullptr;
  if (f && (f->sigmask & sig_bit(sig))) {  // same thread as its writer (fiber_sigmask)
    f->sig_pending.store(true, std::memory_order_relaxed);  // relaxed: read on this thread only
    return;
  }
  const program_action* a = g_program.load(std::memory_order_acquire);  // acquire: pairs with the store in sigaction()
  if (!a) return;
  const struct sigaction& sa = a->sa;
  bool info = (sa.sa_flags & SA_SIGINFO) != 0;
  // No program handler: dropped (the default action would be to end the process).
  if (!info && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) return;
  if (sa.sa_flags & SA_RESETHAND)  // acq_rel: as the store in sigaction(); a lost race is a newer handler
    g_program.compare_exchange_strong(a, &g_dfl_record, std::memory_order_acq_rel);
  std::uint64_t extra = bits_of(&sa.sa_mask) & ~kInternal;
  if (extra) raw_sigmask(SIG_BLOCK, &extra, nullptr);  // sigreturn restores the interrupted mask
  if (info) sa.sa_sigaction(sig, si, uc); else sa.sa_handler(sig);
  intr_signal_arrived(sig, (sa.sa_flags & SA_RESTART) != 0);  // as any program handler (io_interrupt.hpp)
}

void signals_klt_start(klt& k) noexcept {
  std::uint64_t cur = 0;
  raw_sigmask(SIG_BLOCK, nullptr, &cur);  // inherited from fiber_init's caller
  k.sigmask = cur;
  std::uint64_t tick = sig_bit(preempt_signal());
  if (cur & tick) raw_sigmask(SIG_UNBLOCK, &tick, nullptr);  // never blocked for real (I8)
}

void signals_apply(klt& k, std::uint64_t mask) noexcept {
  std::uint64_t real = mask & ~(sig_bit(preempt_signal()) | kInternal);
  raw_sigmask(SIG_SETMASK, &real, nullptr);
  k.sigmask = mask;
}

void signals_init_fiber(fcb* f) noexcept {
  fcb* creator = current_fiber();
  // relaxed: written by fiber_init before it published the runtime (release).
  f->sigmask = creator ? creator->sigmask : g_init_mask.load(std::memory_order_relaxed);
  f->sig_pending.store(false, std::memory_order_relaxed);  // relaxed: f is not yet published
}

namespace {

int fiber_sigmask(fcb* f, int how, const sigset_t* set, sigset_t* old) noexcept {
  std::uint64_t cur = f->sigmask, want = cur;
  if (set) {
    std::uint64_t s = bits_of(set);
    switch (how) {
      case SIG_BLOCK: want = cur | s; break;
      case SIG_UNBLOCK: want = cur & ~s; break;
      case SIG_SETMASK: want = s; break;
      default: return EINVAL;
    }
    want &= ~kUnblockable;
  }
  if (old) set_bits(old, cur);
  if (want == cur) return 0;
  f->sigmask = want;  // I8: the fiber's own mask, written only by the fiber
  klt* k = this_klt();  // no switch inside libfiber's code: k runs f throughout
  if (k->sigmask != want) signals_apply(*k, want);
  int tick = preempt_signal();
  // A preemption signal held while f blocked it (signals_forward) is raised
  // again now: the handler sees the new mask (signal fence: same thread).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if ((cur & ~want & sig_bit(tick)) && f->sig_pending.exchange(false, std::memory_order_relaxed))
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), tick);  // relaxed above: this thread only
  return 0;
}

}  // namespace
}  // namespace fiber::detail

using namespace fiber::detail;

// ---- the interposers (C linkage, default visibility) ------------------------

namespace {
// A fiber exists only while the tick handler is installed; before that (a
// sanitizer runtime initialising, say) no runtime state is touched.
fcb* calling_fiber() noexcept {
  // relaxed: a fiber calling this runs on a KLT started after the release in signals_install_tick().
  return g_tick_signo.load(std::memory_order_relaxed) != 0 ? current_fiber() : nullptr;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int sigaction(int signo, const struct sigaction* act,
                                                     struct sigaction* old) {
  // acquire: pairs with signals_install_tick()'s release; rechecked under the lock.
  // Every other signal: the program's handler is wrapped so that it
  // interrupts parked calls (signals_program.cpp, io_interrupt.hpp).
  if (signo <= 0 || signo != g_tick_signo.load(std::memory_order_acquire))
    return signals_program_sigaction(signo, act, old, real_sigaction);
  sig_locked lock;
  if (signo != g_tick_signo.load(std::memory_order_relaxed))  // relaxed: under g_sig_mu
    return signals_program_sigaction(signo, act, old, real_sigaction);
  return program_sigaction_locked(act, old);
}

// Through our sigaction for every signal (libc's signal() would install the
// handler without the wrapping of signals_program.cpp).  g_real_signal stays
// resolved for the lookup lines above.
__attribute__((visibility("default"))) sighandler_t signal(int signo, sighandler_t handler) {
  if (signo <= 0 || signo >= 65) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction sa, old;  // glibc's signal(): BSD semantics
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, signo);
  sa.sa_flags = SA_RESTART;
  if (sigaction(signo, &sa, &old) != 0) return SIG_ERR;
  return old.sa_handler;  // sa_handler and sa_sigaction share storage (a union in glibc)
}

__attribute__((visibility("default"))) int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  if (fcb* f = calling_fiber()) return fiber_sigmask(f, how, set, old);
  if (sigmask_fn real = next_symbol(g_real_pthread_sigmask, "pthread_sigmask")) return real(how, set, old);
  std::uint64_t s = set ? bits_of(set) & ~kInternal : 0, o = 0;  // libc's rule without libc
  if (syscall(SYS_rt_sigprocmask, how, set ? &s : nullptr, &o, sizeof s) != 0) return errno;
  if (old) set_bits(old, o);
  return 0;
}

__attribute__((visibility("default"))) int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  if (fcb* f = calling_fiber()) {
    int r = fiber_sigmask(f, how, set, old);
    if (r == 0) return 0;
    errno = r;
    return -1;
  }
  if (sigmask_fn real = next_symbol(g_real_sigprocmask, "sigprocmask")) return real(how, set, old);
  int r = pthread_sigmask(how, set, old);
  if (r == 0) return 0;
  errno = r;
  return -1;
}

}  // extern "C"
