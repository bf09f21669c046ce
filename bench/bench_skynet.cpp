// bench/bench_skynet.cpp - (c) skynet: a 10-ary spawn tree; every internal ULT
// creates 10 children and joins them, each leaf returns its id; the root's sum
// is checked (499999500000 for 1M leaves, 4999950000 for 100k).  One iteration
// = one tree; ops = ULTs created per tree (1111111 or 111111), so per-ULT
// time = real_time / ops.
// Variants (per size, "skynet1m/...", "skynet100k/..." and "skynet10k/...";
// 1M is left out with --quick):
//   fiber_1klt      fiber C API, klts=1, default stack, quantum and policy
//   fiber_allklts   the same, klts=0 (every online CPU)
//   fiber_*_runnext the same with fiber_set_policy(FIBER_POLICY_RUNNEXT): a
//                   created fiber runs next (depth-first), for comparison
//   boost_pooled    Boost.Fiber dispatch + join, one thread, recycled stacks
//                   (pooled_fixedsize_stack, 16 KiB)
//   boost_malloc    the same with fixedsize_stack (malloc, 16 KiB)
//   boost_ws        Boost.Fiber work_stealing on every CPU, dispatch + join,
//                   recycled stacks (per-thread free lists, 16 KiB)
// Go's skynet (bench/go/skynet.go) is run by bench/run.py beside this binary.
// Each call first builds one untimed tree, so recycled stacks are measured
// warm (the runtime and the Boost pools are fresh in every call).
// A failure of the library (e.g. fiber_create returning EAGAIN when stacks
// run out) is reported verbatim with SkipWithError; it is not worked around.
#include <atomic>
#include <cinttypes>
#include <cstdio>

#include "common.hpp"
#ifdef BENCH_HAVE_BOOST
#include "boost_common.hpp"
#endif

namespace {

constexpr std::uint64_t kFanout = 10;

std::uint64_t leaves_of(int depth) {
  std::uint64_t n = 1;
  for (int i = 0; i < depth; ++i) n *= kFanout;
  return n;
}
std::uint64_t ults_of(int depth) {
  std::uint64_t n = 0, level = 1;
  for (int i = 0; i <= depth; ++i, level *= kFanout) n += level;
  return n;
}
std::uint64_t expected_sum(int depth) {
  const std::uint64_t n = leaves_of(depth);
  return n * (n - 1) / 2;
}

bool check(benchmark::State& st, std::uint64_t got, int depth) {
  if (got == expected_sum(depth)) return true;
  char buf[128];
  std::snprintf(buf, sizeof buf, "wrong sum %" PRIu64 ", expected %" PRIu64, got,
                expected_sum(depth));
  st.SkipWithError(buf);
  return false;
}

// --- fiber -------------------------------------------------------------------
struct sk_arg {
  std::uint64_t num;
  std::uint64_t size;
};
std::atomic<int> g_fiber_err{0};  // first error any fiber of the tree saw

void note_err(int e) {
  int zero = 0;
  // relaxed: read after the root is joined, which orders it
  g_fiber_err.compare_exchange_strong(zero, e, std::memory_order_relaxed);
}

void* sk_fiber(void* p) {
  const sk_arg a = *static_cast<const sk_arg*>(p);
  if (a.size == 1) return reinterpret_cast<void*>(static_cast<std::uintptr_t>(a.num));
  const std::uint64_t sub = a.size / kFanout;
  sk_arg args[kFanout];
  fiber_t ids[kFanout];
  unsigned n = 0;
  for (; n < kFanout; ++n) {
    args[n] = {a.num + n * sub, sub};
    if (int e = fiber_create(&ids[n], nullptr, sk_fiber, &args[n])) {
      note_err(e);
      break;
    }
  }
  std::uint64_t sum = 0;
  for (unsigned i = 0; i < n; ++i) {
    void* r = nullptr;
    if (int e = fiber_join(ids[i], &r)) {
      note_err(e);
      continue;
    }
    sum += reinterpret_cast<std::uintptr_t>(r);
  }
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(sum));
}

void skynet_fiber_p(benchmark::State& st, int depth, unsigned klts, int policy) {
  bench::fiber_run(st, {klts, FIBER_DEFAULT_TIMESLICE_US, policy}, [&] {
    bool warm = false;  // the first tree is an untimed warm-up (stack caches)
    while (warm ? st.KeepRunning() : (warm = true)) {
      g_fiber_err.store(0, std::memory_order_relaxed);  // no fiber of a tree is alive
      sk_arg root{0, leaves_of(depth)};
      const auto sum = reinterpret_cast<std::uintptr_t>(sk_fiber(&root));
      if (int e = g_fiber_err.load(std::memory_order_relaxed)) {
        st.SkipWithError(bench::err_text("fiber_create/fiber_join in the tree", e).c_str());
        break;
      }
      if (!check(st, sum, depth)) break;
    }
  });
  bench::set_ops(st, static_cast<double>(ults_of(depth)));
}

void skynet_fiber(benchmark::State& st, int depth, unsigned klts) {
  skynet_fiber_p(st, depth, klts, FIBER_POLICY_FIFO);
}
void skynet_fiber_runnext(benchmark::State& st, int depth, unsigned klts) {
  skynet_fiber_p(st, depth, klts, FIBER_POLICY_RUNNEXT);
}

// --- Boost.Fiber ----------------------------------------------------------------
#ifdef BENCH_HAVE_BOOST
template <class Alloc>
std::uint64_t sk_boost(Alloc& salloc, std::uint64_t num, std::uint64_t size) {
  if (size == 1) return num;
  const std::uint64_t sub = size / kFanout;
  std::uint64_t res[kFanout];
  boost::fibers::fiber fs[kFanout];
  for (std::uint64_t i = 0; i < kFanout; ++i) {
    fs[i] = boost::fibers::fiber(boost::fibers::launch::dispatch, std::allocator_arg, salloc,
                                 [&salloc, &res, i, num, sub] {
                                   res[i] = sk_boost(salloc, num + i * sub, sub);
                                 });
  }
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < kFanout; ++i) {
    fs[i].join();
    sum += res[i];
  }
  return sum;
}

template <class Alloc>
void skynet_boost_loop(benchmark::State& st, int depth, Alloc& salloc) {
  bool warm = false;  // the first tree is an untimed warm-up (stack pools)
  while (warm ? st.KeepRunning() : (warm = true)) {
    // The root is a fiber too (dispatch), as in the fiber variant.
    std::uint64_t sum = 0;
    boost::fibers::fiber root(boost::fibers::launch::dispatch, std::allocator_arg, salloc,
                              [&] { sum = sk_boost(salloc, 0, leaves_of(depth)); });
    root.join();
    if (!check(st, sum, depth)) break;
  }
  bench::set_ops(st, static_cast<double>(ults_of(depth)));
}

void skynet_boost_pooled(benchmark::State& st, int depth) {
  bench::boost_run([&] {
    boost::fibers::pooled_fixedsize_stack salloc(bench::kBoostStack);
    skynet_boost_loop(st, depth, salloc);
  });
}
void skynet_boost_malloc(benchmark::State& st, int depth) {
  bench::boost_run([&] {
    boost::fibers::fixedsize_stack salloc(bench::kBoostStack);
    skynet_boost_loop(st, depth, salloc);
  });
}
void skynet_boost_ws(benchmark::State& st, int depth) {
  bench::ws_pool::get().run([&] {
    bench::tl_pooled_stack salloc(bench::kBoostStack);
    skynet_boost_loop(st, depth, salloc);
  });
}
#endif

void register_size(const char* topic, int depth) {
  auto reg = [&](const char* variant, void (*fn)(benchmark::State&, int, unsigned),
                 unsigned klts) {
    std::string name = std::string(topic) + "/" + variant;
    auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, depth, klts)->UseRealTime();
    b->Unit(benchmark::kMillisecond);
    if (depth >= 6) b->Iterations(1);
  };
  reg("fiber_1klt", skynet_fiber, 1);
  reg("fiber_allklts", skynet_fiber, 0);
  reg("fiber_1klt_runnext", skynet_fiber_runnext, 1);
  reg("fiber_allklts_runnext", skynet_fiber_runnext, 0);
#ifdef BENCH_HAVE_BOOST
  auto regb = [&](const char* variant, void (*fn)(benchmark::State&, int)) {
    std::string name = std::string(topic) + "/" + variant;
    auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, depth)->UseRealTime();
    b->Unit(benchmark::kMillisecond);
    if (depth >= 6) b->Iterations(1);
  };
  regb("boost_pooled", skynet_boost_pooled);
  regb("boost_malloc", skynet_boost_malloc);
  regb("boost_ws", skynet_boost_ws);
#endif
}

void register_all() {
  register_size("skynet10k", 4);
  register_size("skynet100k", 5);
  if (!bench::quick()) register_size("skynet1m", 6);
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
