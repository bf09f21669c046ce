// models/readiness.cpp - Relacy model of core/include/fiber/detail/readiness.hpp
// (I-RD1..I-RD4): a fiber that found a descriptor not ready parks, racing the
// poller's edge.  The production basic_readiness, spinlock, wait queue and
// parker; the kernel is an atomic count of available items (the I/O attempt
// is "take one if any") and a plain payload the producer writes first.
//
// Threads: waiters (fibers doing the I/O loop of core/src/io_fiber.cpp:
// snapshot, attempt, wait) and one producer that makes an item available
// and then delivers the edge (the poller thread's notify()).  An edge lost
// between a waiter's failed attempt and its park is a DEADLOCK (the waiter
// parks forever); a waiter that sees the new sequence number without the item
// is the same deadlock one loop later (I-RD2); a node left queued after its
// waiter returned is ACCESS TO FREED MEMORY when the next edge grants it (I-RD4).
#include "fiber/detail/readiness.hpp"
#include "model_runner.hpp"

namespace {

using seam = fiber::detail::seam;
using fiber::detail::kNoDeadline;
using fiber::detail::mo;
using readiness = fiber::detail::basic_readiness<seam>;

struct kernel {
  seam::atomic<unsigned> avail{0};
  seam::var<int> payload{0};

  // The I/O attempt: take one item if there is one (never blocks).
  bool try_take() {
    unsigned a = avail.load(mo::acquire);  // acquire: pairs with produce()'s release
    while (a != 0)
      if (avail.compare_exchange_weak(a, a - 1, mo::acquire, mo::acquire)) return true;  // as above
    return false;
  }
  void produce(bool write_payload = true) {  // the payload only once: it is not per item
    if (write_payload) payload.store(42);
    avail.fetch_add(1, mo::release);  // release: the item's data with it
  }
};

// The waiter's loop as io_fiber.cpp's park_loop: the snapshot comes before
// the attempt.  `timed`: the first wait has a deadline (SO_RCVTIMEO), and a
// timeout only loops (the node must be off the queue by then: I-RD4).
void consume_one(readiness& r, kernel& k, bool timed) {
  for (;;) {
    std::uint32_t seen = r.snapshot();
    if (k.try_take()) {
      RL_ASSERT(k.payload.load() == 42);
      return;
    }
    std::uint64_t deadline = timed ? seam::now_ns() + 10 : kNoDeadline;
    timed = false;
    r.wait(seen, deadline);
  }
}

// I-RD1/I-RD2: one waiter, one producer: the edge is never lost.
template <bool Timed>
struct edge_vs_park : rl::test_suite<edge_vs_park<Timed>, 2> {
  fiber::detail::relacy_env_t<> env;
  readiness r;
  kernel k;
  void thread(unsigned t) {
    if (t == 0) {
      consume_one(r, k, Timed);
    } else {
      k.produce();
      r.notify();
    }
  }
};

// I-RD1..I-RD4 with three threads: two waiters (the first timed) on one
// direction, and a producer that makes two items available and then delivers
// one edge: notify() wakes every queued waiter (I-RD3), and a waiter that
// parks after the edge saw it in its snapshot check.  Both get an item.
template <bool Timed>
struct two_waiters : rl::test_suite<two_waiters<Timed>, 3> {
  fiber::detail::relacy_env_t<> env;
  readiness r;
  kernel k;
  void thread(unsigned t) {
    if (t == 2) {
      k.produce();
      k.produce(false);
      r.notify();
    } else {
      consume_one(r, k, Timed && t == 0);
    }
  }
};

}  // namespace

// Bounded searches run with spurious wake-ups off: with them on, an untimed
// waiter's park loop can be woken spuriously without end, and the bounded
// tree does not close (bound 1 with three threads ran past 3 M iterations
// against an estimate of 5.6 k); the random searches keep them on.
// Measured (2 vCPUs shared): I-RD1 full 0.75 M iterations 9 s; the timed full
// search 25.8 M iterations 283 s (--long); I-RD3-RD4 untimed bound 3: 0.77 M,
// 12 s; timed bound 2: 11.3 M, 185 s (--long).
int main(int argc, char** argv) {
  using namespace fiber::models;
  // A generic lambda, so that a mutant's build (FIBER_MODEL_CASES, model_runner.hpp)
  // instantiates only the cases its tests run.
  auto build = [](auto) {
    std::vector<model_case> cases;
    FIBER_MODEL_CASE(cases, "I-RD1", "an edge racing the park is never lost (untimed and timed waiter)",
      {with<edge_vs_park<false>>(full()), with<edge_vs_park<true>>(bound(3, false)),
       with<edge_vs_park<true>>(random(200000)), deep<edge_vs_park<true>>(full())});
    FIBER_MODEL_CASE(cases, "I-RD3-RD4", "two waiters, two edges: both served; timeouts leave nothing queued",
      {with<two_waiters<false>>(bound(3, false)), with<two_waiters<true>>(bound(1, false)),
       with<two_waiters<true>>(random(100000)), deep<two_waiters<true>>(bound(2, false))});
    return cases;
  };
  return run_model(argc, argv, "readiness", build(0));
}
