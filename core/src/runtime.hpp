// core/src/runtime.hpp - the native runtime's internal types (not installed).
//
// Vocabulary
//   fiber    a user-level thread: a control block (fcb) plus a stack.
//   KLT      a kernel-level thread the runtime created (pthread on a stack the
//            runtime mapped).  Each runs a scheduler loop on its own stack.
//   run queue a FIFO of runnable fibers (policy.hpp): one per KLT + a global one.
//   park     a fiber gives up its KLT until someone unparks it (parker.hpp).
//   preempt  the tick handler makes a running fiber give up its KLT (preempt.cpp).
//
// Fiber states, owner and where the fiber is (Go's _Grunning...):
//   runnable  in exactly one run queue (I-R4); the queue's lock guards its links.
//   running   k->current of exactly one KLT; that KLT owns fcb and stack.
//   switching left its stack with k->prev/prev_action set (a direct switch
//             to the next fiber) or k->action set (a switch to the KLT's
//             scheduler context when nothing else is runnable); KLT k owns it
//             until whoever lands next acts on it in finish_prev (requeue,
//             commit the park, exit).
//   parked    parker kParked; owned by whoever's unpark() sees kParked (I-P2),
//             who hands it to the policy (on_wake).  Maybe also in the timer
//             heap (timed park), guarded by rt.timer_lock.
//   exited    off its stack; join_state decides who frees it (I-J2).
//   free      slot on the free list, stack kept for reuse.
// fcb::diag (diag.hpp) mirrors these states explicitly for fiber_dump, the
// deadlock detector and gdb; the scheduler never reads it.
//
// Invariants of the scheduler (cited as I1..I7 in sched.cpp/preempt.cpp):
//   I1 A fiber's stack is in use by at most one KLT at a time: a fiber becomes
//      visible to other KLTs (queued, committed parked, exited) only after its
//      KLT switched off its stack: the fiber or scheduler context that lands
//      next acts on k->prev_action / k->action (finish_prev, sched.cpp).
//   I2 k->current and k->action are touched only by KLT k itself (its fibers,
//      its scheduler and its tick handler).
//   I3 A fiber preempted by a tick resumes on the same KLT (pinned, I-R3);
//      fibers migrate only at voluntary runtime calls.
//   I4 errno and the C++ exception globals are per fiber: saved when a fiber
//      leaves its KLT, restored before it runs again.
//   I5 A fiber in a section (gate count > 0) is never preempted; a tick that
//      lands then is marked pending, honoured when the count returns to 0
//      (preempt_gate.hpp, I-G1..I-G3, model-checked in models/preempt.cpp).  Every
//      runtime entry point that touches KLT or scheduler state raises the count
//      (the runtime itself is never preempted), and so does every spinlock (I-S1).
//   I6 Timers expire under rt.timer_lock and unpark under it, so a cancel that
//      returns guarantees no expiry of that timer is in flight.
//   I7 Fibers created and not yet exited are counted per KLT (klt::live,
//      runtime::os_live; runtime::live_fibers sums them, live_count.hpp);
//      shutdown waits for the sum to be 0.
//   I8 A fiber's signal mask is its own (fcb::sigmask, written only by the
//      fiber: pthread_sigmask/sigprocmask in a fiber change it, signals.cpp).
//      The KLT running it has that mask for real (install() switches it when
//      it differs from klt::sigmask), except the preemption signal, which is
//      never blocked on a KLT, and glibc's internal signals.
//   I9 A fiber holding a libc lock taken through the interposers
//      (interpose_locks.cpp: pthread mutex, rwlock) is not preempted until it
//      releases it (one gate count per lock held, fcb::locks_held), and a
//      fiber that finds such a lock (or a semaphore, a condition) busy parks
//      in the parking lot (parking_lot.hpp), never in the kernel.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "diag.hpp"
#include "idle_poll.hpp"
#include "trace_types.hpp"
#include "fiber/detail/idle.hpp"
#include "fiber/detail/join.hpp"
#include "fiber/detail/klt_loop.hpp"
#include "fiber/detail/live_count.hpp"
#include "fiber/detail/parker.hpp"
#include "fiber/detail/policy.hpp"
#include "fiber/detail/preempt_gate.hpp"
#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"
#include "fiber/detail/timer_heap.hpp"
#include "fiber/fiber.h"

namespace fiber::detail {

using parker = basic_parker<native_seam>;
using spinlock = basic_spinlock<native_seam>;
using preempt_gate = basic_preempt_gate<native_seam>;

struct eh_globals {  // libstdc++'s __cxa_eh_globals
  void* caught;
  unsigned int uncaught;
};

struct fcb {
  // Context and queue links (I1, I-Q).
  void* sp = nullptr;
  native_var<fcb*> rq_next{nullptr};
  native_var<bool> pinned{false};
  native_var<std::size_t> rq_stamp{0};  // pinned in a local queue: its position (local_queue.hpp)
  parker park;
  join_state<native_seam> join;
  std::uint64_t id = 0;  // immutable while alive; join.id_ is the authority
  std::uint32_t slot = 0;
  std::uint32_t last_klt = 0;
  // Timer heap fields, guarded by rt.timer_lock (I6).
  std::uint64_t timer_deadline = 0;
  std::uint64_t timer_seq = 0;
  std::size_t timer_index = timer_heap<fcb>::kNotQueued;
  // Set at create.
  void* (*start)(void*) = nullptr;
  void* arg = nullptr;
  void* retval = nullptr;
  char* map_base = nullptr;  // guarded: guard page at map_base, stack above it;
  std::size_t map_size = 0;  // unguarded: canary at map_base (slots.cpp)
  std::size_t want_stack = 0;  // bytes asked for
  bool guarded = true;
  bool in_arena = false;  // carved from an arena: never unmapped alone (stacks.cpp)
  bool trimmed = false;   // free, pages below the top dropped (slots.cpp I-SC3); slot lock / owner
  // Its last preemption found no TLS address on its stack (tls_scan.cpp): it
  // may resume on another KLT (I-R3).  Written by the fiber on its KLT just
  // before it leaves, read by the same KLT's switch path.
  bool movable = false;
  std::uintptr_t low_sp = ~std::uintptr_t{0};  // lowest sp seen at a switch (act_on); owner KLT
  // Preempt count and pending flag: the running fiber and the tick handler
  // of its KLT (I5, preempt_gate.hpp I-G1..I-G3).
  preempt_gate gate;
  // Saved per-fiber thread state (I4).
  int saved_errno = 0;
  eh_globals saved_eh{nullptr, 0};
  std::uint64_t sigmask = 0;                 // I8: bit signo-1 blocked; set at create
  std::atomic<bool> sig_pending{false};      // a preemption signal held while blocked (I8)
  // Interposed libc locks (interpose_locks.cpp): how many this fiber holds,
  // each also one count of gate (I9).  Written only by the fiber; reset at create.
  std::uint32_t locks_held = 0;
  // Sanitizer fiber state.
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
  fcb* free_next = nullptr;  // guarded by rt.slot_lock
  // Explicit state, what it waits on, name (diag.hpp): diagnostics only.
  fiber_diag diag;
  trace_fiber tr;  // scheduling trace (trace.hpp): used only while tracing is on

  char* stack_lo() const noexcept { return map_base + (guarded ? kGuard : kCanaryBytes); }
  // An sp in the guard or less than a guard below it: a frame jumped past
  // stack_lo (stack clash, slots.cpp); reported as an overflow, never run on.
  bool sp_overflowed(std::uintptr_t at) const noexcept {
    auto lo = reinterpret_cast<std::uintptr_t>(stack_lo());
    return at < lo && at >= reinterpret_cast<std::uintptr_t>(map_base) - kGuard;
  }
  static constexpr std::size_t kGuard = FIBER_STACK_GUARD_SIZE;  // PROT_NONE below a guarded stack
  static constexpr std::size_t kCanaryBytes = 64;
  char* stack_hi() const noexcept { return map_base + map_size; }
  static std::size_t page_size() noexcept { return kPage; }
  static constexpr std::size_t kPage = 4096;  // checked against sysconf at init (lifecycle.cpp)
};

struct stats_counters {
  std::atomic<std::uint64_t> ticks{0}, preemptions{0}, deferred_count{0}, deferred_pc{0},
      deferred_stack{0}, idle_sleeps{0},  // switches: per KLT (klt::switches)
      pinned_tls{0};  // preemptions whose scan found a TLS address (tls_scan.cpp)
};

struct alignas(64) klt {
  unsigned index = 0;
  pthread_t thread{};
  void* sched_sp = nullptr;           // the scheduler context while a fiber runs (I2)
  fcb* volatile current = nullptr;    // I2; read by the tick handler
  klt_action action = klt_action::none;  // I2: what the fiber returning to the scheduler asked
  fcb* prev = nullptr;                    // I2: a fiber that switched directly to the next one
  klt_action prev_action = klt_action::none;  //     and what it asked (finish_prev, sched.cpp)
  trace_klt* trace = nullptr;  // scheduling trace (trace.hpp); nullptr: off.  Set before k starts
  timer_t timer{};
  bool has_timer = false;
  bool timer_armed = false;
  char* stack_map = nullptr;
  std::size_t stack_map_size = 0;
  char* altstack = nullptr;
  // Its thread-local storage: the static TLS blocks and the TCB at the top of
  // stack_map (tls_scan.cpp).  Set by the KLT when it starts.
  std::uintptr_t tls_lo = 0, tls_hi = 0;
  eh_globals* eh = nullptr;           // this KLT's __cxa_get_globals()
  std::uint64_t sigmask = 0;          // I8: the fiber mask this KLT has (I2: k only)
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
  std::atomic<std::uint64_t> switches{0};  // written by this KLT only (no RMW on the hot path)
  // I7: fibers created by fibers on this KLT, and fibers that exited on it
  // (fiber/detail/live_count.hpp LC1: this KLT writes them, anyone sums).
  live_count<native_seam> live;
  // Read racily by the monitor thread (monitor.hpp) and the diagnostics
  // (dump.cpp, deadlock.cpp); written by this KLT only (I2):
  std::atomic<std::uint64_t> steps{0};  // picks that switched nothing (steps + switches: monitor.hpp)
  std::atomic<bool> idle{false};        // sleeping in its idle sleep (klt_loop::idle) (no fiber, empty queues)
  std::atomic<std::uint64_t> running{0};  // id of `current` (0: none), for the monitor
  std::atomic<long> tid{0};               // kernel thread id (dump.cpp: where it is blocked)
  std::atomic<std::uint64_t> ticks{0};        // ticks that landed on a fiber (preempt.cpp)
  std::atomic<std::uint64_t> deferred{0};     // of which refused and owed
  // A spare KLT (index >= runtime::nklts, monitor.hpp) sleeps on this word
  // while it is off; the monitor bumps it to turn it on, shutdown to stop it.
  native_atomic<std::uint32_t> spare_gen{0};
};

using policy_t = sched_policy<native_seam, fcb>;

struct runtime {
  fiber_config_t cfg{};
  unsigned nklts = 0;   // the configured KLTs (slots 0 .. nklts-1)
  unsigned nspare = 0;  // spare slots reserved after them (monitor.hpp, policy.hpp I-R7)
  // Spare KLTs started so far (monitor thread only writes it, before the
  // thread exists: a census ahead of the thread, as internal_threads).
  std::atomic<unsigned> spares_up{0};
  int policy_kind = 0;  // FIBER_POLICY_*
  std::unique_ptr<klt[]> klts;
  std::unique_ptr<policy_t> policy;  // its options (runnext, migrate_preempted) fixed at init
  bool scan_preempted = false;  // FIBER_MIGRATE_SCAN: a preempted fiber moves unless tls_scan.cpp objects
  // The shared words below are written by every KLT; each group has a cache
  // line of its own, apart from the read-mostly fields above (on 2 KLTs the
  // live count's line, then shared with next_deadline, which every switch
  // reads, cost skynet a miss per switch; papers/results/stacks.md).
  alignas(64) idle_set<native_seam, idle_poll> idle;  // one idle KLT may sleep in the I/O poller (idle_poll.hpp)
  // Timers (I6).
  alignas(64) spinlock timer_lock;
  timer_heap<fcb> timers;                          // guarded by timer_lock
  std::atomic<std::uint64_t> next_deadline{kNoDeadline};  // written under timer_lock
  // Lifetime (I7).
  alignas(64) live_count<native_seam> os_live;  // fibers created by OS threads (I7, LC1)
  alignas(64) live_waiter<native_seam> shutdown_waiter{nullptr};  // LC4
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> started{0};
  std::atomic<unsigned> internal_threads{0};  // runtime threads that are not KLTs (diag ticker, monitor)
  alignas(64) stats_counters stats;  // the tick handlers write it

  void on_new(fcb* f, unsigned k) noexcept;  // a created fiber (sched.cpp: klt_loop::push)
  bool has_work() const noexcept { return policy->has_work_hint(); }  // anything queued anywhere
  // KLT slots with a thread: the configured ones and the spares started so
  // far.  acquire: pairs with the monitor's release, so a reader sees the
  // slot's fields initialised (index, idle).
  unsigned klts_up() const noexcept { return nklts + spares_up.load(std::memory_order_acquire); }
  std::uint64_t live_fibers() const noexcept;  // I7, below
};

// I7: the fibers alive (live_count.hpp LC3: exact for fiber_shutdown once
// OS threads can no longer create; a snapshot for everyone else).  Every
// slot: a spare never started counts 0.
inline std::uint64_t runtime::live_fibers() const noexcept {
  return live_sum<native_seam>(nklts + nspare, [this](unsigned i) -> const live_count<native_seam>& {
    return klts[i].live;
  }, os_live);
}

extern std::atomic<runtime*> g_rt;

// sched.cpp
klt* this_klt() noexcept;           // never cached across a switch (noinline)
fcb* current_fiber() noexcept;      // nullptr outside a fiber
void switch_out(klt_action a) noexcept;  // from a fiber: switch straight to the next runnable
                                         // fiber, or to the scheduler context if there is none
void* klt_main(void* arg);
void make_runnable(fcb* f) noexcept;    // after an unpark that owned the wake (I-P2)
// timers.hpp: timer_add, timer_cancel, process_timers (I6)
void fiber_entry(void* arg);
void klt_publish_self(klt* k) noexcept;

// lifecycle.cpp: an OS thread waking a parked fiber holds the call gate (L2, L4)
bool os_wake_enter() noexcept;
void os_wake_leave() noexcept;
bool start_klt(klt& k) noexcept;  // k's thread (klt_main) on a stack we map; false: EAGAIN

// OS threads that blocked in the runtime (native_seam.cpp), for dump and detector.
struct os_waiter_info {
  long tid;
  bool parked;    // committed and not yet woken
  bool untimed;   // no deadline: only another party can wake it
  wait_kind kind;
  const void* obj;
};
// Calls fn for every OS thread that ever blocked in the runtime.  Lock-free,
// no allocation (async-signal-safe); the entries are racy snapshots.
void os_waiters_visit(void (*fn)(const os_waiter_info&, void*), void* ctx) noexcept;
std::uint64_t os_blocks() noexcept;  // OS-thread park attempts and returns so far (detector's progress)

// diag.cpp / dump.cpp / deadlock.cpp
void diag_start(runtime& rt) noexcept;  // the diagnostics ticker (deadlock.cpp)
void diag_stop(runtime& rt) noexcept;
void deadlock_check(runtime& rt) noexcept;  // one detector step (deadlock.cpp)
void dump_install_sigquit() noexcept;   // at init, unless the program has its own handler
void dump_uninstall_sigquit() noexcept;  // at shutdown, if still ours
void dump_write(int fd) noexcept;       // fiber_dump's body
bool kernel_sleeping(long tid) noexcept;  // dump.cpp: the thread sleeps in the kernel now (state S or D)
// backtrace.cpp: frames of a fiber that is not running (pcs[0] exact); sets
// *scanned when the frames above #0 come from a stack scan.  Async-signal-safe.
int fiber_backtrace(const fcb& f, std::uintptr_t* pcs, int max, bool* scanned) noexcept;
void module_table_refresh() noexcept;   // executable segments for the scan (not AS-safe)

// slots.cpp: control blocks and their caches
fcb* slot_alloc(std::size_t stack_size) noexcept;  // with its stack mapped; nullptr: EAGAIN
void slot_free(fcb* f) noexcept;
fcb* slot_lookup(fiber_t id) noexcept;            // nullptr: no such slot
// Diagnostics: every control block ever allocated (chunks are never freed
// while the runtime runs); lock-free, async-signal-safe; fn sees racy states.
void slots_visit(void (*fn)(fcb&, void*), void* ctx) noexcept;
void slots_reset() noexcept;

// stacks.cpp: arenas, the guarded budget, canaries, trimming
bool stack_ensure(fcb* f) noexcept;   // keeps f's stack if its size fits, else gets one; false: ENOMEM
void stack_release(fcb* f) noexcept;  // f gives up its stack (unmapped, or kept in its arena)
// The per-KLT stash (I-ST1..3): called on KLT k with preemption off.
void stack_stash_exited(unsigned k, fcb* f) noexcept;  // f exited: its warm stack to k's stash
void stack_first_run(unsigned k, fcb* f) noexcept;     // f starts: a warm stack if k has one; the canary
constexpr std::size_t kTrimBatch = 32;  // stacks one stack_trim call handles at most
void stack_trim(fcb* const* fs, std::size_t n) noexcept;  // free stacks keep only their top page
void stack_free_own(fcb* f) noexcept; // shutdown: unmap f's stack unless it is in an arena
void stacks_reset() noexcept;         // shutdown: unmap every arena
bool stack_canary_ok_slow(const fcb* f) noexcept;
inline bool stack_canary_ok(const fcb* f) noexcept {  // unguarded stacks: the canary is intact
  return f->guarded || stack_canary_ok_slow(f);
}
bool stack_map(std::size_t size, char** base, std::size_t* map_size,
               std::size_t guard = fcb::kPage) noexcept;  // fiber stacks: fcb::kGuard
void stack_unmap(char* base, std::size_t map_size) noexcept;

// preempt.cpp
bool preempt_install(runtime& rt) noexcept;  // signal handlers, xsave size, allow-list
void preempt_uninstall() noexcept;
bool klt_timer_start(klt& k, const fiber_config_t& cfg) noexcept;
void klt_timer_stop(klt& k) noexcept;
void klt_timer_idle(klt& k, bool idle) noexcept;  // disarm while idle (monotonic clock only)
void klt_altstack_install(klt& k) noexcept;
// tls_scan.cpp: may a preempted fiber move?  (I-R3, FIBER_MIGRATE_SCAN)
void tls_range_init(klt& k) noexcept;  // k's TLS range, measured by k when it starts
bool stack_holds_tls(const klt& k, const void* from, const void* to) noexcept;  // a word in k's range
int preempt_signal() noexcept;
[[noreturn]] void report_stack_overflow(const fcb* f, const char* what, std::uintptr_t at,
                                       const char* why) noexcept;

// interpose_locks.cpp: resolves libc's lock functions (fiber_init; it also
// links the interposers into a static program).
void interpose_locks_init() noexcept;

// signals.cpp (the rest in signals.hpp)
void signals_init_fiber(fcb* f) noexcept;  // at create: the creator's signal mask (I8)

// test knobs (testing.h)
struct knobs_t {
  std::atomic<bool> no_pc_check{false}, no_count_check{false}, no_errno_swap{false},
      no_eh_swap{false}, no_stack_check{false}, migrate_preempted{false},
      deadlock_no_thread_check{false};
  std::atomic<bool> no_io_interpose{false};  // blocking calls in fibers go to libc (interpose.hpp)
  // interpose_locks.cpp: fibers call libc's locks directly (the old behaviour);
  // lock holders are preemptible.
  std::atomic<bool> no_lock_interpose{false}, no_lock_hold{false};
  std::atomic<bool>
      no_stack_cache{false},   // every fiber maps its own stack, unmapped at exit (stacks.cpp)
      unguarded_stacks{false},  // as if the guarded budget were spent (stacks.cpp)
      trim_all{false};          // the global pool keeps no stack untrimmed (slots.cpp I-SC3)
  std::atomic<bool> sched_stall{false};  // KLT loops stall between picks (monitor.cpp knob_sched_stall)
  std::atomic<bool> no_signal_interrupt{false};  // program signals interrupt no parked call (io_interrupt.cpp)
  std::atomic<bool> no_futex_interpose{false};  // interpose_futex.cpp: syscall() passes every futex call through
  std::atomic<bool> mutex_no_spin{false};  // mutexes park at once (native_seam.cpp spin_useful)
  std::atomic<bool> no_offload{false};  // offload.cpp: calls with no readiness path run on the KLT
  std::atomic<bool> no_monitor_handoff{false};  // monitor.cpp: no hand-off (read at monitor_start)
  std::atomic<bool> os_wake_linger{false};  // sched.cpp: an OS waker lingers in its gated section
  std::atomic<bool> no_idle_poll{false};  // idle_poll.cpp: idle KLTs sleep on the futex only
  std::atomic<bool> idle_poll_lose_kick{false};  // idle_poll.cpp: a planted lost wake-up (I-I3)
  std::atomic<bool> no_spare_klt{false};  // monitor.cpp: turn no spare KLT on (read at every pass)
  // sync.cpp: planted defects for the linearizability checker (stress/stress_lin.cpp)
  std::atomic<bool> lin_trylock_lies{false}, lin_sem_post_twice{false};
  // Knobs 23-25 (planted mutex defects) are native_seam::mutex_defects, read by
  // the inline mutex code (seam_native.hpp; set in trace_lock.cpp).
};
extern knobs_t knobs;

}  // namespace fiber::detail
