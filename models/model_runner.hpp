// models/model_runner.hpp - runs a model's Relacy tests under named searches and
// reports them the same way everywhere (console, ctest, papers/scripts/models_table.py).
//
// A model executable is one algorithm (parker, spinlock, ...).  It lists cases,
// one per invariant ID written in the production header (I-P1, I-S1, ...); a
// case has variants, each a Relacy test type (which fixes the thread count)
// with a search:
//   full(spurious=false)     exhaustive; spurious wake-ups off (Relacy's would
//                            make correct waiters look like LIVELOCK)
//   bound(k, spurious=true)  context-bound search, k preemptions
//   random(n, spurious=true) n random schedules
// Variants marked deep() run only with --long (the models-long target): deeper
// searches measured to finish in minutes.  Variants marked exhaustive() run
// only with --exhaustive (the models-exhaustive target): full searches that
// did not finish in the 5-20 min they were given on 2 vCPUs (models/README.md),
// kept for a long campaign on a bigger machine.
//
// Command line (all optional):
//   --list               list cases and variants
//   --case ID            run only that case (repeatable)
//   --variant K          run only variant K of the selected case
//   --long               also run the long variants (deeper searches)
//   --exhaustive         run only the exhaustive variants (no known time bound)
//   --iters N            override the iteration count of random searches
//   --search S           override the search of the selected variants:
//                        full | boundK | random (iterations: --iters), with
//                        "+spurious" to turn spurious wake-ups on
//   --expect-fail        mutant mode: stop at the first failing variant; exit 0
//                        only if Relacy reported a failure (history suppressed)
//   --replay STATE       re-run one failing iteration (needs --case and
//                        --variant) and print Relacy's full history
//   --estimate N         Knuth's estimate of the size of the selected full or
//                        bounded searches, from N random paths (split_search.hpp)
//   --split-depth D      list the prefixes of D choices (those extending
//                        --prefix, if given): the jobs of a campaign
//   --prefix a.b.c       run only the subtree under that prefix ("root": the
//                        whole search, under split_scheduler)
//   --progress[=S]       a status line on stderr every S s (default 5) with the
//                        iterations so far, the rate and an ETA (progress_sink)
//   --expect-iters N     the ETA's total for a tree search (an earlier run's
//                        count); without it, Knuth's estimate
//   --min-bound          after a failing full or bounded search, re-run the
//                        case at context bounds 0, 1, ... and report the least
//                        that fails ("MINIMAL BOUND" line) with its replay: a
//                        failure found deep shrinks to its fewest preemptions
//   --help               the usage (kUsage); options are parsed by getopt_long
// Output: a human line per variant, and a machine line starting "RESULT\t"
// (key=value fields) that papers/scripts/models_table.py parses.  On failure:
// Relacy's history (call sites are core/ source lines, via src_loc) and the
// one command that replays just the failing iteration.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>
#include <unistd.h>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fiber/detail/parker.hpp"  // relacy_env_t holds parkers
#include "fiber/detail/seam.hpp"
#include "split_search.hpp"

#ifndef FIBER_MUTANT_ID
#define FIBER_MUTANT_ID ""
#endif
#ifndef FIBER_MUTANT_DESC
#define FIBER_MUTANT_DESC ""
#endif
// The cases a build instantiates: "" = all (a model), or "|ID|ID|" (a mutant:
// the cases its tests run, set by models/CMakeLists.txt).  A mutant rebuilds
// the whole model source with one header changed; instantiating only the cases
// it is tested with cuts its compile time (CI's largest cost) to a fraction.
#ifndef FIBER_MODEL_CASES
#define FIBER_MODEL_CASES ""
#endif

namespace fiber::models {

struct search_cfg {
  rl::scheduler_type_e type;
  unsigned bound;
  unsigned long iters;
  bool spurious;
};
inline search_cfg full(bool spurious = false) { return {rl::sched_full, 0, 0, spurious}; }
inline search_cfg bound(unsigned k, bool spurious = true) { return {rl::sched_bound, k, 0, spurious}; }
inline search_cfg random(unsigned long n, bool spurious = true) {
  return {rl::sched_random, 0, n, spurious};
}

enum class tier { normal, deep, exhaustive };

struct variant {
  unsigned threads;
  search_cfg cfg;
  bool (*run)(rl::test_params&);
  tier level;
  void (*run_split)(rl::test_params&);  // the same test under split_scheduler
};

// A mutant's build (FIBER_MODEL_CASES set) leaves out what its ctest never
// runs: the deep and exhaustive variants, and - unless FIBER_MODEL_SPLIT=1 - the
// split-search instantiation of each test.  Their pointers are null, and
// run_variant refuses them with exit status 2 (never a "caught").
constexpr bool kMutantBuild = sizeof(FIBER_MODEL_CASES) > 1;
#ifndef FIBER_MODEL_SPLIT
#define FIBER_MODEL_SPLIT (!kMutantBuild)
#endif

template <class Test>
variant with(search_cfg c, tier level = tier::normal) {
  void (*split)(rl::test_params&) = nullptr;
  if constexpr (FIBER_MODEL_SPLIT) split = &run_split<Test>;
  return {static_cast<unsigned>(Test::params::thread_count), c, &rl::simulate<Test>, level, split};
}
template <class Test>
variant not_built(search_cfg c, tier level) {
  return {static_cast<unsigned>(Test::params::thread_count), c, nullptr, level, nullptr};
}
template <class Test>
variant deep(search_cfg c) {
  if constexpr (kMutantBuild) return not_built<Test>(c, tier::deep);
  else return with<Test>(c, tier::deep);
}
template <class Test>
variant exhaustive(search_cfg c) {
  if constexpr (kMutantBuild) return not_built<Test>(c, tier::exhaustive);
  else return with<Test>(c, tier::exhaustive);
}

inline const char* tier_suffix(tier t) {
  return t == tier::deep ? ", long" : t == tier::exhaustive ? ", exhaustive" : "";
}

struct model_case {
  std::string id;    // invariant ID(s), e.g. "I-P1"
  std::string what;  // the property in words
  std::vector<variant> variants;
};

// Whether case `id` is built (FIBER_MODEL_CASES above).
constexpr bool case_built(std::string_view id) {
  std::string_view all = FIBER_MODEL_CASES;
  if (all.empty()) return true;
  for (std::size_t i = 0; i + id.size() + 2 <= all.size(); ++i) {
    if (all[i] == '|' && all.substr(i + 1, id.size()) == id && all[i + 1 + id.size()] == '|') return true;
  }
  return false;
}

// Appends a case to `list` if it is built.  Used inside a generic lambda (a
// template), so a case that is not built is a discarded statement: its Relacy
// tests are never instantiated.
#define FIBER_MODEL_CASE(list, id, what, ...) \
  if constexpr (::fiber::models::case_built(id)) (list).push_back(::fiber::models::model_case{id, what, __VA_ARGS__})

inline const char* search_name(const search_cfg& c) {
  switch (c.type) {
    case rl::sched_full: return "full";
    case rl::sched_bound: return "bound";
    default: return "random";
  }
}

inline std::string search_label(const search_cfg& c) {
  std::string s = search_name(c);
  if (c.type == rl::sched_bound) s += std::to_string(c.bound);
  s += c.spurious ? "+spurious" : "";
  return s;
}

struct options {
  std::vector<std::string> cases;
  int variant = -1;
  bool long_run = false;
  bool exhaustive = false;
  unsigned long iters = 0;
  bool expect_fail = false;
  std::string replay;
  bool list = false;
  bool has_search = false;
  search_cfg search{};
  unsigned long long estimate = 0;  // --estimate N: probes
  int split_depth = -1;             // --split-depth K
  bool has_prefix = false;          // --prefix a.b.c ("" = the root: whole search)
  std::vector<unsigned> prefix;
  double progress_s = 0;            // --progress: seconds between status lines (0: none)
  double expect_iters = 0;          // --expect-iters: the ETA's total for a tree search
  bool min_bound = false;           // --min-bound: shrink a failure to its least context bound
};

// "full", "bound3", "random+spurious"...: the inverse of search_label().
inline bool parse_search(const std::string& text, search_cfg& out) {
  std::string s = text;
  bool spurious = false;
  if (auto plus = s.find("+spurious"); plus != std::string::npos) {
    spurious = true;
    s.erase(plus);
  }
  if (s == "full") out = full(spurious);
  else if (s == "random") out = random(100000, spurious);
  else if (s.rfind("bound", 0) == 0 && s.size() > 5)
    out = bound(static_cast<unsigned>(std::atoi(s.c_str() + 5)), spurious);
  else return false;
  return true;
}

inline constexpr const char* kUsage =
    "usage: %s [options]   (a Relacy model: see models/model_runner.hpp)\n"
    "  -l, --list            list cases and variants\n"
    "  -c, --case ID         run only that case (repeatable)\n"
    "  -v, --variant K       run only variant K of the selected case\n"
    "      --long            also run the long variants (deeper searches)\n"
    "      --exhaustive      run only the exhaustive variants (no known time bound)\n"
    "      --iters N         iteration count of random searches\n"
    "      --search S        full | boundK | random, optionally +spurious\n"
    "      --expect-fail     mutant mode: exit 0 only if Relacy reports a failure\n"
    "      --replay STATE    re-run one failing iteration (with --case, --variant)\n"
    "      --estimate N      Knuth's estimate of the search size from N random paths\n"
    "      --split-depth D   list the prefixes of D choices (the jobs of a campaign)\n"
    "      --prefix a.b.c    run only the subtree under that prefix (root: all)\n"
    "  -p, --progress[=S]    a status line on stderr every S seconds (default 5)\n"
    "                        with iterations, rate and an ETA (Knuth estimate)\n"
    "      --expect-iters N  the ETA's total: a tree search's size from an earlier\n"
    "                        run (the same code walks the same tree)\n"
    "      --min-bound       after a failing full/bounded search, find the least\n"
    "                        context bound that fails (MINIMAL BOUND line)\n"
    "  -h, --help            this text\n";

[[noreturn]] inline void usage_error(const char* argv0, const char* what) {
  std::fprintf(stderr, "%s: %s\n", argv0, what);
  std::fprintf(stderr, kUsage, argv0);
  std::exit(2);
}

inline void parse_prefix(const char* argv0, std::string t, options& o) {
  o.has_prefix = true;
  if (t == "root") t.clear();
  for (std::size_t at = 0; at < t.size();) {
    std::size_t dot = t.find('.', at);
    if (dot == std::string::npos) dot = t.size();
    o.prefix.push_back(static_cast<unsigned>(std::strtoul(t.substr(at, dot - at).c_str(), nullptr, 10)));
    at = dot + 1;
  }
  if (o.prefix.size() > split_state::kMaxPrefix) usage_error(argv0, "--prefix: too long");
}

// Options through getopt_long.
inline options parse(int argc, char** argv) {
  enum { kLong = 256, kExhaustive, kIters, kExpect, kReplay, kEstimate, kSplitDepth, kPrefix, kSearch, kExpectIters, kMinBound };
  static const ::option kOpts[] = {
      {"list", no_argument, nullptr, 'l'},          {"case", required_argument, nullptr, 'c'},
      {"variant", required_argument, nullptr, 'v'}, {"long", no_argument, nullptr, kLong},
      {"exhaustive", no_argument, nullptr, kExhaustive},
      {"iters", required_argument, nullptr, kIters},
      {"expect-fail", no_argument, nullptr, kExpect},
      {"replay", required_argument, nullptr, kReplay},
      {"estimate", required_argument, nullptr, kEstimate},
      {"split-depth", required_argument, nullptr, kSplitDepth},
      {"prefix", required_argument, nullptr, kPrefix},
      {"search", required_argument, nullptr, kSearch},
      {"progress", optional_argument, nullptr, 'p'},
      {"expect-iters", required_argument, nullptr, kExpectIters},
      {"min-bound", no_argument, nullptr, kMinBound},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  options o;
  ::opterr = 1;
  for (int ch; (ch = ::getopt_long(argc, argv, "lc:v:ph", kOpts, nullptr)) != -1;) {
    switch (ch) {
      case 'l': o.list = true; break;
      case 'c': o.cases.push_back(::optarg); break;
      case 'v': o.variant = std::atoi(::optarg); break;
      case kLong: o.long_run = true; break;
      case kExhaustive: o.exhaustive = true; break;
      case kIters: o.iters = std::strtoul(::optarg, nullptr, 10); break;
      case kExpect: o.expect_fail = true; break;
      case kReplay: o.replay = ::optarg; break;
      case kEstimate: o.estimate = std::strtoull(::optarg, nullptr, 10); break;
      case kSplitDepth: o.split_depth = std::atoi(::optarg); break;
      case kPrefix: parse_prefix(argv[0], ::optarg, o); break;
      case kSearch:
        o.has_search = parse_search(::optarg, o.search);
        if (!o.has_search) usage_error(argv[0], "--search: full, boundK or random[+spurious]");
        break;
      case kExpectIters: o.expect_iters = std::strtod(::optarg, nullptr); break;
      case kMinBound: o.min_bound = true; break;
      case 'p': o.progress_s = ::optarg ? std::atof(::optarg) : 5.0; break;
      case 'h': std::printf(kUsage, argv[0]); std::exit(0);
      default: std::fprintf(stderr, kUsage, argv[0]); std::exit(2);
    }
  }
  if (::optind < argc) usage_error(argv[0], "unexpected argument");
  return o;
}

// Relacy prints from inside the simulation, where heap use is not safe: its
// output goes to a fixed static buffer (truncated when full), printed only
// when the verdict is a failure.
class capture_buf : public std::streambuf {
 public:
  static constexpr std::size_t kCap = 8u << 20;
  void clear() { n_ = 0; }
  std::string_view text() const { return {buf(), n_}; }
  bool truncated() const { return dropped_; }
 protected:
  int overflow(int ch) override {
    if (ch != EOF) put(static_cast<char>(ch));
    return ch == EOF ? 0 : ch;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize i = 0; i < n; ++i) put(s[i]);
    return n;
  }
 private:
  static char* buf() { static char b[kCap]; return b; }
  void put(char c) { if (n_ < kCap) buf()[n_++] = c; else dropped_ = true; }
  std::size_t n_ = 0;
  bool dropped_ = false;
};

// --progress: Relacy's own progress lines ("37% (iter/total)", written every
// 65,536 iterations; its total is not trustworthy for tree searches) become a
// throttled status line on stderr with the rate and an ETA against `expected`
// (a random search's iteration count, or Knuth's estimate of a tree search,
// split_search.hpp).  It runs inside the simulation, where heap use is not
// safe: fixed buffers, snprintf and write(2) only.
class progress_sink : public std::streambuf {
 public:
  void start(const char* model, const char* id, int k, double period_s, double expected, bool estimated) {
    std::snprintf(tag_, sizeof tag_, "%s %s v%d", model, id, k);
    period_ = period_s;
    expected_ = expected;
    estimated_ = estimated;
    t0_ = last_ = std::chrono::steady_clock::now();
    n_ = 0;
  }
 protected:
  int overflow(int ch) override {
    if (ch == '\n') line();
    else if (ch != EOF && n_ + 1 < sizeof line_) line_[n_++] = static_cast<char>(ch);
    return ch == EOF ? 0 : ch;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize i = 0; i < n; ++i) overflow(static_cast<unsigned char>(s[i]));
    return n;
  }
 private:
  void line() {
    line_[n_] = '\0';
    n_ = 0;
    const char* open = std::strchr(line_, '(');
    if (open != nullptr && period_ > 0) report(std::strtoull(open + 1, nullptr, 10));
  }
  static void clock_text(char* out, std::size_t cap, double s) {
    const long t = static_cast<long>(s + 0.5);
    if (t >= 3600) std::snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) std::snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(out, cap, "%lds", t);
  }
  void report(unsigned long long iters) {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() < period_) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - t0_).count();
    const double rate = elapsed > 0 ? static_cast<double>(iters) / elapsed : 0;
    char when[32], eta[64] = "ETA unknown", msg[256];
    clock_text(when, sizeof when, elapsed);
    if (expected_ > static_cast<double>(iters) && rate > 0) {
      char left[32];
      clock_text(left, sizeof left, (expected_ - static_cast<double>(iters)) / rate);
      std::snprintf(eta, sizeof eta, "%.0f%% of %s%.3g, ETA %s%s", 100.0 * static_cast<double>(iters) / expected_,
                    estimated_ ? "~" : "", expected_, estimated_ ? "~" : "", left);
    } else if (expected_ > 0) {
      std::snprintf(eta, sizeof eta, "past the estimate of %.3g", expected_);
    }
    const int len = std::snprintf(msg, sizeof msg, "  [%s] %s: %llu iterations, %.3g/s, %s\n", when, tag_,
                                  iters, rate, eta);
    if (len > 0) (void)!::write(2, msg, static_cast<std::size_t>(len));
  }
  char tag_[96] = {};
  char line_[128] = {};
  std::size_t n_ = 0;
  double period_ = 0, expected_ = 0;
  bool estimated_ = false;
  std::chrono::steady_clock::time_point t0_, last_;
};

// Knuth's estimate of a tree search's iterations from kProbes random paths
// (split_search.hpp, probe mode): cheap (kProbes iterations) and unbiased,
// but its spread is large on unbalanced trees, so the ETA is marked "~".
// A variant left out of this build (kMutantBuild): a usage error, exit 2.
inline void require_built(bool built, const char* model, const char* id, int k) {
  if (built) return;
  std::fprintf(stderr, "%s %s variant %d: not built into this mutant (deep, exhaustive and split searches "
               "are left out of mutant builds; run the model executable)\n", model, id, k);
  std::exit(2);
}

inline double knuth_estimate(const variant& v) {
  constexpr unsigned long long kProbes = 2000;
  rl::test_params p;
  static capture_buf sink;
  sink.clear();
  std::ostream out(&sink);
  p.output_stream = &out;
  p.progress_stream = &out;
  p.search_type = v.cfg.type;
  p.context_bound = v.cfg.bound;
  g_split = split_state{};
  g_split.bounded = v.cfg.type == rl::sched_bound;
  g_split.bound = v.cfg.bound;
  g_split.mode = split_state::probe;
  g_split.probes_wanted = kProbes;
  require_built(v.run_split != nullptr, "model", "estimate", 0);
  v.run_split(p);
  const double est = p.test_result == rl::test_result_success && g_split.probes > 0
                         ? g_split.sum / static_cast<double>(g_split.probes) : 0.0;
  g_split = split_state{};
  return est;
}

inline bool selected(const options& o, const model_case& c) {
  if (o.cases.empty()) return true;
  for (auto& id : o.cases) if (id == c.id) return true;
  return false;
}

inline std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char ch : s) { if (ch == '\'') r += "'\\''"; else r += ch; }
  return r + "'";
}

// Runs one variant; returns true when Relacy reported success.
inline bool run_variant(const char* model, const char* argv0, const model_case& c, int k,
                        const variant& v, const options& o) {
  rl::test_params p;
  static capture_buf out_buf;
  static progress_sink progress_buf;
  out_buf.clear();
  std::ostream out(&out_buf), progress(&progress_buf);
  p.output_stream = &out;
  p.progress_stream = &progress;
  p.search_type = v.cfg.type;
  p.context_bound = v.cfg.bound;
  p.iteration_count = o.iters && v.cfg.type == rl::sched_random ? o.iters : v.cfg.iters;
  if (p.iteration_count == 0) p.iteration_count = 1;
  if (!o.replay.empty()) {
    p.initial_state = o.replay.c_str();
    p.collect_history = true;
  }
  fiber::detail::relacy_set_spurious(v.cfg.spurious);
  const bool split = o.estimate != 0 || o.split_depth >= 0 || o.has_prefix;
  if (o.progress_s > 0 && o.replay.empty() && !split) {
    const bool random = v.cfg.type == rl::sched_random;
    const bool known = random || o.expect_iters > 0;
    const double expected = random ? static_cast<double>(p.iteration_count)
                            : o.expect_iters > 0 ? o.expect_iters : knuth_estimate(v);
    progress_buf.start(model, c.id.c_str(), k, o.progress_s, expected, !known);
  } else {
    progress_buf.start(model, c.id.c_str(), k, 0, 0, false);
  }

  // --estimate / --split-depth / --prefix: the same search under split_scheduler.
  std::string prefix_text;
  if (split) {
    if (v.cfg.type == rl::sched_random) {
      std::printf("%-10s %-8s variant %d: random search, not a tree (skipped)\n", model, c.id.c_str(), k);
      return true;
    }
    g_split = split_state{};
    g_split.bounded = v.cfg.type == rl::sched_bound;
    g_split.bound = v.cfg.bound;
    if (o.estimate != 0) {
      g_split.mode = split_state::probe;
      g_split.probes_wanted = o.estimate;
    } else {
      // dfs of the subtree under --prefix, or (--split-depth) its prefixes.
      g_split.mode = o.split_depth >= 0 ? split_state::enumerate : split_state::dfs;
      g_split.depth = o.split_depth >= 0 ? static_cast<unsigned>(o.split_depth) : 0;
      g_split.prefix_len = static_cast<unsigned>(o.prefix.size());
      for (std::size_t i = 0; i < o.prefix.size(); ++i) {
        g_split.prefix[i] = o.prefix[i];
        prefix_text += (i ? "." : "") + std::to_string(o.prefix[i]);
      }
    }
  }

  require_built(split ? v.run_split != nullptr : v.run != nullptr, model, c.id.c_str(), k);
  auto t0 = std::chrono::steady_clock::now();
  if (split) v.run_split(p); else v.run(p);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  bool ok = p.test_result == rl::test_result_success;
  if (split && g_split.mode == split_state::probe && ok) {
    const double n = static_cast<double>(g_split.probes);
    const double mean = g_split.sum / n;
    const double var = g_split.sumsq / n - mean * mean;
    const double rel = mean > 0 && var > 0 ? std::sqrt(var / n) / mean : 0.0;
    const double us = ms * 1000.0 / n;
    std::printf("%-10s %-8s %-16s thr=%u probes=%.0f  leaves~%.3g (+-%.0f%%)  depth mean %.0f max %u"
                "  %.1f us/iter  ~%.3g h on one core\n",
                model, c.id.c_str(), search_label(v.cfg).c_str(), v.threads, n, mean, rel * 100,
                g_split.depth_sum / n, g_split.depth_max, us, mean * us / 3.6e9);
    static const char* const kind[split_state::kKinds] = {"thread", "load", "cas_fail", "free", "wake"};
    std::printf("  branching choices per path:");
    for (unsigned i = 0; i < split_state::kKinds; ++i)
      if (g_split.kind_nodes[i] > 0)
        std::printf(" %s %.1f (2^%.1f)", kind[i], g_split.kind_nodes[i] / n, g_split.kind_log2[i] / n);
    std::printf("\n");
    std::printf("ESTIMATE\tmodel=%s\tcase=%s\tvariant=%d\tsearch=%s\tbound=%u\tthreads=%u\tprobes=%.0f"
                "\tleaves=%.6g\trel_err=%.4f\tdepth_mean=%.1f\tdepth_max=%u\tus_per_iter=%.2f\thours=%.4g\n",
                model, c.id.c_str(), k, search_name(v.cfg), v.cfg.bound, v.threads, n, mean, rel,
                g_split.depth_sum / n, g_split.depth_max, us, mean * us / 3.6e9);
    std::fflush(stdout);
    return true;
  }
  if (split && g_split.mode == split_state::enumerate && ok && !g_split.prefix_missing) {
    std::printf("SPLIT\tmodel=%s\tcase=%s\tvariant=%d\tsearch=%s\tdepth=%d\tjobs=%llu\ttime_ms=%.1f\n",
                model, c.id.c_str(), k, search_label(v.cfg).c_str(), o.split_depth, g_split.enumerated, ms);
    std::fflush(stdout);
    return true;
  }
  if (split && g_split.prefix_missing) {
    std::printf("%s %s variant %d: prefix %s is not a node of this search\n", model, c.id.c_str(), k,
                prefix_text.c_str());
    std::fflush(stdout);
    return false;
  }
  const char* verdict = rl::test_result_str(p.test_result);
  unsigned long long iters = p.stop_iteration;

  std::printf("%-10s %-8s %-48.48s %-16s thr=%u iters=%-10llu %9.1f ms  %s\n", model, c.id.c_str(),
              c.what.c_str(), search_label(v.cfg).c_str(), v.threads, iters, ms, verdict);
  std::printf("RESULT\tmodel=%s\tcase=%s\tvariant=%d\tsearch=%s\tbound=%u\tspurious=%d\tthreads=%u"
              "\titers=%llu\ttime_ms=%.1f\tverdict=%s\ttier=%d\tmutant=%s\twhat=%s\n",
              model, c.id.c_str(), k, search_name(v.cfg), v.cfg.bound, v.cfg.spurious ? 1 : 0,
              v.threads, iters, ms, verdict, static_cast<int>(v.level), FIBER_MUTANT_ID,
              c.what.c_str());
  if (split) std::printf("JOB\tprefix=%s\titers=%llu\ttime_ms=%.1f\tverdict=%s\n",
                         prefix_text.empty() ? "root" : prefix_text.c_str(), iters, ms, verdict);
  if (!ok) {
    if (!o.expect_fail || !o.replay.empty()) {
      std::string_view t = out_buf.text();
      std::fwrite(t.data(), 1, t.size(), stdout);
      if (out_buf.truncated()) std::printf("... (history truncated)\n");
    }
    std::string state = p.final_state.empty() ? o.replay : std::string(p.final_state.c_str());
    std::printf("%s: %s on %s (%s), iteration %llu\n", model, verdict, c.id.c_str(),
                search_label(v.cfg).c_str(), iters);
    // A split job's state replays under Relacy's own scheduler of the same search.
    std::string search = o.has_search || split ? " --search " + search_label(v.cfg) : "";
    std::printf("replay just this iteration:\n  %s --case %s --variant %d%s --replay %s\n", argv0,
                c.id.c_str(), k, search.c_str(), shell_quote(state).c_str());
  }
  std::fflush(stdout);
  return ok;
}

// Runs the selected cases; returns the process exit status.
// --min-bound: a failure found by a full search or at context bound K is
// searched again at bounds 0, 1, ..., K-1 (full: up to kMaxShrinkBound); the
// least bound that fails is the failure's fewest preemptions, printed with the
// replay of that search's failing iteration (run_variant prints it).
inline void shrink_bound(const char* model, const char* argv0, const model_case& c, int k, const variant& v,
                         options o) {
  constexpr unsigned kMaxShrinkBound = 8;
  if (v.cfg.type == rl::sched_random) return;
  const unsigned top = v.cfg.type == rl::sched_bound ? v.cfg.bound : kMaxShrinkBound;
  o.has_search = true;
  o.progress_s = 0;
  for (unsigned b = 0; b <= top; ++b) {
    variant w = v;
    w.cfg = bound(b, v.cfg.spurious);
    o.search = w.cfg;
    const bool last = b == top && v.cfg.type == rl::sched_bound;
    if (last || !run_variant(model, argv0, c, k, w, o)) {
      std::printf("MINIMAL BOUND\tmodel=%s\tcase=%s\tbound=%u\tfound_by=%s\n", model, c.id.c_str(), b,
                  search_label(v.cfg).c_str());
      std::fflush(stdout);
      return;
    }
  }
  std::printf("MINIMAL BOUND\tmodel=%s\tcase=%s\tbound=none up to %u\tfound_by=%s\n", model, c.id.c_str(), top,
              search_label(v.cfg).c_str());
}

inline int run_model(int argc, char** argv, const char* model, const std::vector<model_case>& cases) {
  options o = parse(argc, argv);
  if (o.list) {
    for (auto& c : cases)
      for (std::size_t k = 0; k < c.variants.size(); ++k)
        std::printf("%s %s variant %zu: %s, %u threads%s  (%s)\n", model, c.id.c_str(), k,
                    search_label(c.variants[k].cfg).c_str(), c.variants[k].threads,
                    tier_suffix(c.variants[k].level), c.what.c_str());
    return 0;
  }
  if (!o.replay.empty() && (o.cases.size() != 1 || o.variant < 0)) {
    std::fprintf(stderr, "--replay needs exactly one --case and a --variant\n");
    return 2;
  }
  if (*FIBER_MUTANT_ID) std::printf("mutant %s: %s\n", FIBER_MUTANT_ID, FIBER_MUTANT_DESC);

  int failures = 0, ran = 0;
  for (auto& c : cases) {
    if (!selected(o, c)) continue;
    for (std::size_t k = 0; k < c.variants.size(); ++k) {
      variant v = c.variants[k];
      if (o.has_search) v.cfg = o.search;
      const bool wanted = o.exhaustive ? v.level == tier::exhaustive
                                       : v.level == tier::normal || (v.level == tier::deep && o.long_run);
      if (o.variant >= 0 ? static_cast<int>(k) != o.variant : !wanted) continue;
      ++ran;
      if (!run_variant(model, argv[0], c, static_cast<int>(k), v, o)) {
        ++failures;
        if (o.min_bound) shrink_bound(model, argv[0], c, static_cast<int>(k), v, o);
        if (o.expect_fail) {
          std::printf("MUTANT CAUGHT\t%s\tby=%s/%s\n", FIBER_MUTANT_ID, c.id.c_str(),
                      search_label(v.cfg).c_str());
          return 0;
        }
      }
    }
  }
  if (ran == 0 && o.exhaustive && o.cases.empty() && o.variant < 0) {
    std::printf("%s: no exhaustive variants\n", model);
    return 0;
  }
  if (ran == 0) {
    std::fprintf(stderr, "%s: no case/variant selected\n", model);
    return 2;
  }
  if (o.expect_fail) {
    std::printf("MUTANT SURVIVED\t%s: the model did not reject it\n", FIBER_MUTANT_ID);
    return 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace fiber::models
