// core/src/native_seam.cpp - the native seam's out-of-line half
// (seam_native.hpp): futex waits, the clock, preemption sections, and the
// park protocol's blocking side for fibers (switch to the next fiber; the
// scheduler commits, I-P5) and for OS threads (a futex on the parker word,
// with a type-stable parker per thread, I-P4).  What the deadlock detector
// and the dump read about blocked OS threads is kept here too.
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "real_symbol.hpp"
#include "runtime.hpp"
#include "timers.hpp"
#include "trace.hpp"

namespace fiber::detail {


// libc's syscall() itself (real_symbol.hpp), not libfiber's interposer: the
// runtime's own waits must reach the kernel, never the fiber path.
static long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val,
                  const struct timespec* ts) noexcept {
  return real_syscall(SYS_futex, reinterpret_cast<long>(w), op, val, reinterpret_cast<long>(ts), 0,
                      FUTEX_BITSET_MATCH_ANY);
}

void native_seam::os_wait(native_atomic<std::uint32_t>& w, std::uint32_t expected,
                          std::uint64_t deadline) noexcept {
  struct timespec ts;
  const struct timespec* tsp = nullptr;
  if (deadline != kNoDeadline) {
    ts.tv_sec = static_cast<time_t>(deadline / 1000000000u);
    ts.tv_nsec = static_cast<long>(deadline % 1000000000u);
    tsp = &ts;
  }
  // Absolute CLOCK_MONOTONIC timeout (FUTEX_WAIT_BITSET without CLOCK_REALTIME).
  futex(&w.raw(), FUTEX_WAIT_BITSET_PRIVATE, expected, tsp);
}

std::uint32_t native_seam::os_wake(native_atomic<std::uint32_t>& w, std::uint32_t count) noexcept {
  long r = futex(&w.raw(), FUTEX_WAKE_PRIVATE, count, nullptr);
  return r > 0 ? static_cast<std::uint32_t>(r) : 0;
}

// The kernel's, never a fiber yield (libfiber's sched_yield interposer): the
// callers spin in runtime code, preemption disabled.
void native_seam::os_yield() noexcept { syscall(SYS_sched_yield); }

std::uint64_t native_seam::now_ns() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void native_seam::preempt_disable() noexcept {
  if (fcb* f = current_fiber()) f->gate.disable();
}

void native_seam::preempt_enable() noexcept {
  fcb* f = current_fiber();
  // I5, I-G2: a tick that was refused meanwhile is taken now, at a safe point.
  if (f && f->gate.enable()) switch_out(klt_action::yield);
}

// OS threads' parkers: type-stable (I-P4), recycled through a free list.
namespace {
struct os_parker_node {
  parker p;
  os_parker_node* next = nullptr;  // free list, guarded by g_os_parkers_lock
  // Diagnostics (dump.cpp, deadlock.cpp): written by the owning thread,
  // read racily; the node is never freed, so the registry below is safe.
  std::atomic<os_parker_node*> all_next{nullptr};  // immutable once published
  std::atomic<long> tid{0};
  std::atomic<bool> untimed{false};
  std::atomic<wait_kind> kind{wait_kind::none};
  std::atomic<const void*> obj{nullptr};
};
spinlock g_os_parkers_lock;
os_parker_node* g_os_parkers_free = nullptr;  // guarded by g_os_parkers_lock
std::atomic<os_parker_node*> g_os_parkers_all{nullptr};  // every node ever made (push-only)
std::atomic<std::uint64_t> g_os_blocks{0};               // OS park attempts and returns (detector progress)

void register_node(os_parker_node* n) noexcept {
  os_parker_node* h = g_os_parkers_all.load(std::memory_order_relaxed);  // relaxed: the CAS decides
  do {
    n->all_next.store(h, std::memory_order_relaxed);  // relaxed: published by the CAS below
    // release: a visitor that loads the new head (acquire) sees the node's fields.
  } while (!g_os_parkers_all.compare_exchange_weak(h, n, std::memory_order_release,
                                                   std::memory_order_relaxed));
}

struct os_parker_holder {
  os_parker_node* n = nullptr;
  ~os_parker_holder() {
    if (!n) return;
    lock_guard<spinlock> g(g_os_parkers_lock);
    n->next = g_os_parkers_free;
    g_os_parkers_free = n;
  }
  parker& get() {
    if (!n) {
      {
        lock_guard<spinlock> g(g_os_parkers_lock);
        n = g_os_parkers_free;
        if (n) g_os_parkers_free = n->next;
      }
      if (!n) {
        n = new os_parker_node;  // never freed: I-P4
        register_node(n);
      }
      n->tid.store(static_cast<long>(syscall(SYS_gettid)), std::memory_order_relaxed);  // relaxed: diag
    }
    return n->p;
  }
};
thread_local os_parker_holder tls_os_parker;

// The node of an OS thread's parker; only its owner thread calls this.
os_parker_node* os_node_of(parker& p) noexcept {
  os_parker_node* n = tls_os_parker.n;
  FIBER_ASSERT(n && &n->p == &p, "an OS thread's parker that is not its own");
  (void)p;
  return n;
}
thread_local std::uint64_t tls_os_id = 0;
}  // namespace

native_seam::parker_type& native_seam::current_parker() noexcept {
  if (fcb* f = current_fiber()) return f->park;
  return tls_os_parker.get();
}

// Out of line, so that the fiber path of note_wait needs no stack frame
// (papers/results/icount-diag.md: the frame was half its cost).
__attribute__((noinline)) static void note_wait_os(parker& p, wait_kind kind, const void* obj) noexcept {
  os_parker_node* n = os_node_of(p);
  n->kind.store(kind, std::memory_order_relaxed);  // relaxed: diagnostics
  n->obj.store(obj, std::memory_order_relaxed);
}

void native_seam::note_wait(parker_type& p, wait_kind kind, const void* obj) noexcept {
  if (p.owner) {
    static_cast<fcb*>(p.owner)->diag.note_wait(kind, obj);  // diag.hpp
    return;
  }
  note_wait_os(p, kind, obj);
}

void os_waiters_visit(void (*fn)(const os_waiter_info&, void*), void* ctx) noexcept {
  // acquire: pairs with register_node's release CAS.
  for (os_parker_node* n = g_os_parkers_all.load(std::memory_order_acquire); n;
       n = n->all_next.load(std::memory_order_relaxed)) {  // relaxed: immutable once published
    os_waiter_info w;
    w.tid = n->tid.load(std::memory_order_relaxed);  // relaxed: racy snapshot (diag)
    w.parked = n->p.is_parked();                     // acquire inside: pairs with try_commit()
    w.untimed = n->untimed.load(std::memory_order_relaxed);
    w.kind = n->kind.load(std::memory_order_relaxed);
    w.obj = n->obj.load(std::memory_order_relaxed);
    fn(w, ctx);
  }
}

std::uint64_t os_blocks() noexcept {
  return g_os_blocks.load(std::memory_order_acquire);  // acquire: pairs with os_block's release add
}

// On every mutex lock and unlock (mutex.hpp): one out-of-line call
// (this_klt, never cached across a switch), not two.
std::uint64_t native_seam::self_id() noexcept {
  if (klt* k = this_klt()) {
    if (fcb* f = k->current) return f->id;
  }
  if (tls_os_id == 0)
    tls_os_id = (std::uint64_t{1} << 63) | static_cast<std::uint64_t>(syscall(SYS_gettid));
  return tls_os_id;
}

static void os_block(parker& p, std::uint64_t deadline) noexcept {
  os_parker_node* n = os_node_of(p);
  n->untimed.store(deadline == kNoDeadline, std::memory_order_relaxed);  // relaxed: ordered by the add
  // release, before the commit: a detector that sees this thread parked
  // (acquire load of its word after the commit) has seen this count move.
  g_os_blocks.fetch_add(1, std::memory_order_release);
  if (!p.try_commit()) return;  // I-P1
  while (p.word().load(mo::acquire) == parker::kParked) {  // acquire: pairs with unpark()
    if (deadline != kNoDeadline && native_seam::now_ns() >= deadline) break;
    native_seam::os_wait(p.word(), parker::kParked, deadline);
  }
  p.finish();
  // The return counts too (release: as above).  A woken OS thread may leave
  // the runtime and exit without parking again; without this count two
  // quiet checks whose readings straddled its wake-up (parked when one
  // reading counted the waiters, gone from the thread count at the next)
  // would see no progress (deadlock_rules.hpp rule 1; found by
  // Deadlock.RulesSoundAndCompleteOnSimulatedPrograms).
  g_os_blocks.fetch_add(1, std::memory_order_release);
}

void native_seam::block(parker_type& p, std::uint64_t deadline) noexcept {
  fcb* f = current_fiber();
  if (!f || &f->park != &p) {
    FIBER_ASSERT(f == nullptr, "a fiber blocked on a parker that is not its own");
    os_block(p, deadline);
    return;
  }
  if (deadline != kNoDeadline) {
    if (now_ns() >= deadline) return;
    timer_add(f, deadline);  // expiry unparks f (I6)
  }
  switch_out(klt_action::park);  // the scheduler commits (I-P5)
  if (deadline != kNoDeadline) timer_cancel(f);
  p.finish();
}

void native_seam::wake(parker_type& p) noexcept {
  if (p.owner) {
    fcb* f = static_cast<fcb*>(p.owner);  // one read: the diag store below may alias it
    if (trace_wake(f)) return;  // trace.hpp; true only under test knob 17 (a planted defect)
    f->diag.move(fstate::parked, fstate::runnable);  // diag.hpp
    make_runnable(f);
  } else {
    os_wake(p.word(), 1);
  }
}

}  // namespace fiber::detail

// ---- mutex spinning (mutex.hpp, Seam::spin_useful) --------------------------
namespace fiber::detail {

// Only fibers spin: an OS thread could race fiber_shutdown's delete of the
// runtime, a KLT cannot (the runtime outlives its KLTs).  A fiber owner is
// running iff some KLT's `running` names it (sched.cpp install() keeps it
// current at every switch); our own KLT runs us, so a match is always
// another KLT.  An OS-thread owner (bit 63) is assumed to be on a CPU: the
// spin is bounded either way.
bool native_seam::spin_useful(std::uint64_t owner) noexcept {
  if (this_klt() == nullptr) return false;  // an OS thread
  if (knobs.mutex_no_spin.load(std::memory_order_relaxed)) return false;  // relaxed: test knob
  runtime* rt = g_rt.load(std::memory_order_relaxed);  // relaxed: set before any KLT started
  if (rt == nullptr || rt->nklts < 2) return false;     // never on one KLT
  if (owner == 0 || (owner >> 63) != 0) return true;     // between owners (transient), or an OS thread
  for (unsigned i = 0, n = rt->klts_up(); i < n; ++i)
    if (rt->klts[i].running.load(std::memory_order_relaxed) == owner) return true;  // relaxed: a hint
  return false;  // parked, queued or preempted: spinning cannot help
}

}  // namespace fiber::detail
