// models/split_search.hpp - Relacy's tree searches (full and context-bound),
// split into independent jobs, and sized before they are run.
//
// Relacy's full and context-bound searches are a depth-first walk of a tree:
// every nondeterministic choice of one execution (which thread runs next,
// which store a load reads, whether a timed wait times out...) is a node whose
// children are the alternatives, and every leaf is one iteration.  The walk is
// single-threaded and cannot be resumed, so a search that needs hours cannot
// use more than one core and is lost when it is stopped.
//
// split_scheduler<N> is a scheduler for rl::run_test with the same choices as
// rl::full_search_scheduler (or rl::context_bound_scheduler, g_split.bounded)
// - it reuses their base, rl::tree_search_scheduler, and only replaces how a
// choice is made and how the walk backtracks - in three modes:
//
//   dfs        the subtree under a fixed prefix of choices (a "job"): the
//              walk backtracks only below the prefix.  An empty prefix is the
//              whole search, iteration for iteration the same as Relacy's own
//              (models/CMakeLists.txt checks the counts agree).
//   enumerate  the prefixes of length `depth` that exist (each once) and
//              extend the given prefix: the jobs whose subtrees partition the
//              search (or the subtree of a job too big to run whole).
//              Choices below `depth` take their first alternative.
//   probe      Knuth's estimator of the tree's size: a random path from the
//              root, weighted by the product of the branching factors on it.
//              Its mean over many probes is an unbiased estimate of the number
//              of leaves, i.e. of the iterations the search will take.
//
// tools/model_campaign.py runs the jobs of one search in parallel, with a
// checkpoint per job, and adds up their iterations.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "fiber/detail/seam.hpp"

namespace fiber::models {

struct split_state {
  enum mode_t { dfs, enumerate, probe };
  static constexpr unsigned kMaxPrefix = 64;

  mode_t mode = dfs;
  bool bounded = false;  // context-bound search with `bound` preemptions
  unsigned bound = 0;

  unsigned prefix[kMaxPrefix] = {};  // dfs: the forced first choices
  unsigned prefix_len = 0;
  bool prefix_missing = false;  // dfs: the prefix names no node of this tree

  unsigned depth = 0;                 // enumerate: prefix length
  unsigned long long enumerated = 0;  // enumerate: prefixes printed
  std::FILE* out = stdout;            // enumerate: one "PREFIX a.b.c" line each

  unsigned long long probes_wanted = 0;  // probe
  unsigned long long probes = 0;
  double sum = 0, sumsq = 0;  // of the path weights
  double depth_sum = 0;
  unsigned depth_max = 0;
  // Per kind of choice (rl::sched_type: thread, load value, CAS failure,
  // free deferral, timeout/spurious wake-up): nodes and log2 of their
  // branching, summed over the probes - where the tree's size comes from.
  static constexpr unsigned kKinds = 5;
  double kind_nodes[kKinds] = {};
  double kind_log2[kKinds] = {};
  std::uint64_t rng = 0x9e3779b97f4a7c15ull;

  void reset_results() {
    prefix_missing = false;
    enumerated = 0;
    probes = 0;
    sum = sumsq = depth_sum = 0;
    depth_max = 0;
    for (unsigned i = 0; i < kKinds; ++i) kind_nodes[i] = kind_log2[i] = 0;
  }
};
inline split_state g_split;

template <rl::thread_id_t N>
class split_scheduler
    : public rl::tree_search_scheduler<split_scheduler<N>, rl::context_bound_scheduler_thread_info<N>, N> {
 public:
  using base_t =
      rl::tree_search_scheduler<split_scheduler<N>, rl::context_bound_scheduler_thread_info<N>, N>;
  using thread_info_t = typename base_t::thread_info_t;
  using shared_context_t = typename base_t::shared_context_t;

  split_scheduler(rl::test_params& params, shared_context_t& ctx, rl::thread_id_t dynamic)
      : base_t(params, ctx, dynamic) {
    if (g_split.mode != split_state::probe) {
      // count 0: not visited yet; the first visit fills in count and type.
      for (unsigned i = 0; i < g_split.prefix_len; ++i)
        this->stree_.push_back(typename base_t::stree_node{0, g_split.prefix[i], rl::sched_type_sched, 0});
    }
  }

  rl::thread_id_t iteration_begin_impl() {
    switches_ = g_split.bound;
    weight_ = 1.0;
    this->stree_depth_ = 0;
    if (g_split.mode == split_state::probe) this->stree_.clear();
    const unsigned index = rand_impl(this->running_threads_count, rl::sched_type_sched);
    return this->running_threads[index];
  }

  // The context-bound rule of rl::context_bound_scheduler; full search may
  // always switch.
  bool can_switch(thread_info_t& t) {
    t.sched_count_ += 1;
    return !g_split.bounded || switches_ != 0;
  }
  void on_switch(thread_info_t& t) {
    if (!g_split.bounded) return;
    if (t.state_ == rl::thread_state_running) {
      RL_VERIFY(switches_ != 0);
      switches_ -= 1;
    } else {
      t.forced_context_switch_count_ += 1;
    }
  }
  double iteration_count_approx() { return 1.0; }  // progress output only

  unsigned rand_impl(unsigned limit, rl::sched_type type) {
    auto& tree = this->stree_;
    const std::size_t at = this->stree_depth_++;
    if (g_split.mode == split_state::probe) {
      const unsigned index = static_cast<unsigned>(next_random() % limit);
      weight_ *= limit;
      if (static_cast<unsigned>(type) < split_state::kKinds && limit > 1) {
        g_split.kind_nodes[type] += 1;
        g_split.kind_log2[type] += std::log2(static_cast<double>(limit));
      }
      tree.push_back(typename base_t::stree_node{limit, index, type, 0});  // for a replay
      return index;
    }
    if (at == tree.size()) {
      tree.push_back(typename base_t::stree_node{limit, 0, type, 0});
      return 0;
    }
    auto& node = tree[at];
    if (node.count_ == 0) {  // a prefix node, first visit
      node.count_ = limit;
      node.type_ = type;
      if (node.index_ >= limit) {
        g_split.prefix_missing = true;
        node.index_ = limit - 1;
      }
    }
    // A different count or type at the same node: the test is not
    // deterministic (see Relacy's rand_impl).
    RL_VERIFY(node.count_ == limit && node.type_ == type);
    return node.index_;
  }

  bool iteration_end_impl() {
    auto& tree = this->stree_;
    switch (g_split.mode) {
      case split_state::probe: {
        g_split.probes += 1;
        g_split.sum += weight_;
        g_split.sumsq += weight_ * weight_;
        g_split.depth_sum += static_cast<double>(tree.size());
        if (tree.size() > g_split.depth_max) g_split.depth_max = static_cast<unsigned>(tree.size());
        return g_split.probes >= g_split.probes_wanted;
      }
      case split_state::enumerate: {
        if (tree.size() < g_split.prefix_len) {
          g_split.prefix_missing = true;
          return true;
        }
        const std::size_t len = tree.size() < g_split.depth ? tree.size() : g_split.depth;
        std::fputs("PREFIX ", g_split.out);
        for (std::size_t i = 0; i < len; ++i)
          std::fprintf(g_split.out, i ? ".%u" : "%u", tree[i].index_);
        std::fputc('\n', g_split.out);
        g_split.enumerated += 1;
        return backtrack(g_split.prefix_len, len);
      }
      case split_state::dfs:
      default:
        // A path that ended inside the prefix: the prefix is not a node.
        if (tree.size() < g_split.prefix_len) {
          g_split.prefix_missing = true;
          return true;
        }
        return backtrack(g_split.prefix_len, tree.size());
    }
  }

 private:
  // Next path of the depth-first walk, changing only nodes in [floor, top).
  bool backtrack(std::size_t floor, std::size_t top) {
    auto& tree = this->stree_;
    for (std::size_t i = top; i > floor; --i) {
      auto& n = tree[i - 1];
      if (n.index_ + 1 < n.count_) {
        tree.resize(i);
        n.index_ += 1;
        return false;
      }
    }
    return true;
  }
  std::uint64_t next_random() {  // splitmix64
    std::uint64_t z = (g_split.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  unsigned switches_ = 0;
  double weight_ = 1.0;
};

// Runs Test under split_scheduler with g_split as set by the caller; fills
// params.test_result/stop_iteration, and params.final_state on a failure
// (the replay state of Relacy's own scheduler for the same search).
template <class Test>
void run_split(rl::test_params& params) {
  rl::ostringstream state;
  params.test_result = rl::run_test<Test, split_scheduler<Test::params::thread_count>>(params, state, false);
  if (params.test_result != rl::test_result_success) params.final_state = state.str();
}

}  // namespace fiber::models
