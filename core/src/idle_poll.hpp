// core/src/idle_poll.hpp - the I/O poller woven into the idle sleep (not
// installed): idle_set's Poll (fiber/detail/idle.hpp, I-I3/I-I4) for the
// native runtime.  An idle KLT that claims the poll role sleeps in
// epoll_wait on the process's epoll instance (poller.hpp) instead of on the
// eventcount's futex, so descriptor readiness wakes the KLT that will run the
// woken fibers directly: they are queued on that KLT (make_runnable from a
// KLT pushes locally) with no hop through the poller thread and no futex wake.
//
// The kick is an eventfd in the same epoll instance, edge-triggered and never
// read: every write is an edge (eventfd wakes its pollers on each write), and
// an edge stays on epoll's ready list until some epoll_wait takes it, which
// is the stickiness I-I3 needs.
//
// The poller thread waits on the same instance, and epoll hands an event to
// its newest waiter (the waiters are a LIFO).  So the poller steps aside:
// when it took events while a KLT holds the role (it went back to epoll_wait
// after that KLT did), it naps (1 ms at a time, on the role word) until the
// role is free or its next sweep is due (idle_poll_step_aside), and the
// holder, the only waiter left, takes what comes next.  A kick it took is
// written again first, so the holder's wait still ends.  It naps rather than
// being woken by the release: a KLT releases and re-claims the role at every
// idle spell, faster than a thread can be woken for each.  The price: an
// event that comes while the holder has just gone back to work (every KLT
// busy, the poller napping) waits up to a nap.  In the steady state (the
// holder re-entering epoll_wait after each wake, hence the newest waiter)
// the poller is not woken by readiness.
//
// It also waits its turn: before each epoll_wait, while a KLT's poll sleep
// returned less than a nap ago, it naps instead (idle_poll_await_turn), so
// under load readiness waits on the ready list for the KLTs' next idle spell
// (one batch, no hop) rather than waking it per event; it naps at most once
// a millisecond.  Readiness the poller thread does take is dispatched as
// before (the hop).
//
// available() is false until the poller started (no fiber ever waited on a
// descriptor: an idle KLT sleeps on the futex and pays nothing), in a forked
// child, and under test knob FIBER_KNOB_NO_IDLE_POLL (the A/B of the echo
// benchmark).
#pragma once

#include <cstdint>

#include "fiber/detail/seam.hpp"

struct epoll_event;

namespace fiber::detail {

struct idle_poll {
  bool available() noexcept;
  native_atomic<std::uint32_t>& role() noexcept;
  void wait(std::uint64_t deadline) noexcept;
  void kick() noexcept;
};

// poller.cpp's side.  At poller start: makes the kick eventfd and adds it to
// the instance `ep` (no kick fd: available() stays false).
void idle_poll_attach(int ep) noexcept;
// True when ev is the kick (the poller thread dispatches nothing for it).
bool idle_poll_is_kick(const struct epoll_event& ev) noexcept;
// The poller thread after it took events (`kick`: the kick among them): while
// a KLT holds the role, gives the kick back and parks until the role is
// free, at most until `until_ms` (CLOCK_MONOTONIC ms: its next sweep).
void idle_poll_step_aside(bool kick, std::uint64_t until_ms) noexcept;
// The poller thread before each epoll_wait: while a KLT's poll sleep returned
// less than a nap ago (the KLTs are polling: they will take what comes when
// they next run out of work), naps instead, at most until `until_ms`.
void idle_poll_await_turn(std::uint64_t until_ms) noexcept;
// In a forked child: no poll role, no kick fd.
void idle_poll_forget() noexcept;
// Readiness events a KLT took in its poll sleep (fiber_test_get_io_counters).
std::uint64_t idle_poll_events() noexcept;

}  // namespace fiber::detail
