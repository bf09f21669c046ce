// core/src/preempt.cpp - timer ticks and safe preemption.
//
// Ticks: one POSIX timer per KLT, timer_create(clock, SIGEV_THREAD_ID), so
// each tick lands on the KLT it measures (setitimer is process-wide once the
// threads share a thread group: platform-facts).  The clock is the KLT's CPU
// time (CLOCK_THREAD_CPUTIME_ID) when the quantum is at least one jiffy: a
// KLT that sleeps or blocks in the kernel gets no ticks.  CPU-time clocks fire
// at most once per jiffy (4 ms at HZ=250), so for shorter quanta the timer
// uses CLOCK_MONOTONIC instead, armed only while the KLT runs fibers
// (klt_timer_idle disarms it before an idle sleep).
//
// Safe preemption: the handler never switches.  When the running fiber may be
// preempted it rewrites the interrupted context to "call"
// fiber_preempt_trampoline (arch/context_x86_64.S), which saves all registers
// and state, calls fiber_preempt_entry() -> switch_out(preempted), and on
// resumption restores everything and returns to the interrupted instruction.
// The handler refuses, marks the preemption pending, and lets the next safe
// point (preempt_enable at count 0, any voluntary switch) or tick take it when
//   - the fiber's preempt_count is nonzero (runtime lock, runtime entry point,
//     user fiber_preempt_disable section) (I5);
//   - the interrupted PC is not on the allow-list: the main executable's code
//     plus modules the user registered; never libc, libstdc++, ld.so, libgcc,
//     the sanitizer runtimes, libfiber itself, nor the runtime's assembly;
//   - the fiber's stack has less room than the trampoline needs.
// Remaining limits (papers/design.md, "Known limits"): a fiber blocking in a
// call that is not interposed (interpose_locks.cpp, interpose_io.cpp) blocks
// its KLT; a fiber in a long libc call is preempted
// only when it returns to allowed code; TLS addresses cached by compiled code
// across a voluntary runtime call may refer to the previous KLT's TLS.
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cpuid.h>
#include <cstdio>
#include <cstring>

#include "arch/context.hpp"
#include "interpose_locks.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"
#include "signals.hpp"
#include "trace.hpp"

unsigned fiber_xsave_size = 0;

extern "C" {
// Bounds of libfiber's own compiled code when it is linked statically (the
// build renames the archive's .text to fiber_rt_text; weak: absent otherwise).
extern const char __start_fiber_rt_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_fiber_rt_text[] __attribute__((weak, visibility("hidden")));
}

namespace fiber::detail {

klt* tick_klt() noexcept;

namespace {

constexpr unsigned kJiffyUs = 4000;       // HZ=250 here; CPU clocks tick no finer
constexpr std::size_t kAltStack = 64 * 1024;
constexpr unsigned kMaxRanges = 64;

int g_signo = SIGPROF;
struct range { std::uintptr_t lo, hi; };
range g_allow[kMaxRanges];                 // written under g_allow_mu, published by g_nallow
std::atomic<unsigned> g_nallow{0};
range g_deny[kMaxRanges];                  // the runtime's own code
std::atomic<unsigned> g_ndeny{0};
pthread_mutex_t g_allow_mu = PTHREAD_MUTEX_INITIALIZER;
struct sigaction g_old_segv, g_old_bus;
bool g_installed = false;

bool in(const range* r, unsigned n, std::uintptr_t pc) noexcept {
  for (unsigned i = 0; i < n; ++i)
    if (pc >= r[i].lo && pc < r[i].hi) return true;
  return false;
}

bool pc_allowed(std::uintptr_t pc) noexcept {
  // acquire: pairs with the release in add_range(); entries below n are complete.
  if (in(g_deny, g_ndeny.load(std::memory_order_acquire), pc)) return false;
  return in(g_allow, g_nallow.load(std::memory_order_acquire), pc);
}

void add_range(range* r, std::atomic<unsigned>& n, std::uintptr_t lo, std::uintptr_t hi) noexcept {
  unsigned i = n.load(std::memory_order_relaxed);  // relaxed: writers hold g_allow_mu
  if (i >= kMaxRanges) return;
  r[i] = {lo, hi};
  n.store(i + 1, std::memory_order_release);  // release: pairs with pc_allowed()'s acquire
}

// The allow-list is a fixed array: a module is added whole (all its
// executable segments) or not at all (ENOMEM when they do not fit), a module
// already on it is not added twice, and fiber_shutdown empties it
// (preempt_uninstall); init adds the main executable again.
struct find_ctx {
  std::uintptr_t addr;
  bool main_only;
  bool found;
  int result;  // 0, EPERM (never allowed) or ENOMEM (list full)
  int count;
};

bool never_allowed(const char* name) noexcept {
  static const char* const kNever[] = {"libc.so", "libc-", "libstdc++", "ld-linux", "libgcc",
                                       "libm.so", "libpthread", "libfiber", "libasan",
                                       "libtsan", "libubsan", "liblsan", "libdl"};
  for (const char* bad : kNever)
    if (std::strstr(name, bad)) return true;
  return false;
}

bool contains_addr(const dl_phdr_info* info, std::uintptr_t addr) noexcept {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && addr >= lo && addr < lo + ph.p_memsz) return true;
  }
  return false;
}

// Under g_allow_mu: adds every executable segment of `info`, none twice.
int add_module_locked(const dl_phdr_info* info) noexcept {
  range segs[8];
  unsigned nseg = 0, fresh = 0, have = g_nallow.load(std::memory_order_relaxed);  // relaxed: under g_allow_mu
  for (int i = 0; i < info->dlpi_phnum && nseg < 8; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    range r{info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
    segs[nseg++] = r;
    if (!in(g_allow, have, r.lo)) ++fresh;
  }
  if (have + fresh > kMaxRanges) return ENOMEM;
  for (unsigned i = 0; i < nseg; ++i)
    if (!in(g_allow, g_nallow.load(std::memory_order_relaxed), segs[i].lo))  // relaxed: as above
      add_range(g_allow, g_nallow, segs[i].lo, segs[i].hi);
  return 0;
}

int add_module_cb(struct dl_phdr_info* info, size_t, void* p) {
  auto* c = static_cast<find_ctx*>(p);
  bool is_main = c->count++ == 0;  // the first object is the main program
  if (c->main_only ? !is_main : !contains_addr(info, c->addr)) return 0;
  c->found = true;
  if (!c->main_only && !is_main && never_allowed(info->dlpi_name)) {
    c->result = EPERM;
    return 1;
  }
  c->result = add_module_locked(info);  // the main executable too: init may not have run yet
  return 1;
}

void build_allow_list() noexcept {
  real_locks().mutex_lock(&g_allow_mu);
  find_ctx c{0, true, false, 0, 0};
  dl_iterate_phdr(add_module_cb, &c);  // the main executable, unless already there
  if (g_ndeny.load(std::memory_order_relaxed) == 0) {  // relaxed: under g_allow_mu
    add_range(g_deny, g_ndeny, reinterpret_cast<std::uintptr_t>(fiber_asm_begin),
              reinterpret_cast<std::uintptr_t>(fiber_asm_end));
    if (__start_fiber_rt_text && __stop_fiber_rt_text)
      add_range(g_deny, g_ndeny, reinterpret_cast<std::uintptr_t>(__start_fiber_rt_text),
                reinterpret_cast<std::uintptr_t>(__stop_fiber_rt_text));
  }
  real_locks().mutex_unlock(&g_allow_mu);
}

// At shutdown, once no KLT runs (no tick handler reads the list): empty it.
void clear_allow_list() noexcept {
  real_locks().mutex_lock(&g_allow_mu);
  g_nallow.store(0, std::memory_order_release);  // release: pairs with pc_allowed()'s acquire
  real_locks().mutex_unlock(&g_allow_mu);
}

unsigned detect_xsave_size() noexcept {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  if (!(c & (1u << 26)) || !(c & (1u << 27))) return 0;  // XSAVE and OSXSAVE
  __cpuid_count(0xD, 0, a, b, c, d);
  return b;  // bytes for the components enabled in XCR0
}

std::size_t trampoline_room() noexcept {
  return (fiber_xsave_size ? fiber_xsave_size : 512) + 128 /*red zone*/ + 64 /*align*/ +
         16 * 8 /*pushes*/ + 2048 /*fiber_preempt_entry -> switch_out frames*/;
}

// The interrupted sp is in f's guard or just below it while f itself runs.
// Not while f's gate is up: in a switch k->current is already the next fiber
// while sp is still on the previous one's stack, which may lie right below
// (and the switch path checks the fiber that left, sched.cpp).  Not on the
// KLT's sigaltstack: a program's SA_ONSTACK handler runs there.
bool overflowed_at_tick(const klt& k, const fcb& f, std::uintptr_t sp) noexcept {
  auto alt = reinterpret_cast<std::uintptr_t>(k.altstack);
  if (f.gate.in_section() || (alt && sp >= alt && sp < alt + kAltStack)) return false;
  return f.sp_overflowed(sp);
}

void on_tick(int sig, siginfo_t* si, void* ucv) {
  int saved_errno = errno;
  if (!signals_is_tick(si)) {  // sent by the program, or its own timer: its handler's
    signals_forward(sig, si, ucv);
    errno = saved_errno;
    return;
  }
  klt* k = tick_klt();
  fcb* f = k ? k->current : nullptr;
  runtime* rt = g_rt.load(std::memory_order_relaxed);  // relaxed: non-null while KLTs run
  if (f && rt) {
    auto* uc = static_cast<ucontext_t*>(ucv);
    auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
    auto sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
    auto& st = rt->stats;
    st.ticks.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    k->ticks.store(k->ticks.load(std::memory_order_relaxed) + 1,  // per KLT for fiber_dump:
                   std::memory_order_relaxed);  // relaxed: statistics, this handler is the one writer
    auto lo = reinterpret_cast<std::uintptr_t>(f->stack_lo());
    auto hi = reinterpret_cast<std::uintptr_t>(f->stack_hi());
    // A frame jumped past the guard (stack clash): stop before the fiber
    // writes further into what lies below, whatever code it is in.
    if (overflowed_at_tick(*k, *f, sp))
      report_stack_overflow(f, "sp", sp, "a frame skipped the guard; seen at a tick");
    std::atomic<std::uint64_t>* deferred = nullptr;
    if (!knobs.no_count_check.load(std::memory_order_relaxed) && f->gate.tick_refused())
      deferred = &st.deferred_count;  // I-G1: in a section, owed (pending set)
    else if (!pc_allowed(pc) && !knobs.no_pc_check.load(std::memory_order_relaxed))
      deferred = &st.deferred_pc;
    else if ((sp < lo + trampoline_room() || sp > hi) &&
             !knobs.no_stack_check.load(std::memory_order_relaxed))
      deferred = &st.deferred_stack;
    if (deferred) {
      deferred->fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
      k->deferred.store(k->deferred.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);  // relaxed: as k->ticks above
      f->gate.defer();  // owed: taken at the next safe point (I-G2)
      trace_tick_refused(k, f, deferred == &st.deferred_count ? trace_refusal::count   // trace.hpp:
                               : deferred == &st.deferred_pc  ? trace_refusal::pc      // the handler's
                                                              : trace_refusal::stack);  // own ring
    } else {
      // Below the red zone: [sp] = rip, [sp+8] = rsp for the trampoline's iretq.
      std::uintptr_t orig_sp = sp;
      sp = ((sp - 128) & ~std::uintptr_t{15}) - 16;
      reinterpret_cast<std::uintptr_t*>(sp)[0] = pc;
      reinterpret_cast<std::uintptr_t*>(sp)[1] = orig_sp;
      uc->uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(sp);
      uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(&fiber_preempt_trampoline);
    }
  }
  errno = saved_errno;
}

void write_hex(char* out, std::uintptr_t v) noexcept {
  static const char kHex[] = "0123456789abcdef";
  out[0] = '0'; out[1] = 'x';
  for (int i = 0; i < 16; ++i) out[2 + i] = kHex[(v >> (60 - 4 * i)) & 0xF];
  out[18] = '\0';
}

void write_dec(char* out, std::uint64_t v) noexcept {
  char tmp[21];
  int n = 0;
  do { tmp[n++] = static_cast<char>('0' + v % 10); v /= 10; } while (v && n < 20);
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

// Appends s to the buffer at *p (bounded by end); async-signal-safe.
void append(char** p, const char* end, const char* s) noexcept {
  while (*s && *p < end - 1) *(*p)++ = *s++;
  **p = '\0';
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  klt* k = tick_klt();
  fcb* f = k ? k->current : nullptr;
  auto addr = reinterpret_cast<std::uintptr_t>(si->si_addr);
  if (f) {
    auto sp = static_cast<std::uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RSP]);
    // The guard, or a frame that jumped up to a guard's width past it.
    if (f->sp_overflowed(addr))
      report_stack_overflow(f, "fault", addr,
                            addr >= reinterpret_cast<std::uintptr_t>(f->map_base)
                                ? "guard page hit"
                                : "below the guard: a frame skipped it");
    if (overflowed_at_tick(*k, *f, sp))
      report_stack_overflow(f, "fault", addr, "sp below the guard: a frame skipped it");
  }
  // Not ours: hand it to whoever was there before (ASan's handler, or the default).
  struct sigaction& old = sig == SIGSEGV ? g_old_segv : g_old_bus;
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) { old.sa_sigaction(sig, si, uc); return; }
  } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler) {
    old.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // returning re-executes the access and dies with the default action
}

}  // namespace

int preempt_signal() noexcept { return g_signo; }

// "fiber <id>: stack overflow (<what> at 0x..., <why>)": from a handler on the
// KLT's sigaltstack or from the switch path (sched.cpp), async-signal-safe.
void report_stack_overflow(const fcb* f, const char* what, std::uintptr_t at,
                           const char* why) noexcept {
  char msg[192], num[24], hex[20];
  char* p = msg;
  const char* end = msg + sizeof msg;
  write_dec(num, f->id);
  write_hex(hex, at);
  append(&p, end, "fiber ");
  append(&p, end, num);
  append(&p, end, ": stack overflow (");
  append(&p, end, what);
  append(&p, end, " at ");
  append(&p, end, hex);
  append(&p, end, ", ");
  append(&p, end, why);
  append(&p, end, ")");
  fatal(msg);
}

bool preempt_install(runtime&) noexcept {
  fiber_xsave_size = detect_xsave_size();
  build_allow_list();
  if (g_installed) return true;
  if (!signals_install_tick(g_signo, on_tick)) return false;  // the old handler becomes the program's
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
  g_installed = true;
  return true;
}

void preempt_uninstall() noexcept {
  clear_allow_list();
  if (!g_installed) return;
  signals_uninstall_tick();  // the program's latest handler for the signal
  sigaction(SIGSEGV, &g_old_segv, nullptr);
  sigaction(SIGBUS, &g_old_bus, nullptr);
  g_installed = false;
}

void klt_altstack_install(klt& k) noexcept {
  void* p = mmap(nullptr, kAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  k.altstack = static_cast<char*>(p);
  stack_t ss;
  ss.ss_sp = p;
  ss.ss_size = kAltStack;
  ss.ss_flags = 0;
  sigaltstack(&ss, nullptr);
}

static bool use_monotonic(const fiber_config_t& cfg) noexcept { return cfg.timeslice_us < kJiffyUs; }

bool klt_timer_start(klt& k, const fiber_config_t& cfg) noexcept {
  if (cfg.timeslice_us == 0 || kTsanBuild) return true;  // cooperative (TSan delays async signals)
  struct sigevent ev;
  std::memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = g_signo;
  ev.sigev_value.sival_ptr = signals_tick_tag();  // tells our ticks from the program's signals
  ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  clockid_t clock = use_monotonic(cfg) ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID;
  if (timer_create(clock, &ev, &k.timer) != 0) return false;
  k.has_timer = true;
  klt_timer_idle(k, false);
  return true;
}

// Arms (every quantum) or disarms k's timer.  A CPU-time timer stays armed:
// an idle KLT uses no CPU, so it gets no ticks.  A CLOCK_MONOTONIC timer
// (quanta below a jiffy) is disarmed while the KLT sleeps.
void klt_timer_idle(klt& k, bool idle) noexcept {
  runtime* rt = g_rt.load(std::memory_order_relaxed);  // relaxed: set before KLTs start
  if (!k.has_timer || !rt) return;
  if (idle && !use_monotonic(rt->cfg)) return;
  if (idle == !k.timer_armed) return;  // already in the wanted state
  struct itimerspec its;
  std::memset(&its, 0, sizeof its);
  if (!idle) {
    long ns = static_cast<long>(rt->cfg.timeslice_us) * 1000;
    its.it_interval = {ns / 1000000000, ns % 1000000000};
    its.it_value = its.it_interval;
  }
  timer_settime(k.timer, 0, &its, nullptr);
  k.timer_armed = !idle;
}

void klt_timer_stop(klt& k) noexcept {
  if (k.has_timer) timer_delete(k.timer);
  k.has_timer = false;
  k.timer_armed = false;
  if (k.altstack) {
    stack_t ss;
    std::memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    munmap(k.altstack, kAltStack);
    k.altstack = nullptr;
  }
}

}  // namespace fiber::detail

using namespace fiber::detail;

// Called by fiber_preempt_trampoline on the preempted fiber's stack; saved:
// the lowest address of what it saved.  Decides here, while the fiber's
// registers are all on its stack, whether it may resume on another KLT
// (policy.hpp I-R3, tls_scan.cpp).
extern "C" void fiber_preempt_entry(const void* saved) {
  runtime* rt = g_rt.load(std::memory_order_relaxed);  // relaxed: non-null while fibers run
  rt->stats.preemptions.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  if (rt->scan_preempted) {
    fcb* f = current_fiber();
    f->movable = !stack_holds_tls(*this_klt(), saved, f->stack_hi());
    if (!f->movable) rt->stats.pinned_tls.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  }
  switch_out(klt_action::preempted);  // I3: comes back on this KLT unless movable
}

extern "C" int fiber_preempt_allow_module(const void* addr) {
  if (!addr) return EINVAL;
  real_locks().mutex_lock(&g_allow_mu);
  find_ctx c{reinterpret_cast<std::uintptr_t>(addr), false, false, 0, 0};
  dl_iterate_phdr(add_module_cb, &c);
  real_locks().mutex_unlock(&g_allow_mu);
  return c.found ? c.result : EINVAL;
}

extern "C" int fiber_set_preempt_signal(int signo) {
  if (g_rt.load(std::memory_order_acquire)) return EBUSY;  // acquire: pairs with fiber_init
  if (signo <= 0 || signo >= NSIG || signo == SIGSEGV || signo == SIGBUS || signo == SIGKILL ||
      signo == SIGSTOP)
    return EINVAL;
  g_signo = signo;
  return 0;
}
