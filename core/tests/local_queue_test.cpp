// core/tests/local_queue_test.cpp - a KLT's queue (local_queue.hpp) natively:
// the native seam's atomics, real threads, this machine's memory model, and
// many more operations than the model's few (models/local_queue.cpp checks
// every interleaving of those).  An owner pushes nodes in id order, every
// seventh pinned, and pops one after every second push (so its ring grows
// and wraps); two thieves steal half (cap 64) into their own queues and pop
// those; a monitor evacuates into a locked global queue now and then.  Every
// node must be taken exactly once (I-L1), and every party's takes must come
// in push order (I-L2, I-L3, I-L4).  No runtime is started: the seam's
// preemption calls are no-ops on an OS thread.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "fiber/detail/local_queue.hpp"
#include "fiber/detail/run_queue.hpp"
#include "fiber/detail/seam.hpp"

namespace {

using fiber::detail::native_seam;

struct node {
  native_seam::var<node*> rq_next{nullptr};
  native_seam::var<bool> pinned{false};
  native_seam::var<std::size_t> rq_stamp{0};
  unsigned id = 0;
};

using lqueue = fiber::detail::local_queue<native_seam, node, 4>;
using gqueue = fiber::detail::run_queue<native_seam, node>;

// The planted control: a queue whose owner loses one popped node in 4096.
struct losing_queue : lqueue {
  unsigned pops = 0;
  node* pop_front() noexcept {
    node* n = lqueue::pop_front();
    if (n && ++pops % 4096 == 0) n = lqueue::pop_front();  // the bug: the first is dropped
    return n;
  }
};

struct outcome {
  unsigned missing = 0, duplicated = 0, out_of_order = 0, pinned_stolen = 0;
  unsigned stolen = 0, evacuated = 0;  // taken by the thieves, by the monitor
};

template <class Q>
outcome hammer(unsigned n_nodes) {
  std::unique_ptr<node[]> nodes(new node[n_nodes]);
  std::unique_ptr<std::atomic<unsigned>[]> taken(new std::atomic<unsigned>[n_nodes]);
  for (unsigned i = 0; i < n_nodes; ++i) {
    nodes[i].id = i;
    taken[i].store(0, std::memory_order_relaxed);  // relaxed: before the threads start
  }
  Q owner_q;
  lqueue thief_q[2];
  gqueue global;
  std::atomic<bool> done{false};
  std::atomic<unsigned> out_of_order{0}, pinned_stolen{0}, stolen{0};

  auto take = [&](node* n, unsigned& last, bool& any) {
    taken[n->id].fetch_add(1, std::memory_order_relaxed);  // relaxed: read after the joins
    if (any && n->id <= last) out_of_order.fetch_add(1, std::memory_order_relaxed);  // relaxed: idem
    last = n->id;
    any = true;
  };

  std::thread owner([&] {
    unsigned last = 0;
    bool any = false;
    for (unsigned i = 0; i < n_nodes; ++i) {
      nodes[i].pinned.store(i % 7 == 3);
      owner_q.push_back(&nodes[i]);
      if (i % 2 == 1)
        if (node* n = owner_q.pop_front()) take(n, last, any);
    }
    while (node* n = owner_q.pop_front()) take(n, last, any);
    done.store(true, std::memory_order_release);  // pairs with the thieves' acquire
  });
  std::vector<std::thread> thieves;
  for (unsigned t = 0; t < 2; ++t)
    thieves.emplace_back([&, t] {
      unsigned last = 0;
      bool any = false;
      auto drain_own = [&] {
        while (node* n = thief_q[t].pop_front()) {
          if (n->pinned.load()) pinned_stolen.fetch_add(1, std::memory_order_relaxed);  // relaxed: counted
          stolen.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after the joins
          take(n, last, any);
        }
      };
      while (!done.load(std::memory_order_acquire)) {  // pairs with the owner's release
        owner_q.steal_half_into(thief_q[t], 64);
        drain_own();
      }
      drain_own();
    });
  std::thread monitor([&] {
    while (!done.load(std::memory_order_acquire)) {  // pairs with the owner's release
      owner_q.evacuate_into(global);
      std::this_thread::yield();
    }
  });
  owner.join();
  for (auto& t : thieves) t.join();
  monitor.join();

  outcome o;
  unsigned last = 0;
  bool any = false;
  while (node* n = global.pop_front()) {
    if (n->pinned.load()) ++o.pinned_stolen;
    ++o.evacuated;
    take(n, last, any);
  }
  while (node* n = owner_q.pop_front()) take(n, last, any);  // nothing should be left
  for (unsigned i = 0; i < n_nodes; ++i) {
    const unsigned c = taken[i].load(std::memory_order_relaxed);  // relaxed: after the joins
    if (c == 0) ++o.missing;
    if (c > 1) ++o.duplicated;
  }
  o.out_of_order = out_of_order.load(std::memory_order_relaxed);  // relaxed: after the joins
  o.pinned_stolen += pinned_stolen.load(std::memory_order_relaxed);  // relaxed: after the joins
  o.stolen = stolen.load(std::memory_order_relaxed);                  // relaxed: after the joins
  return o;
}

TEST(LocalQueueNative, OwnerThievesAndMonitorLoseNothing) {
  unsigned stolen = 0, evacuated = 0;
  for (int round = 0; round < 3; ++round) {
    const outcome o = hammer<lqueue>(300000);
    stolen += o.stolen;
    evacuated += o.evacuated;
    EXPECT_EQ(o.missing, 0u) << "I-L1: nodes never taken (round " << round << ")";
    EXPECT_EQ(o.duplicated, 0u) << "I-L1: nodes taken twice";
    EXPECT_EQ(o.out_of_order, 0u) << "I-L2..I-L4: a party took nodes out of push order";
    EXPECT_EQ(o.pinned_stolen, 0u) << "I-L3/I-L4: a pinned node left its owner";
  }
  // Not vacuous: the thieves and the monitor did take nodes from the owner.
  EXPECT_GT(stolen, 0u);
  EXPECT_GT(evacuated, 0u);
  std::printf("LocalQueueNative: %u stolen, %u evacuated over 3 rounds of 300000\n", stolen, evacuated);
}

// The control: the same harness must see the planted loss.
TEST(LocalQueueNative, ControlLosingQueueIsCaught) {
  const outcome o = hammer<losing_queue>(300000);
  EXPECT_GT(o.missing, 0u) << "the harness did not see the planted loss";
}

}  // namespace
