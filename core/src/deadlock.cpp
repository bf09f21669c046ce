// core/src/deadlock.cpp - deadlock detection, and the diag ticker that runs it.
//
// The ticker (diag_start/diag_stop) is a thread of its own rather than a duty
// of the monitor (monitor.cpp): the monitor sleeps without a timeout once
// every KLT is idle, which is exactly when rule 1 below must keep looking.
// The ticker also advances the coarse clock every kDiagPeriodMs (diag_clock_set, diag.hpp).
//
// Two rules, checked every period (kDiagPeriodMs = 100 ms; longer when a check
// takes more than 1/20 of it, next_wait_ns: the detector uses at most 5 % of a
// CPU).  The decision is
// fiber/detail/deadlock_rules.hpp (dl_detector), shared with the property
// test proptests/prop_deadlock.cpp; this file is its source of readings of
// the live runtime (native_src) and the reports.
//
// 1. All asleep (Go's "all goroutines are asleep").  A snapshot is *quiet*
//    when every KLT sleeps idle, no run queue holds a fiber, no timer is
//    armed, and every thread of the process other than the KLTs and the
//    runtime's own threads is an OS thread parked in the runtime without a
//    deadline (counted against /proc/self/stat's thread count, so a thread
//    the runtime does not know about - it might post a semaphore - vetoes).
//    Reported when two consecutive snapshots are quiet and the progress
//    counters (fiber switches, KLT idle sleeps, OS-thread park attempts and returns, live
//    fibers) read before the first equal those read after the second: then
//    nobody ran, woke, slept or blocked anew during the whole interval, every
//    party was passive at its read, and only an active party can wake one.
//    Reported within 2-3 periods (<= 0.3 s) of the last party falling asleep.
// 2. Waits-for cycles among fiber mutexes and joins, even while other fibers
//    run: from each fiber parked on a mutex (edge to the owner, I-M4) or a join
//    (edge to the joined fiber), follow edges while the next fiber is parked
//    the same way; back at the start is a cycle.  Confirmed before it is
//    reported: after the walk every edge is read again, then every member's
//    state word (diag.hpp: state, transition count, time) and wait again;
//    unchanged means each member stayed parked in the same untimed wait from
//    its first read to its last (every transition bumps the word's count),
//    so no member could release a mutex or
//    exit while the edges were re-read: the cycle existed at one instant and
//    none of its waits can end.  Reported once per cycle, within kCycleEvery
//    periods (0.3 s): the scan reads every control block, so it is rarer.
//    Cycles through OS threads are left to rule 1.
//
// Reports: rule 1 prints "fiber: all fibers are asleep - deadlock!", the
// dump, and exits with status 2.  Rule 2 prints "fiber: deadlock cycle: ..."
// and the dump and the program goes on.  FIBER_DEADLOCK=0 disables both;
// FIBER_DEADLOCK=report makes rule 1 print without exiting.
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "fiber/detail/deadlock_rules.hpp"
#include "fiber/detail/mutex.hpp"
#include "offload.hpp"
#include "poller.hpp"
#include "runtime.hpp"
#include "sys_write.hpp"

namespace fiber::detail {

namespace {

long process_threads() noexcept {  // field 20 of /proc/self/stat; -1 if unreadable
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (!p) return -1;
  for (int field = 2; field < 20; ++field) {  // p is at the end of field 2
    p = std::strchr(p + 1, ' ');
    if (!p) return -1;
  }
  return std::strtol(p + 1, nullptr, 10);
}

void report_cycle(const dl_member<fcb*>* ms, int n) noexcept;

// The readings of the live runtime the rules ask for (deadlock_rules.hpp).
// Every read is a racy relaxed snapshot: the rules confirm (see there).
struct native_src {
  runtime& rt;
  using handle = fcb*;
  static handle none() noexcept { return nullptr; }

  dl_progress progress() noexcept {
    dl_progress p;
    for (unsigned i = 0, n = rt.klts_up(); i < n; ++i)
      p.switches += rt.klts[i].switches.load(std::memory_order_relaxed);  // relaxed: a counter, see top
    p.idle_sleeps = rt.stats.idle_sleeps.load(std::memory_order_relaxed);  // relaxed: as above
    p.os_blocks = os_blocks();
    p.live = rt.live_fibers();
    return p;
  }
  unsigned nklts() const noexcept { return rt.klts_up(); }  // spares started too (monitor.hpp)
  bool klt_idle(unsigned k) noexcept {
    return rt.klts[k].idle.load(std::memory_order_acquire);  // acquire: pairs with native_env::sleep (sched.cpp)
  }
  bool has_work() noexcept { return rt.has_work(); }
  bool timer_armed() noexcept {
    return rt.next_deadline.load(std::memory_order_relaxed) != kNoDeadline;  // relaxed: confirmed by progress
  }
  void os_waiters(long* untimed, bool* timed) noexcept {
    struct count { long untimed = 0; bool timed = false; } c;
    os_waiters_visit(
        [](const os_waiter_info& w, void* p) noexcept {
          auto& cc = *static_cast<count*>(p);
          if (!w.parked) return;
          if (w.untimed) ++cc.untimed; else cc.timed = true;
        },
        &c);
    *untimed = c.untimed;
    *timed = c.timed;
  }
  std::uint64_t live() noexcept {
    return rt.live_fibers();  // a snapshot, confirmed by the progress counters
  }
  // A parked fiber waiting for a descriptor: only the world outside can wake
  // it, so nobody is deadlocked (the "no pending I/O").  A walk over
  // the slots, only when every KLT is idle (dl_quiet tests them first).
  bool io_waiting() noexcept {
    bool any = false;
    slots_visit([](fcb& f, void* p) noexcept {
      if (f.diag.state() == fstate::parked &&
          f.diag.kind_.load(std::memory_order_relaxed) == wait_kind::io)  // relaxed: confirmed by progress
        *static_cast<bool*>(p) = true;
    }, &any);
    return any;
  }
  long internal_threads() noexcept {
    // The poller (poller.hpp) and the offload pool (offload.hpp) outlive
    // runtimes, so they are not in rt's census.  A fiber waiting for a pool
    // thread is parked with kind io (io_waiting above vetoes the verdict).
    return static_cast<long>(rt.internal_threads.load(std::memory_order_relaxed))  // relaxed: a census
           + io_poller_threads() + offload_threads();
  }
  long process_threads() noexcept { return fiber::detail::process_threads(); }
  bool skip_thread_check() noexcept {
    return knobs.deadlock_no_thread_check.load(std::memory_order_relaxed);  // relaxed: planted bug (tests)
  }

  void each_fiber(void (*fn)(fcb*, void*), void* ctx) noexcept {
    struct fwd { void (*fn)(fcb*, void*); void* ctx; } w{fn, ctx};
    slots_visit([](fcb& f, void* p) noexcept {
      auto& ww = *static_cast<fwd*>(p);
      ww.fn(&f, ww.ctx);
    }, &w);
  }
  bool read(fcb* f, dl_member<fcb*>* m) noexcept {
    const std::uint64_t w = f->diag.word();  // acquire inside: the wait below is this park's
    if (diag_state_of(w) != fstate::parked) return false;
    m->f = f;
    m->stamp = w;
    m->kind = f->diag.kind_.load(std::memory_order_relaxed);  // relaxed: after word()'s acquire; re-read to confirm
    m->obj = f->diag.obj_.load(std::memory_order_relaxed);    // relaxed: as above
    return true;
  }
  // The fiber m waits for, or nullptr: a join's target, a mutex's owner (I-M4).
  fcb* blocker(const dl_member<fcb*>& m) noexcept {
    if (!m.obj) return nullptr;
    if (m.kind == wait_kind::join) {
      const std::ptrdiff_t off = reinterpret_cast<char*>(&m.f->join) - reinterpret_cast<char*>(m.f);
      return reinterpret_cast<fcb*>(const_cast<char*>(static_cast<const char*>(m.obj)) - off);
    }
    if (m.kind != wait_kind::mutex) return nullptr;
    std::uint64_t owner = static_cast<const basic_mutex<native_seam>*>(m.obj)->owner_hint();
    if (owner == 0 || (owner >> 63)) return nullptr;  // free, or an OS thread (rule 1)
    fcb* f = slot_lookup(owner);
    return f && f->diag.id_.load(std::memory_order_relaxed) == owner ? f : nullptr;  // relaxed: confirmed
  }
  std::uint64_t id(fcb* f) noexcept {
    return f->diag.id_.load(std::memory_order_relaxed);  // relaxed: confirmed by the rules
  }
  void report_cycle(const dl_member<fcb*>* ms, int n) noexcept { fiber::detail::report_cycle(ms, n); }
};

void put(const char* s) noexcept {
  ssize_t r = sys_write(2, s, std::strlen(s));
  (void)r;
}

void put_u(std::uint64_t v) noexcept {
  char t[24];
  int i = 23;
  t[i] = '\0';
  do { t[--i] = static_cast<char>('0' + v % 10); v /= 10; } while (v);
  put(t + i);
}

void put_fiber(fcb* f) noexcept {
  char name[kNameMax];
  f->diag.copy_name(name);
  put("fiber ");
  put_u(f->diag.id_.load(std::memory_order_relaxed));  // relaxed: a report
  put(" \"");
  put(name);
  put("\"");
}

void put_hex(const void* p) noexcept {
  char hex[24];
  auto v = reinterpret_cast<std::uintptr_t>(p);
  int k = 0;
  hex[k++] = '0';
  hex[k++] = 'x';
  for (int s = 60; s >= 0; s -= 4) {
    unsigned d = (v >> s) & 0xF;
    if (k == 2 && d == 0 && s) continue;
    hex[k++] = "0123456789abcdef"[d];
  }
  hex[k] = '\0';
  put(hex);
}

// Set when a check printed the dump with a cycle, so that an "all asleep"
// verdict of the same check does not print the same dump twice.  Only the
// ticker thread runs checks.
bool g_dumped_this_check = false;

void report_cycle(const dl_member<fcb*>* ms, int n) noexcept {
  put("fiber: deadlock cycle: ");
  for (int i = 0; i < n; ++i) {
    put_fiber(ms[i].f);
    if (ms[i].kind == wait_kind::mutex) {
      put(" waits on mutex ");
      put_hex(ms[i].obj);
      put(" held by ");
    } else {
      put(" joins ");
    }
    put_fiber(ms[(i + 1) % n].f);
    put(i + 1 < n ? "; " : "\n");
  }
  dump_write(2);
  g_dumped_this_check = true;
}

// ---- the ticker --------------------------------------------------------------

struct ticker {
  pthread_t thread{};
  native_atomic<std::uint32_t> stop{0};
  runtime* rt = nullptr;
  int mode = 1;  // 0 off, 1 on (rule 1 exits), 2 report only
  dl_detector det;
};
ticker g_ticker;

std::uint64_t mono_ns() noexcept { return native_seam::now_ns(); }

}  // namespace

// One detector step, every kDiagPeriodMs from the ticker.
void deadlock_check(runtime& rt) noexcept {
  ticker& t = g_ticker;
  if (t.mode == 0) return;
  native_src s{rt};
  g_dumped_this_check = false;
  if (t.det.check(s) != dl_detector::verdict::asleep) return;
  put("fiber: all fibers are asleep - deadlock!\n");
  if (!g_dumped_this_check) dump_write(2);  // else: the cycle's dump, just above
  if (t.mode == 1) _exit(2);  // report mode: once per quiet spell (dl_detector)
}

// The wait before the next check: the period, or kPaceFactor times what this
// check took, whichever is longer, so the detector never takes more than
// 1/kPaceFactor of a CPU (a cycle scan reads every fiber: with a million
// parked fibers a scan takes tens of ms; the verdict then comes after two
// such paced checks instead of two periods).
constexpr std::uint64_t kPaceFactor = 20;
static std::uint64_t next_wait_ns(std::uint64_t took_ns) noexcept {
  std::uint64_t period = std::uint64_t{kDiagPeriodMs} * 1000000u;
  return took_ns * kPaceFactor > period ? took_ns * kPaceFactor : period;  // from the check's start
}

static void* ticker_main(void*) {
  pthread_setname_np(pthread_self(), "fiber-diag");
  ticker& t = g_ticker;
  for (;;) {
    std::uint64_t now = mono_ns();
    diag_clock_set(now);  // the coarse clock of the state words (diag.hpp)
    if (t.stop.load(mo::acquire)) break;  // acquire: pairs with diag_stop's release
    deadlock_check(*t.rt);
    native_seam::os_wait(t.stop, 0, now + next_wait_ns(mono_ns() - now));
  }
  return nullptr;
}

void diag_start(runtime& rt) noexcept {
  ticker& t = g_ticker;
  const char* e = std::getenv("FIBER_DEADLOCK");
  t.mode = !e ? 1 : std::strcmp(e, "0") == 0 ? 0 : std::strcmp(e, "report") == 0 ? 2 : 1;
  t.rt = &rt;
  t.det = dl_detector{};
  t.stop.store(0, mo::relaxed);  // relaxed: published by pthread_create
  diag_clock_set(mono_ns());  // the coarse clock of the state words (diag.hpp)
  module_table_refresh();  // for SIGQUIT dumps, which cannot call dl_iterate_phdr
  rt.internal_threads.fetch_add(1, std::memory_order_relaxed);  // relaxed: published by pthread_create
  if (pthread_create(&t.thread, nullptr, ticker_main, nullptr) != 0) {
    rt.internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: no ticker
    t.rt = nullptr;
  }
}

void diag_stop(runtime& rt) noexcept {
  ticker& t = g_ticker;
  if (t.rt == &rt) {
    t.stop.store(1, mo::release);  // release: pairs with ticker_main's acquire
    native_seam::os_wake(t.stop, 1);
    pthread_join(t.thread, nullptr);
    rt.internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: ticker gone
    t.rt = nullptr;
  }
  dump_uninstall_sigquit();
}

}  // namespace fiber::detail
