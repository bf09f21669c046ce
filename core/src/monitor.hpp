// core/src/monitor.hpp - the runtime monitor: one OS thread that watches the
// KLTs from outside (Go's sysmon is the reference).  Not installed.
//
// What it does, every period while fibers run:
//   * hand-off (issue 14 item 5): a KLT that has taken no scheduling step for
//     kStallNs while its run queue holds fibers - it is blocked in a system
//     call, or its fiber runs without ever reaching a safe point - has its
//     unpinned fibers moved to the global queue (policy I-R5), where busy KLTs
//     take them at their next pick (I-R2) and idle ones are woken for them.
//   * spare KLTs (issue 12 item 2): while k KLTs are stalled in the kernel
//     (no step for kStallNs and their CPU time stands still), k spare KLTs
//     run fibers (policy.hpp I-R7), so the fibers handed off above run even
//     when no other KLT can take them (one KLT, or all of them blocked).
//   * watchdog (issue 17 item 4): a KLT that has taken no scheduling step for
//     the watchdog bound is reported on stderr, once per incident, with the
//     running fiber's id, how long, and what the monitor could tell about why.
//
// Vocabulary:
//   scheduling step  KLT k is about to pick the next fiber: every switch_out
//                    (yield, park, exit, preemption, even when nothing else is
//                    runnable) and every turn of klt_main's loop.  A step
//                    that switches fibers is counted by klt::switches (in
//                    install), one that does not by klt::steps; only k writes
//                    them (I2), the monitor reads their sum relaxed and
//                    compares readings a period apart.
//   stalled          not idle (klt::idle false) and no step since a reading at
//                    least the bound ago.  An idle KLT (sleeping in its idle sleep (klt_loop::idle),
//                    nothing queued anywhere) is never stalled.
//
// Invariants:
//   I-MON1 The monitor only reads KLT state (steps, idle, running, queue size
//          hints, the running fiber's gate) and calls policy evacuate(),
//          which takes the queue locks like a thief; it never touches
//          current/action (I2) nor a pinned fiber (I3): a preempted fiber
//          resumed on another KLT breaks (compiled code caches TLS
//          addresses), so pinned fibers wait for their own KLT.
//   I-MON2 It costs a switch one store to the KLT's own cache line (the
//          running fiber's id, in install); its reads touch that line once
//          per period.  With one
//          KLT, no watchdog and no spare (a test knob) it is not started at all.
//   I-MON3 It does not keep an idle program busy: when every KLT is idle it
//          sleeps without a timeout on an idle_set (idle.hpp, I-I1), and a
//          KLT leaving its idle sleep wakes it (monitor_klt_woke: one fence and one
//          load when the monitor is not asleep).
//   I-MON4 Spares follow kernel stalls: after each pass, spare i is on iff
//          at least i+1 KLTs (configured or spare) are stalled and blocked in
//          the kernel (CPU time under a tenth of the wall time since the
//          incident's first pass), so at most nklts KLTs run fibers outside
//          the kernel (plus a retiring spare finishing the fibers preempted
//          on it, I-R7).  A KLT stalled while running (a fiber that never
//          yields in cooperative mode, ticks deferred) is not replaced.  A spare's thread is started, in
//          order and once, only when the global queue holds work; it sleeps
//          apart while off (sched.cpp) and is joined at shutdown.  Only the
//          monitor turns spares on and off and starts them.
//
// Lifecycle: monitor_start() from fiber_init once the KLTs run; monitor_stop()
// from fiber_shutdown before the KLTs are stopped.  Both under g_init_mu.
#pragma once

#include <cstdint>

namespace fiber::detail {

struct runtime;

// Period and bounds (measured and argued in papers/design.md, "The monitor").
inline constexpr std::uint64_t kMonitorPeriodNs = 10'000'000;  // 10 ms
inline constexpr std::uint64_t kStallNs = 20'000'000;          // hand-off after 20 ms without a step
inline constexpr std::uint64_t kMinPeriodNs = 1'000'000;              // watchdog bounds under 4 ms
inline constexpr unsigned kMinSpares = 4;  // spare KLT slots reserved: max(KLTs, this), within FIBER_MAX_KLTS

// The spare slots a runtime of nklts KLTs reserves (runtime::nspare).
unsigned spare_klts_for(unsigned nklts) noexcept;
// Resolves the watchdog bound (FIBER_WATCHDOG overrides cfg.watchdog_ms) and
// starts the monitor thread if there is anything to watch.  false: EAGAIN.
bool monitor_start(runtime& rt) noexcept;
void monitor_stop() noexcept;
// A KLT left its idle sleep (it cleared klt::idle first): wakes a sleeping monitor.
void monitor_klt_woke() noexcept;
// Test knob FIBER_KNOB_SCHED_STALL (testing.h): the calling KLT, in its
// scheduler context between two picks, sleeps while the knob is on (until
// shutdown), as foreign code stuck there would.  From klt_main only.
void knob_sched_stall(runtime& rt) noexcept;

}  // namespace fiber::detail
