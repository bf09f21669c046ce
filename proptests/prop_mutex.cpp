// proptests/prop_mutex.cpp - the mutex's fairness bound (mutex.hpp I-M3) on
// random programs, run by the real runtime on one KLT without preemption.
//
// One KLT, timeslice 0 and no spinning (Seam::spin_useful is false on one
// KLT) make a run deterministic: a fiber switches only where its script
// yields or where lock() parks it.  So an observer outside the algorithm is
// exact here (the Relacy model's observer needs a +1 slack): a lock() call
// during which no other fiber took a step did not wait (a barge); one during
// which others ran had queued at its call.  Checked on every run:
//   (a) waiters own the mutex in the order of their lock() calls;
//   (b) at most K barges happen while a waiter waits, between two
//       acquisitions by waiters.
// The mutex is basic_mutex<seam, K> with small K (2, 3) so that short programs
// reach the starvation mode; the control with K = 2^26 (the starvation switch
// never taken) must be caught.  Unlike the other properties this links the
// runtime (fiber::fiber): the algorithm parks real fibers.
#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fiber/detail/mutex.hpp"
#include "fiber/fiber.h"
#include "prop_util.hpp"

namespace {

// A step of a fiber's script: 0..2 = a critical section with that many
// yields inside; 3 = a yield outside.  Consecutive sections barge.
using script = std::vector<int>;

template <unsigned K>
struct world {
  fiber::detail::basic_mutex<fiber::detail::seam, K> m;
  std::vector<script> scripts;
  std::vector<int> in_lock;         // 1 while the fiber is inside lock()
  std::uint64_t steps = 0;          // every step of every fiber (one KLT: plain)
  std::uint64_t calls = 0;          // lock() calls so far
  std::uint64_t last_served = 0;    // call number of the last waiter that acquired
  unsigned run = 0, max_run = 0;    // barges past a waiter since a waiter acquired
  std::string fifo_violation;
  std::string error;                // a failed call inside a fiber (no throwing there)
  unsigned index = 0;               // next fiber to start (root only)
};

template <unsigned K>
void critical_section(world<K>& w, unsigned me, int yields) {
  const std::uint64_t call = ++w.calls;
  const std::uint64_t before = w.steps;
  w.in_lock[me] = 1;
  if (w.m.lock() != 0) w.error = "lock failed";
  w.in_lock[me] = 0;
  if (w.steps != before) {  // others ran: we had queued (a waiter)
    if (call <= w.last_served && w.fifo_violation.empty()) {
      std::ostringstream os;
      os << "fiber " << me << " (call " << call << ") acquired after call " << w.last_served;
      w.fifo_violation = os.str();
    }
    w.last_served = std::max(w.last_served, call);
    w.run = 0;
  } else if (std::count(w.in_lock.begin(), w.in_lock.end(), 1) > 0) {
    w.max_run = std::max(w.max_run, ++w.run);  // a barge past a waiter
  }
  ++w.steps;
  for (int y = 0; y < yields; ++y) {
    fiber_yield();
    ++w.steps;
  }
  if (w.m.unlock() != 0) w.error = "unlock failed";
}

template <unsigned K>
void* worker(void* arg) {
  auto& w = *static_cast<world<K>*>(arg);
  const unsigned me = w.index++;
  for (int a : w.scripts[me]) {
    ++w.steps;
    if (a == 3)
      fiber_yield();
    else
      critical_section(w, me, a);
  }
  return nullptr;
}

// Creates every worker before any runs (fiber_create does not switch), then joins.
template <unsigned K>
void* root(void* arg) {
  auto& w = *static_cast<world<K>*>(arg);
  std::vector<fiber_t> ids(w.scripts.size());
  for (auto& id : ids)
    if (fiber_create(&id, nullptr, worker<K>, &w) != 0) w.error = "fiber_create failed";
  for (fiber_t id : ids)
    if (id != 0 && fiber_join(id, nullptr) != 0) w.error = "fiber_join failed";
  return nullptr;
}

// Runs the program on basic_mutex<seam, K> and checks the bound for Check.
template <unsigned K, unsigned Check = K>
void run_program(const std::vector<script>& scripts) {
  world<K> w;
  w.scripts = scripts;
  w.in_lock.assign(scripts.size(), 0);
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = 1;
  cfg.timeslice_us = 0;  // no preemption: the run is deterministic
  RC_ASSERT(fiber_init(&cfg) == 0);
  fiber_t r = 0;
  const int rc = fiber_create(&r, nullptr, root<K>, &w);
  if (rc == 0) fiber_join(r, nullptr);
  RC_ASSERT(fiber_shutdown() == 0);
  RC_ASSERT(rc == 0);
  if (!w.error.empty()) RC_FAIL(w.error);
  RC_ASSERT(w.m.check_destroy() == 0);
  if (!w.fifo_violation.empty()) RC_FAIL("I-M3 (a): waiters out of order: " + w.fifo_violation);
  if (w.max_run > Check)
    RC_FAIL("I-M3 (b): " + std::to_string(w.max_run) + " barges past a waiter, K = " + std::to_string(Check));
}

rc::Gen<std::vector<script>> gen_programs() {
  return rc::gen::mapcat(rc::gen::inRange<std::size_t>(2, 6), [](std::size_t n) {
    return rc::gen::container<std::vector<script>>(
        n, rc::gen::container<script>(rc::gen::inRange(0, 4)));
  });
}

}  // namespace

FIBER_PROP(Mutex, BoundedOvertakingK2, 300, ()) {
  run_program<2>(*gen_programs());
}
FIBER_PROP(Mutex, BoundedOvertakingK3, 300, ()) {
  run_program<3>(*gen_programs());
}

TEST(Mutex, ControlNeverStarvingIsCaught) {
  // PLANTED: the starvation switch is never reached; K = 2 is checked.
  fiber_sim::expect_counterexample("Mutex/ControlNeverStarving", 2000, [] {
    run_program<(1u << 26), 2>(*gen_programs());
  });
}
