// models/barrier.cpp - Relacy model of core/include/fiber/detail/barrier.hpp
// (I-B1..I-B5) with the production spinlock, wait_queue, grant_list and
// parker.  Each party writes its own plain slot before arriving and reads every
// slot after returning: a party that leaves before all arrived (or is not
// ordered after their writes) is a DATA RACE or a stale read; a party never
// released is a DEADLOCK.
#include "fiber/detail/barrier.hpp"
#include "model_runner.hpp"
#include "spinlock_spec.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::mo;
using barrier = fiber::detail::basic_barrier<seam>;

// N parties x G generations of one barrier.  Generation g writes slot[g % 2]
// (two buffers, so a fast party's write for g+1 never meets a slow party's
// read for g: they are one barrier apart).  The completion step (I-B4) sees
// every write of its generation, and every party sees the completion's write.  I-B3: one serial return per generation.
template <class Seam, unsigned N, unsigned G>
struct phases_t : rl::test_suite<phases_t<Seam, N, G>, N> {
  fiber::detail::relacy_env_t<fiber::detail::basic_parker<Seam>> env;
  fiber::detail::basic_barrier<Seam> b{N};
  typename Seam::template var<unsigned> slot[2][N];
  typename Seam::template var<unsigned> completed[G];  // written by the completion step
  typename Seam::template atomic<unsigned> serial[G];
  void thread(unsigned t) {
    for (unsigned g = 0; g < G; ++g) {
      slot[g % 2][t].store(g + 1);
      const bool s = b.arrive_and_wait([&]() noexcept {
        for (unsigned j = 0; j < N; ++j) RL_ASSERT(slot[g % 2][j].load() == g + 1);  // I-B4
        completed[g].store(1);
      });
      if (s) serial[g].fetch_add(1, mo::relaxed);  // relaxed: read in after()
      RL_ASSERT(completed[g].load() == 1);  // I-B4: completion before any return
      for (unsigned j = 0; j < N; ++j) RL_ASSERT(slot[g % 2][j].load() == g + 1);  // I-B4
    }
  }
  void after() {
    for (unsigned g = 0; g < G; ++g) RL_ASSERT(serial[g].load(mo::relaxed) == 1);  // I-B3
    RL_ASSERT(b.check_destroy() == 0);                                             // I-B1, I-B5
  }
};
template <unsigned N, unsigned G>
using phases = phases_t<seam, N, G>;
// The same test with the barrier's internal spinlock replaced by its
// specification (relacy_seam_abs, seam_relacy.hpp): compositional full search.
template <unsigned N, unsigned G>
using phases_abs = phases_t<fiber::detail::relacy_seam_abs, N, G>;

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  // Bounded searches run without spurious wake-ups (with them Relacy's context
  // bound does not terminate on these waits); random searches have them on.
  // Full search of 2 parties x 2 generations was still running after 20 min,
  // so its default is context bound 5 (172k iterations); the full search is
  // an exhaustive variant (models-exhaustive).
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-B4", "nobody leaves a phase before all arrived; completion sees all",
      {with<phases<2, 1>>(full()), with<phases<3, 1>>(bound(3, false)),
       with<phases<3, 1>>(random(100000)), deep<phases<4, 1>>(bound(2, false)),
       deep<phases<4, 1>>(random(1000000))});
    FIBER_MODEL_CASE(cases, "I-B2-B3", "reuse across 2 generations; one serial return per generation",
      {with<phases<2, 2>>(bound(5, false)), with<phases<2, 2>>(random(100000)),
       with<phases<3, 2>>(bound(2, false)), with<phases<3, 2>>(random(100000)),
       deep<phases<3, 3>>(random(1000000)), exhaustive<phases<2, 2>>(full())});
    // Compositional: the barrier's spinlock replaced by its specification
    // (models/spinlock_spec.hpp; the spinlock has its own full search), which
    // makes the 2-generation full search affordable (5.1e8 vs 4.7e9).
    FIBER_MODEL_CASE(cases, "I-B2-B3-spec", "I-B2-B3 with the barrier's spinlock replaced by its specification",
      {with<phases_abs<2, 2>>(bound(5, false)), with<phases_abs<3, 2>>(bound(2, false)),
       exhaustive<phases_abs<2, 2>>(full())});
    return cases;
  };
  return run_model(argc, argv, "barrier", build(0));
}
