# Planted-bug controls.  Each entry: FIND = exact original text in
# core/include/<file>, REPLACE = the bug; fiber_mutant(id model case file desc).
# The mutant test passes only if the named model case rejects it.

# --- parker.hpp ------------------------------------------------------------
set(FIND [==[if (state_.exchange(kNotified, mo::acq_rel) == kParked) Seam::wake(*this);]==])
set(REPLACE [==[if (state_.exchange(kNotified, mo::relaxed) == kParked) Seam::wake(*this);]==])
fiber_mutant(parker_unpark_relaxed parker I-P1 fiber/detail/parker.hpp "unpark exchange relaxed: the token does not publish")

set(FIND [==[if (state_.exchange(kNotified, mo::acq_rel) == kParked) Seam::wake(*this);]==])
set(REPLACE [==[if (state_.exchange(kNotified, mo::acq_rel) == kNotified) Seam::wake(*this);]==])
fiber_mutant(parker_wake_wrong_state parker I-P1 fiber/detail/parker.hpp "unpark wakes on the wrong previous state - lost wake-up")

set(FIND [==[    if (state_.compare_exchange_strong(expected, kParked, mo::acq_rel, mo::acquire)) return true;]==])
set(REPLACE [==[    expected = state_.load(mo::acquire);
    if (expected == kEmpty) { state_.store(kParked, mo::release); return true; }]==])
fiber_mutant(parker_commit_split parker I-P1 fiber/detail/parker.hpp "try_commit as check-then-act, load then store, instead of a CAS")

set(FIND [==[    state_.exchange(kEmpty, mo::acquire);
    return false;]==])
set(REPLACE [==[    state_.store(kEmpty, mo::relaxed);
    return false;]==])
fiber_mutant(parker_commit_blind_store parker I-P3 fiber/detail/parker.hpp "failed commit consumes with a blind store - the bug Relacy found")

set(FIND [==[    return state_.exchange(kEmpty, mo::acquire) == kNotified;]==])
set(REPLACE [==[    return state_.exchange(kEmpty, mo::relaxed) == kNotified;]==])
fiber_mutant(parker_consume_relaxed parker I-P1 fiber/detail/parker.hpp "try_consume relaxed: a consumed token does not synchronise")

set(FIND [==[  void finish() noexcept {
    // acquire: pairs with unpark()'s release when a token is consumed.
    state_.exchange(kEmpty, mo::acquire);]==])
set(REPLACE [==[  void finish() noexcept {
    state_.exchange(kEmpty, mo::relaxed);]==])
fiber_mutant(parker_finish_relaxed parker I-P1 fiber/detail/parker.hpp "finish relaxed: the wake after a block does not synchronise")

# --- spinlock.hpp ----------------------------------------------------------
set(FIND [==[      if (locked_.exchange(1, mo::acquire) == 0) return;]==])
set(REPLACE [==[      if (locked_.exchange(1, mo::relaxed) == 0) return;]==])
fiber_mutant(spinlock_lock_relaxed spinlock I-S1 fiber/detail/spinlock.hpp "lock exchange relaxed")

set(FIND [==[    locked_.store(0, mo::release);  // release: pairs with lock()'s acquire exchange]==])
set(REPLACE [==[    locked_.store(0, mo::relaxed);]==])
fiber_mutant(spinlock_unlock_relaxed spinlock I-S1 fiber/detail/spinlock.hpp "unlock store relaxed")

set(FIND [==[      if (locked_.exchange(1, mo::acquire) == 0) return;]==])
set(REPLACE [==[      if (locked_.load(mo::acquire) == 0) { locked_.store(1, mo::relaxed); return; }]==])
fiber_mutant(spinlock_test_then_set spinlock I-S1 fiber/detail/spinlock.hpp "test-then-set instead of an atomic exchange")

set(FIND [==[    Seam::preempt_disable();  // I-S1, before the lock is visible as held]==])
set(REPLACE [==[]==])
fiber_mutant(spinlock_no_preempt_disable spinlock I-S1 fiber/detail/spinlock.hpp "lock() forgets to disable preemption")

set(FIND [==[    if (locked_.exchange(1, mo::acquire) == 0) return true;
    Seam::preempt_enable();]==])
set(REPLACE [==[    if (locked_.exchange(1, mo::acquire) == 0) return true;]==])
fiber_mutant(spinlock_trylock_leaks_preempt spinlock I-S1-try fiber/detail/spinlock.hpp "failed try_lock leaves preemption disabled")

# --- run_queue.hpp ---------------------------------------------------------
set(FIND [==[        if (!cur->pinned.load()) {]==])
set(REPLACE [==[        if (true) {]==])
fiber_mutant(runq_steal_pinned run_queue I-Q3 fiber/detail/run_queue.hpp "steal ignores pinned")

set(FIND [==[      std::size_t want = (n + 1) / 2;]==])
set(REPLACE [==[      std::size_t want = n;]==])
fiber_mutant(runq_steal_all run_queue I-Q3 fiber/detail/run_queue.hpp "steal takes everything, not half")

set(FIND [==[      if (all) want = n;  // I-Q5]==])
set(REPLACE [==[]==])
fiber_mutant(runq_evacuate_half run_queue I-Q5 fiber/detail/run_queue.hpp "evacuation moves only half - fibers stay stranded behind a stalled KLT")

set(FIND [==[    if (size_.load(mo::relaxed) == 0) return nullptr;
    lock_guard<basic_spinlock<Seam>> g(lock_);
    return pop_locked();]==])
set(REPLACE [==[    if (size_.load(mo::relaxed) <= 1) return nullptr;
    lock_guard<basic_spinlock<Seam>> g(lock_);
    return pop_locked();]==])
fiber_mutant(runq_pop_hint_off_by_one run_queue I-Q4 fiber/detail/run_queue.hpp "pop emptiness hint off by one - spuriously empty")

set(FIND [==[    lock_guard<basic_spinlock<Seam>> g(lock_);
    push_locked(n);]==])
set(REPLACE [==[    push_locked(n);]==])
fiber_mutant(runq_push_unlocked run_queue I-Q1-Q2 fiber/detail/run_queue.hpp "push without the queue lock")

set(FIND [==[    if (!next) tail_.store(nullptr);]==])
set(REPLACE [==[]==])
fiber_mutant(runq_pop_keeps_tail run_queue I-Q1-Q2 fiber/detail/run_queue.hpp "pop of the last node leaves tail dangling - loss")

set(FIND [==[    const std::size_t one = n->pinned.load() ? kPinnedOne + 1 : 1;
    size_.store(size_.load(mo::relaxed) - one, mo::relaxed);  // relaxed: only written under lock_]==])
set(REPLACE [==[    size_.store(size_.load(mo::relaxed) - 1, mo::relaxed);]==])
fiber_mutant(runq_pop_keeps_pinned_count run_queue I-Q6 fiber/detail/run_queue.hpp "pop of a pinned node leaves the pinned count - stealable hint wrong, an idle KLT sleeps on stealable work")

set(FIND [==[      if (want > cap) want = cap;  // I-Q6]==])
set(REPLACE [==[]==])
fiber_mutant(runq_steal_ignores_cap run_queue I-Q6 fiber/detail/run_queue.hpp "capped steal ignores its cap - the intake overshoots the fair share")

# --- idle.hpp --------------------------------------------------------------
set(FIND [==[    Seam::fence(mo::seq_cst);  // forbids the sleepers_ load moving above the work's publication (I-I1)]==])
set(REPLACE [==[]==])
fiber_mutant(idle_notify_no_fence idle I-I1 fiber/detail/idle.hpp "notify without its seq_cst fence - store buffering")

set(FIND [==[    Seam::fence(mo::seq_cst);             // forbids the re-check's loads moving above the announce (I-I1)]==])
set(REPLACE [==[]==])
fiber_mutant(idle_prepare_no_fence idle I-I1 fiber/detail/idle.hpp "prepare_sleep without its seq_cst fence")

set(FIND [==[    epoch_.fetch_add(1, mo::release);  // release: pairs with prepare_sleep()'s acquire load]==])
set(REPLACE [==[]==])
fiber_mutant(idle_no_epoch_bump idle I-I1 fiber/detail/idle.hpp "notify wakes without bumping the epoch")

set(FIND [==[    return epoch_.load(mo::acquire);      // acquire: pairs with notify()'s release bump]==])
set(REPLACE [==[    return epoch_.load(mo::acquire) + 1;]==])
fiber_mutant(idle_stale_key idle I-I1 fiber/detail/idle.hpp "sleep key is not the epoch observed")

# --- wait_queue.hpp --------------------------------------------------------
set(FIND [==[    n->state_.store(kGranted, mo::release);  // release: pairs with granted()'s acquire
    p->unpark();]==])
set(REPLACE [==[    p->unpark();
    n->state_.store(kGranted, mo::release);]==])
fiber_mutant(waitq_unpark_before_grant wait_queue I-W2-W3 fiber/detail/wait_queue.hpp "grant unparks before publishing - lost wake-up")

set(FIND [==[    n->state_.store(kGranted, mo::release);  // release: pairs with granted()'s acquire]==])
set(REPLACE [==[    n->state_.store(kGranted, mo::relaxed);]==])
fiber_mutant(waitq_grant_relaxed wait_queue I-W2-W3 fiber/detail/wait_queue.hpp "grant store relaxed: the grant does not publish")

set(FIND [==[    return state_.load(mo::acquire) == kGranted;  // acquire: pairs with grant()'s release]==])
set(REPLACE [==[    return state_.load(mo::relaxed) == kGranted;]==])
fiber_mutant(waitq_granted_relaxed wait_queue I-W2-W3 fiber/detail/wait_queue.hpp "granted() relaxed")

set(FIND [==[    if (!n->queued_.load()) return false;]==])
set(REPLACE [==[]==])
fiber_mutant(waitq_remove_ignores_queued wait_queue I-W2-W3 fiber/detail/wait_queue.hpp "remove() succeeds after a waker took the node")

set(FIND [==[    n->queued_.store(false);
  }]==])
set(REPLACE [==[  }]==])
fiber_mutant(waitq_unlink_keeps_queued wait_queue I-W2-W3 fiber/detail/wait_queue.hpp "unlink does not clear queued_")

# --- readiness.hpp ---------------------------------------------------------
set(FIND [==[    return seq_.load(mo::acquire);  // acquire: pairs with notify()'s release bump (I-RD2)]==])
set(REPLACE [==[    return seq_.load(mo::relaxed);]==])
fiber_mutant(readiness_snapshot_relaxed readiness I-RD1 fiber/detail/readiness.hpp "snapshot relaxed: sees the edge's number without its data")

set(FIND [==[    if (seq_.load(mo::relaxed) != seen) return false;  // relaxed: under the lock notify() holds (I-RD1)]==])
set(REPLACE [==[]==])
fiber_mutant(readiness_no_seq_check readiness I-RD1 fiber/detail/readiness.hpp "enqueue ignores an edge since the snapshot - lost wake-up")

set(FIND [==[    seq_.fetch_add(1, mo::release);  // release: pairs with snapshot()'s acquire (I-RD2)]==])
set(REPLACE [==[]==])
fiber_mutant(readiness_notify_no_bump readiness I-RD1 fiber/detail/readiness.hpp "notify wakes the queued only, the edge is not recorded")

set(FIND [==[    if (n.wait(deadline)) return true;
    return dequeue(n);]==])
set(REPLACE [==[    return n.wait(deadline);]==])
fiber_mutant(readiness_timeout_leaves_node readiness I-RD3-RD4 fiber/detail/readiness.hpp "a timed-out waiter returns with its node still queued")

# --- interrupts.hpp (io2: EINTR in fibers) ---------------------------------
set(FIND [==[    return registered_.load(mo::seq_cst) > 0;  // seq_cst: I-INT3]==])
set(REPLACE [==[    return registered_.load(mo::relaxed) > 0;]==])
fiber_mutant(interrupts_count_relaxed interrupts I-INT1 fiber/detail/interrupts.hpp "the handler reads the registered count relaxed: Dekker broken, wake-up skipped")

set(FIND [==[    registered_.fetch_add(1, mo::seq_cst);  // seq_cst: I-INT3
    return pending(since, mask, restartable);]==])
set(REPLACE [==[    bool hit = pending(since, mask, restartable);
    registered_.fetch_add(1, mo::seq_cst);
    return hit;]==])
fiber_mutant(interrupts_check_before_count interrupts I-INT1 fiber/detail/interrupts.hpp "the waiter checks before it counts itself registered - lost interrupt")

set(FIND [==[    epoch_.fetch_add(0, mo::seq_cst);]==])
set(REPLACE [==[]==])
fiber_mutant(interrupts_no_final_rmw interrupts I-INT3 fiber/detail/interrupts.hpp "no seq_cst RMW of the epoch when another arrival raised it (only the release CAS)")

# --- mutex.hpp -------------------------------------------------------------
set(FIND [==[    if (state_.compare_exchange_strong(expected, kUnlocked, mo::release, mo::relaxed)) return 0;]==])
set(REPLACE [==[    if (state_.compare_exchange_strong(expected, kUnlocked, mo::relaxed, mo::relaxed)) return 0;]==])
fiber_mutant(mutex_unlock_relaxed mutex I-M1 fiber/detail/mutex.hpp "fast unlock CAS relaxed")

set(FIND [==[      if (state_.compare_exchange_strong(s, s & ~kLocked, mo::release, mo::relaxed)) return;]==])
set(REPLACE [==[      if (state_.compare_exchange_strong(s, s & ~kLocked, mo::relaxed, mo::relaxed)) return;]==])
fiber_mutant(mutex_unlock_inflight_relaxed mutex I-M1 fiber/detail/mutex.hpp "unlock with a woken waiter in flight releases with a relaxed CAS")

set(FIND [==[      state_.store(n, mo::release);]==])
set(REPLACE [==[      state_.store(n, mo::relaxed);]==])
fiber_mutant(mutex_wake_store_relaxed mutex I-M1 fiber/detail/mutex.hpp "the waking unlock frees the mutex with a relaxed store")

set(FIND [==[      if (state_.compare_exchange_strong(s, taken(s, woken), mo::acquire, mo::relaxed)) return true;
    }
    return false;]==])
set(REPLACE [==[      if (state_.compare_exchange_strong(s, taken(s, woken), mo::relaxed, mo::relaxed)) return true;
    }
    return false;]==])
fiber_mutant(mutex_barge_relaxed mutex I-M1 fiber/detail/mutex.hpp "a barge (spin, try_lock, woken retry) takes the mutex with a relaxed CAS")

set(FIND [==[      const std::uint32_t n = (s | kQueued) & ~(woken ? kWoken : 0u);]==])
set(REPLACE [==[      const std::uint32_t n = s | kQueued;]==])
fiber_mutant(mutex_requeue_keeps_woken mutex I-M1 fiber/detail/mutex.hpp "a woken waiter that lost requeues without clearing kWoken - no unlock wakes anyone again (lost wake-up when barging)")

set(FIND [==[  while ((s & kWoken) != 0 || (s & kQueued) == 0) {]==])
set(REPLACE [==[  while ((s & kWoken) != 0 || (s & kQueued) == 0 || (s & kHandoff) == 0) {]==])
fiber_mutant(mutex_normal_unlock_no_wake mutex I-M1 fiber/detail/mutex.hpp "a normal-mode unlock releases without waking the queued head - lost wake-up")

set(FIND [==[    if ((s >> 4) >= K) s |= kHandoff;                        // the K-th: starvation mode]==])
set(REPLACE [==[]==])
fiber_mutant(mutex_never_starving mutex I-M3 fiber/detail/mutex.hpp "the starvation switch is never taken - bargers overtake a waiter without bound")

set(FIND [==[    if ((s >> 4) >= K) s |= kHandoff;                        // the K-th: starvation mode]==])
set(REPLACE [==[    if ((s >> 4) > K) s |= kHandoff;]==])
fiber_mutant(mutex_bound_off_by_one mutex I-M3 fiber/detail/mutex.hpp "starvation mode after K+1 barges instead of K")

set(FIND [==[    return (s & (woken ? kLocked : (kLocked | kHandoff))) == 0;]==])
set(REPLACE [==[    return (s & kLocked) == 0;]==])
fiber_mutant(mutex_handoff_admits_barger mutex I-M3 fiber/detail/mutex.hpp "starvation mode does not shut bargers out")

set(FIND [==[    if (woken)
      q_.push_front(&node);]==])
set(REPLACE [==[    if (false)
      q_.push_front(&node);]==])
fiber_mutant(mutex_requeue_at_tail mutex I-M3 fiber/detail/mutex.hpp "a woken waiter that lost requeues at the tail - waiters out of order")

# --- condvar.hpp -----------------------------------------------------------
set(FIND [==[    enqueue(node);  // I-C1: before the mutex is released
    int rc = m.unlock();]==])
set(REPLACE [==[    int rc = m.unlock();
    enqueue(node);]==])
fiber_mutant(condvar_unlock_before_enqueue condvar I-C1 fiber/detail/condvar.hpp "wait releases the user mutex before queueing - lost wake-up")

set(FIND [==[    enqueue(node);  // I-C1: before the user lock is released
    try {
      lock.unlock();]==])
set(REPLACE [==[    try {
      lock.unlock();
      enqueue(node);]==])
fiber_mutant(condvar_any_unlock_before_enqueue condvar I-C1-any fiber/detail/condvar.hpp "wait_any (condition_variable_any) releases the user lock before queueing - lost wake-up")

set(FIND [==[      while (node_t* n = q_.pop_front()) woken.push_back(n);  // I-C2: exactly the queued ones]==])
set(REPLACE [==[      if (node_t* n = q_.pop_front()) woken.push_back(n);]==])
fiber_mutant(condvar_notify_all_pops_one condvar I-C2 fiber/detail/condvar.hpp "notify_all wakes only the head")

set(FIND [==[      if (q_.remove(&node)) return true;
    }]==])
set(REPLACE [==[      q_.remove(&node);
      return true;
    }]==])
fiber_mutant(condvar_timeout_ignores_remove condvar I-C3-C4 fiber/detail/condvar.hpp "timed-out wait ignores remove(): a granted waiter reports ETIMEDOUT, the notify is swallowed")

set(FIND [==[    if (withdraw(node)) return ETIMEDOUT;
    return 0;]==])
set(REPLACE [==[    withdraw(node);
    return ETIMEDOUT;]==])
fiber_mutant(condvar_granted_reports_timeout condvar I-C3-C4 fiber/detail/condvar.hpp "a timed-out waiter that was granted meanwhile still reports ETIMEDOUT - the notify is swallowed")

set(FIND [==[      node* next = reinterpret_cast<node*>(n->data.load());  // before the grant: I-GL2
      node::grant(n);]==])
set(REPLACE [==[      node::grant(n);
      node* next = reinterpret_cast<node*>(n->data.load());]==])
fiber_mutant(grant_list_next_after_grant condvar I-C2 fiber/detail/grant_list.hpp "grant_all reads the successor after granting - the node may be gone (I-GL2)")

# --- semaphore.hpp ---------------------------------------------------------
set(FIND [==[      if (word_.compare_exchange_weak(v, v + n, mo::release, mo::relaxed)) n = 0;]==])
set(REPLACE [==[      if (word_.compare_exchange_weak(v, v + n, mo::relaxed, mo::relaxed)) n = 0;]==])
fiber_mutant(sem_post_relaxed semaphore I-SEM5 fiber/detail/semaphore.hpp "fast post CAS relaxed: the permit does not publish")

set(FIND [==[      if ((v & kWaiters) != 0) {
        n -= take_waiters(n, woken);]==])
set(REPLACE [==[      if (false) {
        n -= take_waiters(n, woken);]==])
fiber_mutant(sem_post_ignores_waiters semaphore I-SEM4 fiber/detail/semaphore.hpp "post adds to the count even with waiters queued - barging, the waiter is never granted")

set(FIND [==[    if (q_.empty() && word_.load(mo::relaxed) == kWaiters) word_.store(0, mo::relaxed);]==])
set(REPLACE [==[]==])
fiber_mutant(sem_drain_keeps_waiters_bit semaphore I-SEM3 fiber/detail/semaphore.hpp "draining the queue leaves kWaiters set (I-SEM1)")

set(FIND [==[    FIBER_ASSERT(granted, "semaphore: popped node never granted (I-W2)");
    (void)granted;
    return 0;]==])
set(REPLACE [==[    FIBER_ASSERT(granted, "semaphore: popped node never granted (I-W2)");
    (void)granted;
    return ETIMEDOUT;]==])
fiber_mutant(sem_granted_reports_timeout semaphore I-SEM6 fiber/detail/semaphore.hpp "a timed-out waiter granted meanwhile reports ETIMEDOUT - its permit is lost")

# --- barrier.hpp -----------------------------------------------------------
set(FIND [==[    arrived_.store(0);
    generation_.store(gen + 1);]==])
set(REPLACE [==[    generation_.store(gen + 1);]==])
fiber_mutant(barrier_no_reset barrier I-B2-B3 fiber/detail/barrier.hpp "the last arrival does not reset arrived_ - the next generation breaks")

set(FIND [==[      const bool granted = node.wait(kNoDeadline);
      FIBER_ASSERT(granted, "barrier: untimed wait returned without a grant");]==])
set(REPLACE [==[      const bool granted = true;
      FIBER_ASSERT(granted, "barrier: untimed wait returned without a grant");]==])
fiber_mutant(barrier_leave_without_grant barrier I-B4 fiber/detail/barrier.hpp "a waiter leaves without waiting for its grant")

set(FIND [==[    on_complete();
    woken.grant_all();  // after lk_ is released (I-B5, I-GL2)]==])
set(REPLACE [==[    woken.grant_all();
    on_complete();]==])
fiber_mutant(barrier_grant_before_completion barrier I-B4 fiber/detail/barrier.hpp "waiters are released before the completion step ran")

# --- join.hpp --------------------------------------------------------------
set(FIND [==[      joiner = joiner_.load();
    }]==])
set(REPLACE [==[    }
    joiner = joiner_.load();]==])
fiber_mutant(join_exit_reads_joiner_unlocked join I-J3 fiber/detail/join.hpp "exit reads joiner_ after dropping the lock")

set(FIND [==[    if (exited_.load()) {]==])
set(REPLACE [==[    if (false) {]==])
fiber_mutant(join_detach_ignores_exited join I-J2 fiber/detail/join.hpp "detach of an exited fiber marks it detached instead of freeing it - leaked")

set(FIND [==[    {
      lock_guard<basic_spinlock<Seam>> g(lock_);
      retval_.store(retval);
      exited_.store(true);
      if (detached_.load()) {
        id_.store(0);  // I-J2
        return free_by::caller;
      }
      joiner = joiner_.load();
    }
    if (joiner) joiner->unpark();  // I-J3; the parker is type-stable (I-P4)]==])
set(REPLACE [==[    {
      lock_guard<basic_spinlock<Seam>> g(lock_);
      joiner = joiner_.load();
    }
    if (joiner) joiner->unpark();
    {
      lock_guard<basic_spinlock<Seam>> g(lock_);
      retval_.store(retval);
      exited_.store(true);
      if (detached_.load()) {
        id_.store(0);  // I-J2
        return free_by::caller;
      }
    }]==])
fiber_mutant(join_exit_unpark_before_exited join I-J3 fiber/detail/join.hpp "exit unparks the joiner before setting exited_ - lost wake-up")

# --- preempt_gate.hpp --------------------------------------------------------
set(FIND [==[  void enter_switch() noexcept { disable(); }

  // The fiber has been rescheduled: any tick refused before or during the
  // switch is satisfied (I-G3).  Pending is cleared while still inside the
  // section, so a tick cannot set it again unseen between the two stores.
  void leave_switch() noexcept {
    pending_.store(false, mo::relaxed);
    Seam::signal_fence();
    count_.store(count_.load(mo::relaxed) - 1, mo::relaxed);
  }]==])
set(REPLACE [==[  void enter_switch() noexcept {}

  // The fiber has been rescheduled: any tick refused before or during the
  // switch is satisfied (I-G3).  Pending is cleared while still inside the
  // section, so a tick cannot set it again unseen between the two stores.
  void leave_switch() noexcept {
    pending_.store(false, mo::relaxed);
    Seam::signal_fence();
  }]==])
fiber_mutant(gate_switch_unguarded preempt I-G1-G3 fiber/detail/preempt_gate.hpp "switch_out does not raise the count: a tick preempts inside the switch")

set(FIND [==[    if (count_.load(mo::relaxed) == 0) return false;
    pending_.store(true, mo::relaxed);
    return true;]==])
set(REPLACE [==[    if (count_.load(mo::relaxed) == 0) return false;
    return true;]==])
fiber_mutant(gate_refuse_forgets preempt I-G1-G3 fiber/detail/preempt_gate.hpp "a refused tick is not marked pending - it is lost")

set(FIND [==[    if (count_.load(mo::relaxed) == 0) return false;
    pending_.store(true, mo::relaxed);]==])
set(REPLACE [==[    if (count_.load(mo::relaxed) <= 1) return false;
    pending_.store(true, mo::relaxed);]==])
fiber_mutant(gate_refuse_off_by_one preempt I-G1-G3 fiber/detail/preempt_gate.hpp "the handler refuses only nested sections (count > 1)")

set(FIND [==[    const std::uint32_t c = count_.load(mo::relaxed) - 1;
    count_.store(c, mo::relaxed);
    Seam::signal_fence();
    return c == 0 && pending_.load(mo::relaxed);]==])
set(REPLACE [==[    const bool p = pending_.load(mo::relaxed);
    const std::uint32_t c = count_.load(mo::relaxed) - 1;
    count_.store(c, mo::relaxed);
    return c == 0 && p;]==])
fiber_mutant(gate_enable_check_then_drop preempt I-G1-G3 fiber/detail/preempt_gate.hpp "enable reads pending before dropping the count (check-then-act split)")

set(FIND [==[  void leave_switch() noexcept {
    pending_.store(false, mo::relaxed);
    Seam::signal_fence();]==])
set(REPLACE [==[  void leave_switch() noexcept {
    Seam::signal_fence();]==])
fiber_mutant(gate_leave_keeps_pending preempt I-G1-G3 fiber/detail/preempt_gate.hpp "a switch does not clear pending: a stale flag forces a second switch")

set(FIND [==[    return c == 0 && pending_.load(mo::relaxed);]==])
set(REPLACE [==[    return c == 0 && pending_.load(mo::relaxed) && c != 0;]==])
fiber_mutant(gate_enable_never_yields preempt I-G1-G3 fiber/detail/preempt_gate.hpp "enable never takes a pending tick (removed wake-up)")

# --- lifecycle_gate.hpp ----------------------------------------------------
set(FIND [==[    if ((old & kClosed) == 0) return true;]==])
set(REPLACE [==[    if (true) return true;]==])
fiber_mutant(lifecycle_enter_ignores_closed lifecycle L1-L2 fiber/detail/lifecycle_gate.hpp "enter ignores the closed bit: the race before the gate (issue 14)")

set(FIND [==[    word_.fetch_sub(kOne, mo::release);]==])
set(REPLACE [==[    word_.fetch_sub(kOne, mo::relaxed);]==])
fiber_mutant(lifecycle_leave_relaxed lifecycle L1-L2 fiber/detail/lifecycle_gate.hpp "leave relaxed: the caller's accesses are not ordered before the free")

set(FIND [==[    for (unsigned i = 0; (word_.load(mo::acquire) & ~kClosed) != 0; ++i) Seam::spin_hint(i);]==])
set(REPLACE [==[    for (unsigned i = 0; (word_.load(mo::relaxed) & ~kClosed) != 0; ++i) Seam::spin_hint(i);]==])
fiber_mutant(lifecycle_drain_relaxed lifecycle L2-join fiber/detail/lifecycle_gate.hpp "drain relaxed: seeing the count 0 does not order the free after the calls")

set(FIND [==[    word_.fetch_and(~kClosed, mo::release);]==])
set(REPLACE [==[    word_.fetch_and(~kClosed, mo::relaxed);]==])
fiber_mutant(lifecycle_reopen_relaxed lifecycle L3-L4 fiber/detail/lifecycle_gate.hpp "reopen relaxed: a caller entering afterwards may see the freed runtime")

set(FIND [==[  creates.close();
  creates.drain();  // no OS-thread create can add a fiber from here on
  wait_no_live();   // fibers still create, join and detach; OS threads join and detach]==])
set(REPLACE [==[  wait_no_live();
  creates.close();
  creates.drain();]==])
fiber_mutant(lifecycle_wait_before_creates lifecycle L1-L2 fiber/detail/lifecycle_gate.hpp "shutdown waits for live fibers before draining creates: a late fiber is lost")

set(FIND [==[  calls.close();
  calls.drain();    // the last OS-thread join/detach/stats call has left]==])
set(REPLACE [==[  calls.close();]==])
fiber_mutant(lifecycle_no_calls_drain lifecycle L2-join fiber/detail/lifecycle_gate.hpp "shutdown does not drain joins: a join still running when the slot is freed")

# --- parking_lot.hpp (models/parking_lot.cpp) ----------------------------------
set(FIND [==[      r = try_fn();  // the re-check after registering (I-LOT1)]==])
set(REPLACE [==[      r = kBusy;  // mutant: no re-check after registering]==])
fiber_mutant(lot_no_recheck parking_lot I-LOT1 fiber/detail/parking_lot.hpp "waiter parks without re-trying after it registered: lost wake-up")

set(FIND [==[      Seam::fence_after_rmw();  // I-LOT1: pairs with enqueue()'s fence]==])
set(REPLACE [==[      Seam::fence(mo::acquire);  // mutant: weakened]==])
fiber_mutant(lot_release_fence_weak parking_lot I-LOT1 fiber/detail/parking_lot.hpp "releaser's fence weakened to acquire: it may miss a registered waiter")

set(FIND [==[      if (n->data.load() == k) {]==])
set(REPLACE [==[      if (true) {  // mutant: the key is ignored]==])
fiber_mutant(lot_wake_ignores_key parking_lot I-LOT1-keys fiber/detail/parking_lot.hpp "a wake pops the bucket's first waiter whatever its key")

set(FIND [==[      if (deadline == kNoDeadline || Seam::now_ns() < deadline) continue;  // granted: retry (I-LOT4)]==])
set(REPLACE [==[      // mutant: a grant that lands after the re-check period ended is taken as the deadline]==])
fiber_mutant(lot_recheck_grant_times_out parking_lot I-LOT5 fiber/detail/parking_lot.hpp "a grant after a re-check period reports ETIMEDOUT to an untimed acquire")

# --- futex_lot.hpp (models/futex_lot.cpp) ----------------------------------------
set(FIND [==[    if (changed()) {  // the re-check after registering (I-FX1)]==])
set(REPLACE [==[    if (false) {  // mutant: no re-check after registering]==])
fiber_mutant(futex_no_recheck futex_lot I-FX1 fiber/detail/futex_lot.hpp "a waiter parks without re-reading the word after it registered: lost wake-up")

set(FIND [==[      Seam::fence(mo::seq_cst);  // I-LOT1: pairs with enqueue()'s fence]==])
set(REPLACE [==[      Seam::fence(mo::acquire);  // mutant: weakened]==])
fiber_mutant(futex_wake_fence_weak futex_lot I-FX1 fiber/detail/parking_lot.hpp "the waker's full fence (after a plain store) weakened to acquire: it may miss a registered waiter")

set(FIND [==[      while (!n.wait(kNoDeadline)) {}  // a waker popped us: its wake is ours (I-FX3)
      return 0;]==])
set(REPLACE [==[      return EAGAIN;  // mutant: leaves while a waker grants its node]==])
fiber_mutant(futex_leave_while_granted futex_lot I-FX3 fiber/detail/futex_lot.hpp "a waiter popped by a waker leaves without waiting for the grant")

