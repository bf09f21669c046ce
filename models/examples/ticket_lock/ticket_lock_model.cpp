// models/examples/ticket_lock/ticket_lock_model.cpp - model-checks ticket_lock.hpp.
//   ./models/examples/ticket_lock/model_ticket_lock            (all searches)
//   ./models/examples/ticket_lock/model_ticket_lock --case mutual-exclusion --variant 0 --replay '<state>'
#include "model_runner.hpp"
#include "ticket_lock.hpp"

namespace {

using seam = fiber::detail::seam;

template <unsigned N, unsigned K>
struct exclusion : rl::test_suite<exclusion<N, K>, N> {
  fiber::detail::relacy_env_t<> env;  // every model test owns one
  ticket_lock<seam> lock;
  seam::var<unsigned> counter{0};     // plain: overlapping sections are a DATA RACE
  void thread(unsigned) {
    for (unsigned i = 0; i < K; ++i) {
      lock.lock();
      counter.store(counter.load() + 1);
      lock.unlock();
    }
  }
  void after() { RL_ASSERT(counter.load() == N * K); }
};

}  // namespace

int main(int argc, char** argv) {
  using namespace fiber::models;
  return run_model(argc, argv, "ticket_lock",
                   {{"mutual-exclusion", "ticket lock: one holder, sections ordered",
                     {with<exclusion<2, 1>>(full()), with<exclusion<3, 1>>(bound(2)),
                      with<exclusion<3, 2>>(random(100000))}}});
}
