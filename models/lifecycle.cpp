// models/lifecycle.cpp - Relacy model of core/include/fiber/detail/lifecycle_gate.hpp
// (L1..L4): fiber_shutdown racing fiber_create and fiber_join from an OS
// thread, with the production gate, quiesce() order, join_state, spinlock and
// parker.  The runtime is a heap object (runtime_m) that shutdown frees the
// way core/src/lifecycle.cpp does: it writes it (munmap, reuse and delete all
// write) and deletes it.  An OS-thread call touching it without holding a gate
// is ACCESS TO FREED MEMORY (after the delete) or a DATA RACE (an access not
// ordered before the free's write); a fiber that a successful create made but
// shutdown did not wait for fails an assertion.
//
//   thread 0  fiber_shutdown: quiesce(creates, calls, wait live == 0), stop
//             the KLT, clear the runtime pointer, free, reopen (then, in the
//             L3 case, fiber_init of a second runtime)
//   thread 1  an OS thread: fiber_create then fiber_join (or only one of them)
//   thread 2  a KLT: runs the fiber once it is queued (exit: live--, then
//             join_state::exit), leaves when told to stop
#include <cerrno>

#include "fiber/detail/join.hpp"
#include "fiber/detail/lifecycle_gate.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::mo;
using gate = fiber::detail::basic_lifecycle_gate<seam>;
using join_state = fiber::detail::join_state<seam>;

constexpr std::uint64_t kId = 9;
constexpr int kRefused = -1;  // the gate refused the call (EAGAIN / ESRCH in the C API)
constexpr int kFreed = -7;
void* const kRet = reinterpret_cast<void*>(std::uintptr_t{0x42});

// What fiber_shutdown frees: the runtime and the fiber's slot.
struct runtime_m {
  seam::atomic<unsigned> live{0};    // I7
  seam::atomic<unsigned> queued{0};  // the run queue: 1 = the fiber is runnable
  join_state js;                     // the fiber's slot
  seam::var<int> mem{0};             // every plain field an API call reads or writes
};

// Relacy tracks the heap through its replacement of the unsized global
// operator delete; a plain delete-expression calls the sized one (C++14),
// which is libstdc++'s and frees Relacy's block with free().
template <class T>
void model_delete(T* p) {
  p->~T();
  ::operator delete(static_cast<void*>(p));
}

enum class os_ops { create_join, join_only, create_only };

// The process-wide state of core/src/lifecycle.cpp: g_rt, g_creates, g_calls.
template <os_ops Ops, bool kReinit>
struct shutdown_vs : rl::test_suite<shutdown_vs<Ops, kReinit>, 3> {
  fiber::detail::relacy_env_t<> env;
  seam::atomic<runtime_m*> rt{nullptr};
  gate creates, calls;
  seam::atomic<unsigned> stopping{0}, klt_done{0};
  runtime_m* first = nullptr;  // thread 2's runtime (the KLT's, set before it starts)
  runtime_m* second = nullptr;  // L3: the runtime fiber_init made after the shutdown
  seam::var<unsigned> ran{0};
  seam::var<int> create_rc{kRefused};

  void before() {
    first = new runtime_m;
    if (Ops == os_ops::join_only) {  // a fiber created before the race
      first->js.reset(kId, false);
      first->live.store(1, mo::relaxed);
      first->queued.store(1, mo::relaxed);
    }
    rt.store(first, mo::release);  // fiber_init's publication
  }
  void after() {
    if (create_rc.load() == 0 || Ops == os_ops::join_only) {
      // L4: a fiber whose create returned 0 ran before shutdown returned
      // (or, created on the second runtime, is still queued there).
      RL_ASSERT(ran.load() == 1 || (second && second->queued.load(mo::relaxed) == 1));
    }
    if (second) model_delete(second);
  }

  // enter_os_call(): the runtime with `g` held, or nullptr.
  runtime_m* enter(gate& g) {
    if (!g.try_enter()) return nullptr;
    runtime_m* r = rt.load(mo::acquire);  // acquire: pairs with init's release (L3)
    if (!r) g.leave();
    return r;
  }
  static void use(runtime_m* r) {
    RL_ASSERT(r->mem.load() != kFreed);
    r->mem.store(r->mem.load() + 1);
  }

  int create() {
    runtime_m* r = enter(creates);
    if (!r) return kRefused;
    use(r);  // slot_alloc
    r->js.reset(kId, false);
    r->live.fetch_add(1, mo::relaxed);  // relaxed: the queue push publishes it
    r->queued.store(1, mo::release);    // release: pairs with the KLT's acquire
    creates.leave();
    return 0;
  }
  int join(void** rv) {
    runtime_m* r = enter(calls);
    if (!r) return kRefused;
    int rc = r->js.join(kId, rv);  // may park until the KLT's exit()
    if (rc == 0) use(r);           // slot_free
    calls.leave();
    return rc;
  }

  void shutdown() {
    runtime_m* r = rt.load(mo::relaxed);  // relaxed: published before the threads started
    fiber::detail::quiesce(creates, calls, [r] {
      for (unsigned i = 0; r->live.load(mo::acquire) != 0; ++i) seam::spin_hint(i);  // pairs with exit
    });
    stopping.store(1, mo::release);  // stop_klts; pairs with the KLT's acquire
    for (unsigned i = 0; klt_done.load(mo::acquire) == 0; ++i) seam::spin_hint(i);  // pthread_join
    RL_ASSERT(r->live.load(mo::relaxed) == 0);  // L4: no fiber was added behind the wait
    rt.store(nullptr, mo::release);  // release: pairs with enter()'s acquire (L3)
    r->mem.store(kFreed);  // slots_reset / delete write what they free
    model_delete(r);
    creates.reopen();
    calls.reopen();
    if (kReinit) {  // fiber_init again (no KLT in this model for it)
      second = new runtime_m;
      rt.store(second, mo::release);  // release: pairs with enter()'s acquire
    }
  }

  void klt() {
    runtime_m* r = first;
    for (unsigned i = 0;; ++i) {
      if (r->queued.load(mo::acquire) != 0) {  // acquire: pairs with create's release
        ran.store(1);
        r->live.fetch_sub(1, mo::release);  // release: pairs with shutdown's acquire (I7)
        if (r->js.exit(kRet) == join_state::free_by::caller) RL_ASSERT(false);  // joinable
        break;
      }
      if (stopping.load(mo::acquire) != 0) break;  // acquire: pairs with shutdown's release
      seam::spin_hint(i);
    }
    klt_done.store(1, mo::release);  // release: pairs with shutdown's acquire
  }

  void thread(unsigned t) {
    if (t == 0) return shutdown();
    if (t == 2) return klt();
    if (Ops != os_ops::join_only) {
      int rc = create();
      create_rc.store(rc);
      if (rc != 0 || Ops == os_ops::create_only) return;
    }
    void* rv = nullptr;
    int rc = join(&rv);
    // A join that entered the gate always gets the value: shutdown waits for
    // live fibers before it closes g_calls (L4).
    RL_ASSERT(rc == kRefused || (rc == 0 && rv == kRet));
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  using CJ = shutdown_vs<os_ops::create_join, false>;
  using J = shutdown_vs<os_ops::join_only, false>;
  using CR = shutdown_vs<os_ops::create_only, true>;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "L1-L2", "create+join racing shutdown: nothing freed in use, created fibers run",
      {with<CJ>(bound(2, false)), with<CJ>(random(200000)), deep<CJ>(bound(3, false))});
    FIBER_MODEL_CASE(cases, "L2-join", "OS thread parked in join while shutdown waits: gets the value",
      {with<J>(bound(2, false)), with<J>(random(200000)), deep<J>(bound(3, false))});
    FIBER_MODEL_CASE(cases, "L3-L4", "shutdown then init racing create: never the freed runtime",
      {with<CR>(bound(2, false)), with<CR>(random(200000)), deep<CR>(bound(3, false))});
    return cases;
  };
  return run_model(argc, argv, "lifecycle", build(0));
}
