// core/src/deadlock.cpp - deadlock detection, and the diag ticker that runs it.
//
// The ticker (diag_start/diag_stop) is a thread of its own rather than a duty
// of the monitor (monitor.cpp): the monitor sleeps without a timeout once
// every KLT is idle, which is exactly when rule 1 below must keep looking.
// The ticker also advances g_diag_now every kDiagPeriodMs (diag.hpp).
//
// Two rules, checked every period (kDiagPeriodMs = 100 ms):
//
// 1. All asleep (Go's "all goroutines are asleep").  A snapshot is *quiet*
//    when every KLT sleeps idle, no run queue holds a fiber, no timer is
//    armed, and every thread of the process other than the KLTs and the
//    runtime's own threads is an OS thread parked in the runtime without a
//    deadline (counted against /proc/self/stat's thread count, so a thread
//    the runtime does not know about - it might post a semaphore - vetoes).
//    Reported when two consecutive snapshots are quiet and the progress
//    counters (fiber switches, KLT idle sleeps, OS-thread park attempts, live
//    fibers) read before the first equal those read after the second: then
//    nobody ran, woke, slept or blocked anew during the whole interval, every
//    party was passive at its read, and only an active party can wake one.
//    Reported within 2-3 periods (<= 0.3 s) of the last party falling asleep.
// 2. Waits-for cycles among fiber mutexes and joins, even while other fibers
//    run: from each fiber parked on a mutex (edge to the owner, I-M4) or a join
//    (edge to the joined fiber), follow edges while the next fiber is parked
//    the same way; back at the start is a cycle.  Confirmed before it is
//    reported: after the walk every edge is read again, then every member's
//    (state, waits_, wakes_) again; unchanged means each member stayed parked
//    in the same untimed wait from its first read to its last (a wake bumps
//    wakes_, a new wait bumps waits_), so no member could release a mutex or
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

#include "fiber/detail/mutex.hpp"
#include "runtime.hpp"

namespace fiber::detail {

namespace {

constexpr int kMaxCycle = 16;
// The cycle scan reads every control block (O(fibers), a few ms per million
// fibers), so it runs every kCycleEvery periods only.
constexpr unsigned kCycleEvery = 3;
constexpr int kMaxReported = 64;

struct progress {
  std::uint64_t switches = 0, idle_sleeps = 0, os_blocks = 0, live = 0;
  bool operator==(const progress& o) const noexcept {
    return switches == o.switches && idle_sleeps == o.idle_sleeps && os_blocks == o.os_blocks &&
           live == o.live;
  }
};

progress read_progress(runtime& rt) noexcept {
  progress p;
  for (unsigned i = 0; i < rt.nklts; ++i)
    p.switches += rt.klts[i].switches.load(std::memory_order_relaxed);  // relaxed: a counter, see top
  p.idle_sleeps = rt.stats.idle_sleeps.load(std::memory_order_relaxed);  // relaxed: as above
  p.os_blocks = os_blocks();
  p.live = rt.live.load(std::memory_order_relaxed);  // relaxed: as above
  return p;
}

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

struct os_count {
  long parked_untimed = 0;
  bool timed = false;
};

bool quiet(runtime& rt) noexcept {
  for (unsigned i = 0; i < rt.nklts; ++i)
    if (!rt.klts[i].idle.load(std::memory_order_acquire)) return false;  // acquire: pairs with idle_wait
  if (rt.has_work()) return false;
  if (rt.next_deadline.load(std::memory_order_relaxed) != kNoDeadline) return false;  // relaxed: re-read
  os_count c;
  os_waiters_visit(
      [](const os_waiter_info& w, void* p) noexcept {
        auto& cc = *static_cast<os_count*>(p);
        if (!w.parked) return;
        if (w.untimed) ++cc.parked_untimed; else cc.timed = true;
      },
      &c);
  if (c.timed) return false;
  if (rt.live.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(c.parked_untimed) == 0)
    return false;  // relaxed: confirmed by the progress counters
  long expect = static_cast<long>(rt.nklts) +
                static_cast<long>(rt.internal_threads.load(std::memory_order_relaxed)) + c.parked_untimed;
  if (knobs.deadlock_no_thread_check.load(std::memory_order_relaxed)) return true;  // planted bug (tests)
  return process_threads() == expect;
}

// ---- rule 2: waits-for cycles -----------------------------------------------

struct member {
  fcb* f;
  std::uint32_t waits, wakes;
  wait_kind kind;
  const void* obj;
};

struct cycle_ctx {
  runtime* rt;
  std::ptrdiff_t join_off;
  std::uint64_t reported[kMaxReported];  // the smallest member id of each reported cycle
  int nreported;
  bool report_only;
};

bool snap(fcb* f, member* m) noexcept {
  if (f->diag.state() != fstate::parked) return false;
  m->f = f;
  m->waits = f->diag.waits_.load(std::memory_order_relaxed);  // relaxed: re-read to confirm
  m->wakes = f->diag.wakes_.load(std::memory_order_relaxed);
  m->kind = f->diag.kind_.load(std::memory_order_relaxed);
  m->obj = f->diag.obj_.load(std::memory_order_relaxed);
  return m->kind == wait_kind::mutex || m->kind == wait_kind::join;
}

// The fiber m waits for, or nullptr.
fcb* blocker(const member& m, std::ptrdiff_t join_off) noexcept {
  if (!m.obj) return nullptr;
  if (m.kind == wait_kind::join)
    return reinterpret_cast<fcb*>(const_cast<char*>(static_cast<const char*>(m.obj)) - join_off);
  std::uint64_t owner = static_cast<const basic_mutex<native_seam>*>(m.obj)->owner_hint();
  if (owner == 0 || (owner >> 63)) return nullptr;  // free, or an OS thread (rule 1)
  fcb* f = slot_lookup(owner);
  return f && f->diag.id_.load(std::memory_order_relaxed) == owner ? f : nullptr;  // relaxed: confirmed
}

bool same(const member& m) noexcept {
  member again;
  return snap(m.f, &again) && again.waits == m.waits && again.wakes == m.wakes &&
         again.kind == m.kind && again.obj == m.obj;
}

void report_cycle(cycle_ctx& c, const member* ms, int n) noexcept;

void find_cycle_from(fcb& start, void* p) noexcept {
  auto& c = *static_cast<cycle_ctx*>(p);
  c.join_off = reinterpret_cast<char*>(&start.join) - reinterpret_cast<char*>(&start);
  member ms[kMaxCycle];
  if (!snap(&start, &ms[0])) return;
  int n = 1;
  for (;;) {
    fcb* next = blocker(ms[n - 1], c.join_off);
    if (!next) return;
    if (next == &start) break;
    for (int i = 1; i < n; ++i)
      if (ms[i].f == next) return;  // a cycle not through start: found from one of its members
    if (n == kMaxCycle || !snap(next, &ms[n])) return;
    ++n;
  }
  std::uint64_t min_id = ~std::uint64_t{0};
  for (int i = 0; i < n; ++i) {
    std::uint64_t id = ms[i].f->diag.id_.load(std::memory_order_relaxed);  // relaxed: confirmed below
    if (id < min_id) min_id = id;
  }
  if (start.diag.id_.load(std::memory_order_relaxed) != min_id) return;  // report each cycle once
  for (int i = 0; i < c.nreported; ++i)
    if (c.reported[i] == min_id) return;
  for (int i = 0; i < n; ++i)  // confirm: edges again, then members again (see top)
    if (blocker(ms[i], c.join_off) != ms[(i + 1) % n].f) return;
  for (int i = 0; i < n; ++i)
    if (!same(ms[i])) return;
  if (c.nreported < kMaxReported) c.reported[c.nreported++] = min_id;
  report_cycle(c, ms, n);
}

void put(const char* s) noexcept {
  ssize_t r = write(2, s, std::strlen(s));
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

void report_cycle(cycle_ctx&, const member* ms, int n) noexcept {
  put("fiber: deadlock cycle: ");
  for (int i = 0; i < n; ++i) {
    put_fiber(ms[i].f);
    put(ms[i].kind == wait_kind::mutex ? " waits on mutex " : " joins ");
    if (ms[i].kind == wait_kind::mutex) {
      char hex[24];
      auto v = reinterpret_cast<std::uintptr_t>(ms[i].obj);
      int k = 0;
      hex[k++] = '0'; hex[k++] = 'x';
      for (int s = 60; s >= 0; s -= 4) {
        unsigned d = (v >> s) & 0xF;
        if (k == 2 && d == 0 && s) continue;
        hex[k++] = "0123456789abcdef"[d];
      }
      hex[k] = '\0';
      put(hex);
      put(" held by ");
    }
    put_fiber(ms[(i + 1) % n].f);
    put(i + 1 < n ? "; " : "\n");
  }
  dump_write(2);
}

// ---- the ticker --------------------------------------------------------------

struct ticker {
  pthread_t thread{};
  native_atomic<std::uint32_t> stop{0};
  runtime* rt = nullptr;
  int mode = 1;  // 0 off, 1 on (rule 1 exits), 2 report only
  bool have_prev = false;
  bool prev_quiet = false;
  progress prev_pre;
  cycle_ctx cycles{};
  unsigned tick = 0;
};
ticker g_ticker;

std::uint64_t mono_ns() noexcept { return native_seam::now_ns(); }

}  // namespace

// One detector step, every kDiagPeriodMs from the ticker.
void deadlock_check(runtime& rt) noexcept {
  ticker& t = g_ticker;
  if (t.mode == 0) return;
  progress pre = read_progress(rt);
  bool q = quiet(rt);
  progress post = read_progress(rt);
  t.cycles.rt = &rt;
  if (q && t.have_prev && t.prev_quiet && t.prev_pre == post) {
    slots_visit(find_cycle_from, &t.cycles);  // name the cycles too, if any
    put("fiber: all fibers are asleep - deadlock!\n");
    dump_write(2);
    if (t.mode == 1) _exit(2);
    t.have_prev = false;  // report mode: once per quiet spell
    return;
  }
  t.have_prev = true;
  t.prev_quiet = q;
  t.prev_pre = pre;
  if (++t.tick % kCycleEvery != 0) return;
  slots_visit(find_cycle_from, &t.cycles);
}

static void* ticker_main(void*) {
  pthread_setname_np(pthread_self(), "fiber-diag");
  ticker& t = g_ticker;
  for (;;) {
    std::uint64_t now = mono_ns();
    g_diag_now.ns.store(now, std::memory_order_relaxed);  // relaxed: a timestamp for humans
    if (t.stop.load(mo::acquire)) break;  // acquire: pairs with diag_stop's release
    deadlock_check(*t.rt);
    native_seam::os_wait(t.stop, 0, now + std::uint64_t{kDiagPeriodMs} * 1000000u);
  }
  return nullptr;
}

void diag_start(runtime& rt) noexcept {
  ticker& t = g_ticker;
  const char* e = std::getenv("FIBER_DEADLOCK");
  t.mode = !e ? 1 : std::strcmp(e, "0") == 0 ? 0 : std::strcmp(e, "report") == 0 ? 2 : 1;
  t.rt = &rt;
  t.have_prev = false;
  t.cycles = cycle_ctx{};
  t.stop.store(0, mo::relaxed);  // relaxed: published by pthread_create
  g_diag_now.ns.store(mono_ns(), std::memory_order_relaxed);  // relaxed: a timestamp
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
