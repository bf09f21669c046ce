// models/join.cpp - Relacy model of core/include/fiber/detail/join.hpp
// (join_state, I-J2..I-J4) with the production spinlock and parker.  Thread 0
// plays the scheduler calling exit() for a fiber that has left its stack
// (I-J1); the others join or detach it by id.  Frees are counted in a plain
// var: two parties freeing is a DATA RACE (and a count of 2), nobody freeing
// is a count of 0; a joiner never woken is a DEADLOCK.
#include <cerrno>

#include "fiber/detail/join.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using join_state = fiber::detail::join_state<seam>;

constexpr std::uint64_t kId = 5;
void* const kRet = reinterpret_cast<void*>(std::uintptr_t{0x42});

enum class op { join, detach };

// Thread 0 exits the fiber (after writing a plain result the joiner reads);
// threads 1.. run Ops in order.  Every interleaving: exactly one party frees
// (I-J2); join returns the exit value (I-J3) and is never lost; at most one of
// join/detach succeeds (I-J4), the other gets EINVAL or ESRCH.
template <op... Ops>
struct exit_vs : rl::test_suite<exit_vs<Ops...>, 1 + sizeof...(Ops)> {
  static constexpr op kOps[] = {Ops...};
  fiber::detail::relacy_env_t<> env;
  join_state js;
  seam::var<unsigned> frees{0};
  seam::var<int> result{0};
  void before() { js.reset(kId, false); }
  void free_it() { frees.store(frees.load() + 1); }
  void thread(unsigned t) {
    if (t == 0) {
      result.store(7);  // the fiber's last write
      if (js.exit(kRet) == join_state::free_by::caller) free_it();
      return;
    }
    if (kOps[t - 1] == op::join) {
      void* rv = nullptr;
      const int rc = js.join(kId, &rv);
      RL_ASSERT(rc == 0 || rc == EINVAL || rc == ESRCH);
      if (rc == 0) {
        RL_ASSERT(rv == kRet);             // I-J3
        RL_ASSERT(result.load() == 7);     // exit happens-before join's return
        free_it();
      }
    } else {
      bool must_free = true;
      const int rc = js.detach(kId, &must_free);
      RL_ASSERT(rc == 0 || rc == EINVAL || rc == ESRCH);
      if (rc != 0) RL_ASSERT(!must_free);
      if (must_free) free_it();
    }
  }
  void after() {
    RL_ASSERT(frees.load() == 1);  // I-J2: exactly one party frees
    RL_ASSERT(!js.is(kId));        // the slot's id is gone once freed
  }
};

// Join after exit: exit completes before the joiner starts (the joiner waits
// for a plain flag published through an atomic); join returns at once.
struct join_after_exit : rl::test_suite<join_after_exit, 2> {
  fiber::detail::relacy_env_t<> env;
  join_state js;
  seam::atomic<unsigned> exited{0};
  void before() { js.reset(kId, false); }
  void thread(unsigned t) {
    if (t == 0) {
      RL_ASSERT(js.exit(kRet) == join_state::free_by::nobody);
      exited.store(1, fiber::detail::mo::release);  // pairs with the acquire below
      return;
    }
    for (unsigned i = 0; exited.load(fiber::detail::mo::acquire) == 0; ++i) seam::spin_hint(i);
    void* rv = nullptr;
    RL_ASSERT(js.join(kId, &rv) == 0 && rv == kRet);  // I-J3
    RL_ASSERT(js.join(kId, &rv) == ESRCH);            // I-J2: freed, id is gone
  }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  using J = exit_vs<op::join>;
  using D = exit_vs<op::detach>;
  using JD = exit_vs<op::join, op::detach>;
  using DJ = exit_vs<op::detach, op::join>;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-J3", "join racing exit is never lost and gets the value; join after exit",
      {with<J>(full()), with<join_after_exit>(full()), with<J>(random(100000))});
    FIBER_MODEL_CASE(cases, "I-J2", "exit racing detach: exactly one party frees",
      {with<D>(full()), with<D>(random(100000))});
    FIBER_MODEL_CASE(cases, "I-J2-J4", "exit, join and detach race: one frees, one of join/detach wins",
      {with<JD>(bound(3, false)), with<DJ>(bound(3, false)), with<JD>(random(100000)),
       with<DJ>(random(100000)), deep<JD>(bound(4, false)), deep<DJ>(random(1000000))});
    return cases;
  };
  return run_model(argc, argv, "join", build(0));
}
