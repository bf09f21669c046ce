// core/src/diag.cpp - fiber names (fiber_setname/fiber_getname) and the
// words a dump prints for states and wait kinds (diag.hpp).
//
// A name lives in the fiber's control block (fiber_diag::name_, kNameMax
// bytes with the NUL).  Writers (create, setname) take name_lock_ and check
// under it that the id still names the slot's fiber, so a setname racing with
// the fiber's exit and the slot's reuse never renames the next fiber: create
// writes the new fiber's name under the same lock after the id changed.
// Readers outside the lock (fiber_dump, gdb) may see a torn name, never a
// read out of bounds.
#include <errno.h>

#include <cstring>

#include "runtime.hpp"

namespace fiber::detail {

diag_clock g_diag_now;
diag_steps g_diag_clock;

// Every kDiagPeriodMs from the ticker (deadlock.cpp), and once at its start.
// A transition that reads a step word while this runs may pair a new time
// with an old one elsewhere: both are within a period, which is the
// resolution anyway.
void diag_clock_set(std::uint64_t ns) noexcept {
  g_diag_now.ns.store(ns, std::memory_order_relaxed);  // relaxed: a timestamp for humans
  const std::uint64_t hi = (ns >> kDiagUnitShift) << 32;  // the units modulo 2^32, in the high half
  for (int d = -kDiagStepBias; d < 8 - kDiagStepBias; ++d)
    g_diag_clock.step[d + kDiagStepBias].store(hi + static_cast<std::uint64_t>(static_cast<int>(kDiagMoveOne) + d),
                                               std::memory_order_relaxed);  // relaxed: as above
}

const char* fstate_name(fstate s) noexcept {
  switch (s) {
    case fstate::free: return "free";
    case fstate::runnable: return "runnable";
    case fstate::running: return "running";
    case fstate::parked: return "parked";
    case fstate::exited: return "exited";
  }
  return "?";
}

const char* wait_kind_name(wait_kind k) noexcept {
  switch (k) {
    case wait_kind::none: return "nothing";
    case wait_kind::mutex: return "mutex";
    case wait_kind::condvar: return "condvar";
    case wait_kind::semaphore: return "semaphore";
    case wait_kind::barrier: return "barrier";
    case wait_kind::join: return "join";
    case wait_kind::sleep: return "sleep";
    case wait_kind::shutdown: return "shutdown";
    case wait_kind::io: return "io";  // a descriptor (poller.hpp)
    case wait_kind::libc_lock: return "pthread lock";  // a pthread mutex or rwlock (interpose_locks.cpp)
  }
  return "?";
}

// Caller holds name_lock_.  Bytes past the NUL are left as they were:
// readers stop at the first NUL.
static void store_name(char* dst, const char* s) noexcept {
  std::size_t n = s ? std::strlen(s) : 0;
  for (std::size_t i = 0; i <= n; ++i)
    __atomic_store_n(&dst[i], i < n ? s[i] : '\0', __ATOMIC_RELAXED);  // relaxed: racy readers only
}

// At create, before the fiber is published.  An unnamed fiber in a slot
// whose last name is already empty skips the lock (the common case: create
// stays as cheap as before).  The price: a fiber_setname with the previous
// fiber's id that passed its id check just before that fiber exited, was
// joined and its slot reused may still land on this fiber's name (a
// diagnostic, never memory safety).
void fiber_diag::set_name(const char* s) noexcept {
  if (!s && __atomic_load_n(&name_[0], __ATOMIC_RELAXED) == '\0') return;  // relaxed: see above
  lock_guard<basic_spinlock<native_seam>> g(name_lock_);
  store_name(name_, s);
}

// FIBER_ASSERT's line (assert_fail: raw write, abort) with the fiber and the
// states in its message: "bad fiber state transition: fiber 12 is parked,
// expected runnable (-> running)".  No allocation: a KLT or a handler may call it.
void fiber_diag::bad_move(fstate from, std::uint32_t low, fstate to) const noexcept {
  char msg[128];
  std::size_t n = 0;
  auto put = [&](const char* s) {
    while (*s && n + 1 < sizeof msg) msg[n++] = *s++;
  };
  char num[24];
  std::uint64_t v = id_.load(std::memory_order_relaxed);  // relaxed: a report
  int d = 0;
  do { num[d++] = static_cast<char>('0' + v % 10); v /= 10; } while (v && d < 23);
  put("bad fiber state transition: fiber ");
  while (d > 0 && n + 1 < sizeof msg) msg[n++] = num[--d];
  put(" is ");
  put(fstate_name(diag_state_of(low)));
  put(", expected ");
  put(fstate_name(from));
  put(" (-> ");
  put(fstate_name(to));
  put(")");
  msg[n] = '\0';
  assert_fail("state == from", msg, __FILE__, __LINE__, "fiber_diag::move");
}

}  // namespace fiber::detail

using namespace fiber::detail;

namespace {
// The live fiber `id`, or nullptr.  A snapshot: callers re-check under name_lock_.
fcb* live_fiber(fiber_t id) noexcept {
  if (id == 0 || !g_rt.load(std::memory_order_acquire)) return nullptr;  // acquire: pairs with init
  fcb* f = slot_lookup(id);
  return f && f->join.is(id) ? f : nullptr;
}
}  // namespace

extern "C" int fiber_setname(fiber_t id, const char* name) {
  if (name && std::strlen(name) >= kNameMax) return ERANGE;
  fcb* f = live_fiber(id);
  if (!f) return ESRCH;
  int rc = ESRCH;
  {  // the spinlock raises the preempt count (I-S1)
    lock_guard<basic_spinlock<native_seam>> g(f->diag.name_lock_);
    if (f->join.is(id)) {
      store_name(f->diag.name_, name);
      rc = 0;
    }
  }
  return rc;
}

extern "C" int fiber_getname(fiber_t id, char* buf, size_t len) {
  if (!buf) return EINVAL;
  fcb* f = live_fiber(id);
  if (!f) return ESRCH;
  char tmp[kNameMax];
  int rc = ESRCH;
  {  // the spinlock raises the preempt count (I-S1)
    lock_guard<basic_spinlock<native_seam>> g(f->diag.name_lock_);
    if (f->join.is(id)) {
      f->diag.copy_name(tmp);
      rc = 0;
    }
  }
  if (rc != 0) return rc;
  if (std::strlen(tmp) + 1 > len) return ERANGE;
  std::memcpy(buf, tmp, std::strlen(tmp) + 1);
  return 0;
}
