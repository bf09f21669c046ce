// proptests/prop_util.hpp - RapidCheck glue shared by the property files:
// scenario generators, FIBER_PROP (RC_GTEST_PROP with a per-property case
// budget) and expect_counterexample (the planted-bug controls).
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "sim.hpp"

namespace rc::detail {
TestListener& globalTestListener();  // in librapidcheck, not in its headers
}

namespace fiber_sim {

// ----------------------------------------------------------- generators
struct gen_opts {
  unsigned min_klts = 1, max_klts = 3;
  std::vector<op> ops{op::spawn, op::tick, op::run, op::clock};
  std::vector<act> acts{act::cpu, act::yield, act::sleep, act::spawn, act::wait, act::wake, act::join};
  bool external_spawn = true;  // spawn steps may come from an OS thread (kNoKlt)
  unsigned nscripts = 3;
  int script_len = 5;
  int max_steps = 60;
};

// Uniform in [lo, hi) whatever the generation size, shrinking toward lo.
// (gen::inRange scales its range with the size, so small sizes would only
// ever yield lo: every sleep the same length, every spawn on k0; and
// gen::elementOf does not shrink at all.)
inline rc::Gen<unsigned> small(unsigned lo, unsigned hi) {
  return rc::gen::resize(100, rc::gen::inRange(lo, hi));
}
// One of v, shrinking toward v[0].
template <class T>
rc::Gen<T> one_of(const std::vector<T>& v) {
  return rc::gen::map(small(0, static_cast<unsigned>(v.size())), [v](unsigned i) { return v[i]; });
}

inline rc::Gen<action> gen_action(const std::vector<act>& acts, unsigned nscripts) {
  return rc::gen::map(rc::gen::tuple(one_of(acts), small(0, 4)),
                      [nscripts](const std::tuple<act, unsigned>& t) {
                        action a{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t))};
                        if (a.a == act::spawn) a.arg = static_cast<std::uint8_t>(a.arg % nscripts);
                        return a;
                      });
}

inline rc::Gen<step> gen_step(const gen_opts& o, unsigned nklts) {
  const unsigned kmax = nklts + (o.external_spawn ? 1 : 0);  // klt == nklts: OS thread
  return rc::gen::map(
      rc::gen::tuple(one_of(o.ops), small(0, kmax), small(0, 4)),
      [nklts, nscripts = o.nscripts](const std::tuple<op, unsigned, unsigned>& t) {
        step s{std::get<0>(t), static_cast<std::uint8_t>(std::get<1>(t)),
               static_cast<std::uint8_t>(std::get<2>(t))};
        if (s.o != op::spawn || s.klt >= nklts) s.klt = static_cast<std::uint8_t>(s.klt % nklts);
        if (s.o == op::spawn && std::get<1>(t) >= nklts) s.klt = kExt;
        if (s.o == op::tick || s.o == op::run) s.arg = 0;
        if (s.o == op::clock) s.klt = 0;
        if (s.o == op::spawn) s.arg = static_cast<std::uint8_t>(s.arg % nscripts);
        return s;
      });
}

// The schedule is data: the steps shrink (fewer, smaller, earlier ops).
inline rc::Gen<scenario> gen_scenario(const gen_opts& o) {
  return rc::gen::exec([o] {
    scenario sc;
    sc.nklts = *small(o.min_klts, o.max_klts + 1);
    sc.scripts = *rc::gen::container<std::vector<script>>(
        o.nscripts, rc::gen::resize(o.script_len, rc::gen::container<script>(gen_action(o.acts, o.nscripts))));
    sc.steps = *rc::gen::resize(o.max_steps, rc::gen::container<std::vector<step>>(gen_step(o, sc.nklts)));
    return sc;
  });
}

// ----------------------------------------------------------- running
// fixed_id: the planted-bug controls search from a seed of their own (FNV-1a
// of the control's id) unless RC_PARAMS sets one, so that a control that
// finds its bug finds it on every run: with RapidCheck's random seed a
// control's budget is a probability (Deadlock/ControlOnePassGraph once found
// nothing in its 100,000 cases).  The properties keep the random seed.
inline rc::detail::TestParams params_for(int max_success, std::uint64_t seed_offset = 0,
                                         const std::string* fixed_id = nullptr) {
  rc::detail::TestParams p = rc::detail::configuration().testParams;
  const char* env = std::getenv("RC_PARAMS");
  if (fixed_id != nullptr && (env == nullptr || std::strstr(env, "seed") == nullptr)) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : *fixed_id) h = (h ^ c) * 1099511628211ull;
    p.seed = h;
  }
  p.seed += seed_offset;  // another search from the same (RC_PARAMS-reproducible) seed
  if (env == nullptr || std::strstr(env, "max_success") == nullptr) p.maxSuccess = max_success;
  return p;
}

template <class Testable>
rc::detail::TestResult run_property(const std::string& id, int max_success, Testable&& t,
                                    rc::detail::TestListener& listener, std::uint64_t seed_offset = 0,
                                    bool fixed_seed = false) {
  rc::detail::TestMetadata md;
  md.id = id;
  md.description = id;
  return rc::detail::checkProperty(rc::detail::toProperty(std::forward<Testable>(t)), md,
                                   params_for(max_success, seed_offset, fixed_seed ? &id : nullptr), listener,
                                   rc::detail::configuration().reproduce);
}

// A property as a GoogleTest; RC_PARAMS="reproduce=..." uses id Suite/Name.
template <class Testable>
void check_property(const std::string& id, int max_success, Testable&& t) {
  const auto r = run_property(id, max_success, std::forward<Testable>(t), rc::detail::globalTestListener());
  std::ostringstream ss;
  rc::detail::printResultMessage(r, ss);
  if (!r.template is<rc::detail::SuccessResult>()) FAIL() << ss.str();
  std::cout << ss.str() << "\n";
}

struct quiet_listener : rc::detail::TestListener {
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

// FIBER_PROP_TRACE_DIR: the shrunk counterexample's run as a trace.
inline void write_counterexample_trace(const std::string& id, const std::string& why) {
  const char* dir = std::getenv("FIBER_PROP_TRACE_DIR");
  const sim_trace& rec = sim_trace::get();
  if (dir == nullptr || !rec.have_fail) return;
  if (rec.last_fail.events.empty()) {
    std::cout << "  (no trace: the simulator recorded no scheduling event in this property)\n";
    return;
  }
  std::string name = id;
  for (char& c : name)
    if (c == '/') c = '_';
  const std::string path = std::string(dir) + "/" + name + ".json";
  if (!write_sim_trace(path, rec.last_fail, id, why)) ADD_FAILURE() << "cannot write " << path;
  else
    std::cout << "  trace: " << path << " (" << rec.last_fail.schedule_steps << " schedule steps, "
              << rec.last_fail.drain_steps << " drain steps, " << rec.last_fail.events.size() << " events)\n";
}

// The scenario of the case running now, for a control that can re-run its
// property on a given scenario (expect_counterexample's `rerun`): RapidCheck's
// greedy shrinking can stop in a local minimum where removing any one step
// loses the failure; the reduction below then removes chunks of the schedule
// (delta debugging: halves, quarters... single steps, until no removal keeps
// the failure), so the trace is of a 1-minimal schedule.
// S: the simulator's scenario type (sim.hpp's scenario, deadlock_sim.hpp's
// program), with a `steps` vector and scripts reached by script_count /
// script_at (found by argument-dependent lookup).
template <class S>
struct scenario_box {
  S cur, fail;
  bool have = false;
  static scenario_box& get() {
    static scenario_box b;
    return b;
  }
};
template <class S>
void note_scenario(const S& sc) {
  if (sim_trace::get().on) scenario_box<S>::get().cur = sc;
}
inline std::size_t script_count(const scenario& sc) { return sc.scripts.size(); }
inline script& script_at(scenario& sc, std::size_t k) { return sc.scripts[k]; }

// Re-runs the property on smaller schedules while it still fails; the last
// failure's record (sim_trace) and message are the reduced run's.  Returns the
// steps removed.
template <class S, class Rerun>
std::size_t reduce_schedule(Rerun&& rerun, std::string& why) {
  sim_trace& rec = sim_trace::get();
  scenario_box<S>& box = scenario_box<S>::get();
  if (!box.have) return 0;
  S best = box.fail;
  const std::size_t before = best.steps.size();
  auto fails = [&](const S& sc) {
    rec.begin_case();
    try {
      rerun(sc);
    } catch (const std::exception& e) {
      rec.note_failure();
      why = e.what();
      return true;
    }
    return false;
  };
  // Chunks of v (halves, quarters... single elements) removed from best
  // while the failure stays (v: best's schedule, or one of its scripts).
  auto drop_chunks = [&](auto member) {
    bool any = false;
    for (std::size_t chunk = std::max<std::size_t>(member(best).size() / 2, 1); chunk >= 1; chunk /= 2) {
      for (std::size_t i = 0; i + chunk <= member(best).size();) {
        S cand = best;
        auto& v = member(cand);
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(i), v.begin() + static_cast<std::ptrdiff_t>(i + chunk));
        if (fails(cand)) {
          best = std::move(cand);
          any = true;
        } else {
          i += chunk;
        }
      }
      if (chunk == 1) break;
    }
    return any;
  };
  rec.on = true;
  // A shorter script can make more steps removable, and the other way round:
  // both until neither changes (scripts keep their number: spawns index them).
  for (bool progress = true; progress;) {
    progress = drop_chunks([](S& sc) -> auto& { return sc.steps; });
    for (std::size_t k = 0; k < script_count(best); ++k)
      progress = drop_chunks([k](S& sc) -> auto& { return script_at(sc, k); }) || progress;
  }
  fails(best);  // the record and message are the reduced schedule's run
  rec.on = false;
  return before - best.steps.size();
}

// The property on a given scenario of type S (rerun_as<S>(f)), for
// expect_counterexample; no_rerun: the control cannot re-run it.
template <class S, class F>
struct rerun_with {
  using scenario_type = S;
  F f;
  void operator()(const S& sc) const { f(sc); }
};
template <class S, class F>
rerun_with<S, F> rerun_as(F f) {
  return {f};
}
struct no_rerun {
  using scenario_type = scenario;
  void operator()(const scenario&) const {}
};
constexpr std::uint64_t kExtraSearches = 3;  // after the first, for controls with a rerun

// A planted-bug control passes only if RapidCheck finds a counterexample;
// it prints the shrunk one so a reader sees the minimal schedule.
// Also keeps the simulator's record of the last failing case, the shrunk
// counterexample's run (sim_trace.hpp), and with FIBER_PROP_TRACE_DIR set
// writes it as a trace: <dir>/<Suite_Name>.json.
// With `rerun` (the property on a given scenario; the testable calls
// note_scenario), the shrunk schedule is reduced further (reduce_schedule).
template <class Testable, class Rerun = no_rerun>
void expect_counterexample(const std::string& id, int max_success, Testable&& t, Rerun rerun = {}) {
  constexpr bool reduce = !std::is_same_v<Rerun, no_rerun>;
  using S = typename Rerun::scenario_type;
  quiet_listener quiet;
  sim_trace& rec = sim_trace::get();
  scenario_box<S>& box = scenario_box<S>::get();
  rec.have_fail = false;
  box.have = false;
  rec.on = true;  // only controls record: the properties' own runs pay one test per event
  auto note = [&rec, &box] {
    rec.note_failure();
    box.fail = box.cur;
    box.have = true;
  };
  auto recorded = [&t, &rec, &note] {
    rec.begin_case();
    try {
      t();
    } catch (const rc::detail::CaseResult& c) {
      if (c.type == rc::detail::CaseResult::Type::Failure) note();
      throw;
    } catch (...) {
      note();
      throw;
    }
  };
  const auto r = run_property(id, max_success, recorded, quiet, 0, true);
  rec.on = false;
  if (!r.template is<rc::detail::FailureResult>()) {
    std::ostringstream ss;
    rc::detail::printResultMessage(r, ss);
    FAIL() << "planted bug NOT detected by " << id << ": " << ss.str();
  }
  const auto& f = r.template get<rc::detail::FailureResult>();
  // RapidCheck words a failure as "Exception thrown with message: ...", which
  // reads like this test failing; here the failure is the expected outcome.
  std::string why = f.description;
  for (const char* prefix : {"Exception thrown with message:", "Exception thrown with message"})
    if (why.rfind(prefix, 0) == 0) why = why.substr(std::strlen(prefix));
  while (!why.empty() && (why[0] == ' ' || why[0] == '\n')) why.erase(0, 1);
  std::cout << "control " << id << " PASSED: expected failure caught (the planted bug) after "
            << f.numSuccess + 1 << " cases; shrunk counterexample:\n";
  auto indent = [](std::string v) {
    for (std::size_t i = v.find('\n'); i != std::string::npos; i = v.find('\n', i + 3)) v.replace(i, 1, "\n    ");
    return v;
  };
  for (const auto& [type, value] : f.counterExample) std::cout << "  " << indent(value) << "\n";
  std::cout << "  -> expected failure: " << indent(why) << "\n";
  if constexpr (reduce) {
    const std::size_t removed = reduce_schedule<S>(rerun, why);
    std::cout << "  reduced further: " << removed << " schedule steps removed, " << box.fail.steps.size() - removed
              << " left; still fails: " << indent(why) << "\n";
    // How short a failing schedule can get depends on the shape the search
    // happened to find first: more searches from other seeds, each shrunk
    // and reduced, and the shortest run is the one kept.
    sim_record best = rec.last_fail;
    for (std::uint64_t extra = 1; extra <= kExtraSearches; ++extra) {
      box.have = false;
      rec.on = true;
      const auto again = run_property(id, max_success, recorded, quiet, extra, true);
      rec.on = false;
      if (!again.template is<rc::detail::FailureResult>()) continue;
      std::string why2;
      reduce_schedule<S>(rerun, why2);
      if (rec.last_fail.schedule_steps < best.schedule_steps) {
        best = rec.last_fail;
        why = why2;
      }
    }
    rec.last_fail = best;
    std::cout << "  shortest of " << kExtraSearches + 1 << " searches: " << best.schedule_steps
              << " schedule steps; fails: " << indent(why) << "\n";
  }
  write_counterexample_trace(id, why);
}

}  // namespace fiber_sim

// RC_GTEST_PROP with a case budget (RC_PARAMS=max_success=N overrides it).
#define FIBER_PROP(Suite, Name, MaxSuccess, ArgList)                                          \
  void fiber_prop_##Suite##_##Name ArgList;                                                   \
  TEST(Suite, Name) {                                                                         \
    ::fiber_sim::check_property(#Suite "/" #Name, MaxSuccess, &fiber_prop_##Suite##_##Name); \
  }                                                                                           \
  void fiber_prop_##Suite##_##Name ArgList
