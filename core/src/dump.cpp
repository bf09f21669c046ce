// core/src/dump.cpp - fiber_dump(fd) and the SIGQUIT dump.
//
// Output (one record per line, parsed by core/tests/diag_test.cpp and
// tools/gdb/fiber_gdb.py's documentation):
//   fiber dump: pid P, N KLTs, L live fibers
//   fiber ID "NAME" STATE [on KIND 0xOBJ [held by fiber ID|thread TID]] [klt K] [pinned] for S.Ds
//     #0 0xPC SYMBOL+0xOFF          (parked/runnable fibers: their saved context)
//   thread TID parked on KIND 0xOBJ [untimed]   (OS threads blocked in the runtime)
//   klt K running fiber ID [(in the kernel: system call NR NAME)] | idle | scheduling, ticks T deferred D
//
// What it takes (async-signal-safe): no lock and no allocation.  It reads the
// control-block chunks (never freed while the runtime runs: slots_visit), the
// OS-waiter registry (push-only, never freed: os_waiters_visit) and the KLT
// array, all racily (relaxed atomics, diag.hpp), reads /proc/self/task/TID/syscall
// of each KLT that runs a fiber (openat, read, close: raw system calls), and
// writes with write(2) as a raw system call (sys_write.hpp) from a stack buffer.  Symbol names come from dladdr only when not called
// from the SIGQUIT handler (dladdr takes the loader's lock); there raw
// addresses are printed (resolve with addr2line or the gdb extension).
// A fiber's state may change while it is printed; a backtrace of a fiber that
// starts running meanwhile may be torn, never a fault: the walk reads only
// inside the fiber's own stack mapping.  It must not race with
// fiber_shutdown, which frees the chunks.
//
// Backtraces: backtrace.cpp (frame 0 exact, then a stack scan, or a
// frame-pointer walk when built with FIBER_FRAME_POINTERS=ON).
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "fiber/detail/mutex.hpp"
#include "runtime.hpp"
#include "sys_write.hpp"

namespace fiber::detail {

namespace {

constexpr int kMaxFrames = 32;

class out_buf {
 public:
  explicit out_buf(int fd) noexcept : fd_(fd) {}
  ~out_buf() { flush(); }
  out_buf(const out_buf&) = delete;
  out_buf& operator=(const out_buf&) = delete;
  out_buf& s(const char* str) noexcept {
    while (str && *str) c(*str++);
    return *this;
  }
  out_buf& c(char ch) noexcept {
    if (n_ == sizeof buf_) flush();
    buf_[n_++] = ch;
    return *this;
  }
  out_buf& u(std::uint64_t v) noexcept {
    char t[24];
    int i = 0;
    do { t[i++] = static_cast<char>('0' + v % 10); v /= 10; } while (v);
    while (i) c(t[--i]);
    return *this;
  }
  out_buf& x(std::uint64_t v) noexcept {
    static const char kHex[] = "0123456789abcdef";
    s("0x");
    int i = 60;
    while (i > 0 && ((v >> i) & 0xF) == 0) i -= 4;
    for (; i >= 0; i -= 4) c(kHex[(v >> i) & 0xF]);
    return *this;
  }
  void flush() noexcept {
    std::size_t off = 0;
    while (off < n_) {
      ssize_t w = sys_write(fd_, buf_ + off, n_ - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    n_ = 0;
  }

 private:
  int fd_;
  std::size_t n_ = 0;
  char buf_[2048];
};

struct dump_ctx {
  out_buf* o;
  bool in_signal;
  std::uint32_t now;  // diag_now_units()
  std::ptrdiff_t join_off;  // offset of fcb::join in fcb, for join waits
};

void put_frame(dump_ctx& d, int i, std::uintptr_t pc) noexcept {
  out_buf& o = *d.o;
  o.s("    #").u(static_cast<unsigned>(i)).c(' ').x(pc);
  Dl_info info;
  if (!d.in_signal && dladdr(reinterpret_cast<void*>(pc - 1), &info)) {
    if (info.dli_sname) {
      o.c(' ').s(info.dli_sname).s("+").x(pc - reinterpret_cast<std::uintptr_t>(info.dli_saddr));
    } else if (info.dli_fname) {
      o.s(" (").s(info.dli_fname).s("+").x(pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase)).c(')');
    }
  }
  o.c('\n');
}

void backtrace(dump_ctx& d, const fcb& f) noexcept {
  std::uintptr_t pcs[kMaxFrames];
  bool scanned = false;
  int n = fiber_backtrace(f, pcs, kMaxFrames, &scanned);
  if (scanned && n > 1) d.o->s("    (frames above #0 found by a stack scan: backtrace.cpp)\n");
  for (int i = 0; i < n; ++i) put_frame(d, i, pcs[i]);
}

// Time in state from the state word's coarse units (diag.hpp), modulo 2^32
// units; nothing before the ticker's first tick (since 0) and nothing for a
// stamp read ahead of `now` (a transition that saw a newer clock).
void put_secs(out_buf& o, std::uint32_t now, std::uint32_t since) noexcept {
  const std::uint32_t age = now - since;  // modulo 2^32 units (52 days)
  if (now == 0 || since == 0 || age > (std::uint32_t{1} << 31)) return;
  std::uint64_t ms = (std::uint64_t{age} << kDiagUnitShift) / 1000000u;
  o.s(" for ").u(ms / 1000).c('.').u((ms / 100) % 10).c('s');
}

void put_wait(dump_ctx& d, wait_kind k, const void* obj) noexcept {
  out_buf& o = *d.o;
  o.s(" on ").s(wait_kind_name(k));
  if (obj) o.c(' ').x(reinterpret_cast<std::uintptr_t>(obj));
  if (k == wait_kind::mutex && obj) {
    std::uint64_t owner = static_cast<const basic_mutex<native_seam>*>(obj)->owner_hint();
    if (owner >> 63) o.s(" held by thread ").u(owner & ~(std::uint64_t{1} << 63));
    else if (owner) o.s(" held by fiber ").u(owner);
  } else if (k == wait_kind::join && obj) {
    auto* t = reinterpret_cast<const fcb*>(static_cast<const char*>(obj) - d.join_off);
    o.s(" of fiber ").u(t->diag.id_.load(std::memory_order_relaxed));  // relaxed: racy snapshot
  }
}

void dump_fiber(fcb& f, void* p) noexcept {
  dump_ctx& d = *static_cast<dump_ctx*>(p);
  d.join_off = reinterpret_cast<char*>(&f.join) - reinterpret_cast<char*>(&f);
  const std::uint64_t w = f.diag.word();  // acquire inside: the wait read below is this park's
  const fstate st = diag_state_of(w);
  if (st == fstate::free) return;
  out_buf& o = *d.o;
  char name[kNameMax];
  f.diag.copy_name(name);
  o.s("fiber ").u(f.diag.id_.load(std::memory_order_relaxed)).s(" \"").s(name).s("\" ").s(fstate_name(st));
  if (st == fstate::parked)
    put_wait(d, f.diag.kind_.load(std::memory_order_relaxed), f.diag.obj_.load(std::memory_order_relaxed));
  if (st == fstate::running) o.s(" klt ").u(__atomic_load_n(&f.last_klt, __ATOMIC_RELAXED));
  if (f.pinned.load()) o.s(" pinned");  // racy read of a queue-guarded flag: a hint
  put_secs(o, d.now, diag_since_of(w));
  o.c('\n');
  if (st == fstate::parked || st == fstate::runnable) backtrace(d, f);
}

void dump_os_waiter(const os_waiter_info& w, void* p) noexcept {
  if (!w.parked) return;
  dump_ctx& d = *static_cast<dump_ctx*>(p);
  d.o->s("thread ").u(static_cast<std::uint64_t>(w.tid)).s(" parked");
  put_wait(d, w.kind, w.obj);
  if (w.untimed) d.o->s(" untimed");
  d.o->c('\n');
}

// Where a KLT is in the kernel: the system call /proc/self/task/TID/syscall
// names ("running", "-1 ..." in user code, or "NR args... sp pc" while in
// a system call).  Raw system calls: async-signal-safe, and never the
// interposed read().  Names for the calls a stuck fiber is usually in.
const char* syscall_name(long nr) noexcept {
  switch (nr) {
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_readv: return "readv";
    case SYS_writev: return "writev";
    case SYS_pread64: return "pread64";
    case SYS_pwrite64: return "pwrite64";
    case SYS_openat: return "openat";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_select: return "select";
    case SYS_pselect6: return "pselect6";
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_futex: return "futex";
    case SYS_accept: return "accept";
    case SYS_accept4: return "accept4";
    case SYS_connect: return "connect";
    case SYS_recvfrom: return "recvfrom";
    case SYS_recvmsg: return "recvmsg";
    case SYS_sendto: return "sendto";
    case SYS_sendmsg: return "sendmsg";
    case SYS_wait4: return "wait4";
    case SYS_fsync: return "fsync";
    case SYS_fdatasync: return "fdatasync";
    case SYS_pause: return "pause";
    case SYS_flock: return "flock";
    case SYS_fcntl: return "fcntl";
    default: return nullptr;
  }
}

// Reads /proc/self/task/<tid><leaf> into buf (at most cap - 1 bytes);
// returns the count, or -1.  Raw system calls only: async-signal-safe (the
// SIGQUIT dump, the monitor).
long read_task_file(long tid, const char* leaf, char* buf, std::size_t cap) noexcept {
  if (tid <= 0) return -1;
  char path[48] = "/proc/self/task/";
  std::size_t n = std::strlen(path);
  char digits[24];
  int d = 0;
  for (unsigned long v = static_cast<unsigned long>(tid); v; v /= 10) digits[d++] = static_cast<char>('0' + v % 10);
  while (d) path[n++] = digits[--d];
  std::memcpy(path + n, leaf, std::strlen(leaf) + 1);
  long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long r = syscall(SYS_read, fd, buf, cap - 1);
  syscall(SYS_close, fd);
  return r;
}

// The system call thread `tid` is blocked in right now, from
// /proc/self/task/<tid>/syscall ("running", or "-1 ..." in user code: -1).
long kernel_syscall_of(long tid) noexcept {
  char buf[64];
  long r = read_task_file(tid, "/syscall", buf, sizeof buf);
  if (r <= 0 || buf[0] < '0' || buf[0] > '9') return -1;
  long nr = 0;
  for (long i = 0; i < r && buf[i] >= '0' && buf[i] <= '9'; ++i) nr = nr * 10 + (buf[i] - '0');
  return nr;
}

void put_kernel_wait(out_buf& o, long tid) noexcept {
  long nr = kernel_syscall_of(tid);
  if (nr < 0) return;
  o.s(" (in the kernel: system call ").u(static_cast<std::uint64_t>(nr));
  if (const char* name = syscall_name(nr)) o.c(' ').s(name);
  o.c(')');
}

void dump_klts(out_buf& o, runtime& rt) noexcept {
  for (unsigned i = 0, n = rt.klts_up(); i < n; ++i) {
    klt& k = rt.klts[i];
    o.s("klt ").u(i).c(' ');
    // A spare (monitor.hpp): on while a KLT is stalled, off (retiring) otherwise.
    if (i >= rt.nklts) o.s(rt.policy->retiring(i) ? "spare off, " : "spare on, ");
    fcb* cur = k.current;  // volatile: a racy snapshot
    if (cur) {
      o.s("running fiber ").u(cur->diag.id_.load(std::memory_order_relaxed));
      put_kernel_wait(o, k.tid.load(std::memory_order_relaxed));  // relaxed: snapshot
    }
    else if (k.idle.load(std::memory_order_relaxed)) o.s("idle");  // relaxed: snapshot
    else o.s("scheduling");
    o.s(", ticks ").u(k.ticks.load(std::memory_order_relaxed));
    o.s(" deferred ").u(k.deferred.load(std::memory_order_relaxed)).c('\n');
  }
}

std::atomic<bool> g_in_signal_dump{false};
bool g_sigquit_ours = false;  // written at init/shutdown only (under g_init_mu)

void on_sigquit(int) {
  g_in_signal_dump.store(true, std::memory_order_relaxed);  // relaxed: same thread
  out_buf o(2);
  o.s("SIGQUIT: fiber dump\n");
  o.flush();
  dump_write(2);
  _exit(2);  // Go's status for a SIGQUIT dump
}

}  // namespace

// Whether thread `tid` sleeps in the kernel right now: the state field of
// /proc/self/task/<tid>/stat is S (interruptible) or D (uninterruptible).
// A thread that loops on a system call that returns at once (sched_yield)
// is R, however little CPU a loaded machine gives it.  Async-signal-safe.
bool kernel_sleeping(long tid) noexcept {
  char buf[256];
  long r = read_task_file(tid, "/stat", buf, sizeof buf);
  if (r <= 0) return false;
  long close_paren = -1;  // the name may hold spaces and parentheses: the state follows the last ')'
  for (long i = 0; i < r; ++i)
    if (buf[i] == ')') close_paren = i;
  if (close_paren < 0 || close_paren + 2 >= r) return false;
  const char st = buf[close_paren + 2];
  return st == 'S' || st == 'D';
}

void dump_write(int fd) noexcept {
  runtime* rt = g_rt.load(std::memory_order_acquire);  // acquire: pairs with init
  out_buf o(fd);
  if (!rt) {
    o.s("fiber dump: no runtime\n");
    return;
  }
  dump_ctx d{&o, g_in_signal_dump.load(std::memory_order_relaxed), diag_now_units(), 0};
  if (!d.in_signal) module_table_refresh();  // dlopened modules since init
  o.s("fiber dump: pid ").u(static_cast<std::uint64_t>(getpid())).s(", ").u(rt->nklts).s(" KLTs, ");
  if (unsigned sp = rt->klts_up() - rt->nklts) o.u(sp).s(" spare KLTs, ");
  o.u(rt->live_fibers()).s(" live fibers\n");  // a snapshot
  slots_visit(dump_fiber, &d);
  os_waiters_visit(dump_os_waiter, &d);
  dump_klts(o, *rt);
}

void dump_install_sigquit() noexcept {
  struct sigaction cur;
  if (sigaction(SIGQUIT, nullptr, &cur) != 0) return;
  if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_sigquit) return;  // ours already
  if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) return;  // never replace a user's
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigquit;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGQUIT, &sa, nullptr) == 0) g_sigquit_ours = true;
}

void dump_uninstall_sigquit() noexcept {
  if (!g_sigquit_ours) return;
  struct sigaction cur;
  if (sigaction(SIGQUIT, nullptr, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
      cur.sa_handler == on_sigquit)
    signal(SIGQUIT, SIG_DFL);
  g_sigquit_ours = false;
}

}  // namespace fiber::detail

extern "C" int fiber_dump(int fd) {
  if (fd < 0) return EINVAL;
  if (!fiber::detail::g_rt.load(std::memory_order_acquire)) return EINVAL;  // acquire: pairs with init
  fiber::detail::dump_write(fd);
  return 0;
}
