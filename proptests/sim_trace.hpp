// proptests/sim_trace.hpp - the simulator's schedule as a trace, in the
// format the native traces are exported to (Chrome trace JSON, opens in
// ui.perfetto.dev; tools/trace_check.py export writes the native one and
// `schema` validates both).
//
// The simulator (sim_driver.hpp) records each scheduling event of a run:
// create, run (a KLT installs a fiber), yield, preempt, park (blocked on a
// semaphore object), sleep, wake, exit, idle sleep / wake of a KLT, and each
// clock step; the I/O simulator (sim_fds.hpp) its fibers' runs, yields (the
// race windows of the waiter loop), parks on a descriptor, wakes and exits on
// its one KLT, and the descriptors' data, poll, close and timer steps; the
// deadlock simulator (deadlock_sim.hpp) its runner's world (never the copies
// it drains for the ground truth).  expect_counterexample (prop_util.hpp)
// starts a fresh record for every case RapidCheck tries and keeps the record
// of the last case that failed; RapidCheck adopts a failing candidate and
// shrinks on from it, so that record is the shrunk counterexample's run (or,
// for controls that reduce further, the reduced one's).  With FIBER_PROP_TRACE_DIR
// set, it is written to <dir>/<Suite_Name>.json: one track per KLT plus one
// for OS threads and timers, each fiber's runs as slices, the rest as
// instants; time is the event's index (one event per 10 us of display
// time), since the simulator's virtual clock moves only at clock steps.
#pragma once

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace fiber_sim {

struct sim_event {
  enum kind { run, create, yield, preempt, park, sleep, wake, exit, idle_sleep, idle_wake, clock,
              // the I/O simulator (sim_fds.hpp): arg is the descriptor (data, close)
              io_data, io_poll, io_close, io_timer };
  kind what;
  unsigned klt;    // kNoKlt: an OS thread or the timers
  unsigned fiber;  // unused for idle_* and clock
  unsigned long long arg;  // park: the object; clock: the new time; io_data, io_close: the descriptor
};

struct sim_record {
  std::vector<sim_event> events;
  unsigned schedule_steps = 0;  // steps of the schedule given as data
  unsigned drain_steps = 0;     // steps the drain took after it
  unsigned nklts = 0;
};

struct sim_trace {
  sim_record cur;         // the case running now
  sim_record last_fail;   // the last case that failed
  bool have_fail = false;
  bool on = false;        // a control is recording (expect_counterexample); else add() is a test

  static sim_trace& get() {
    static sim_trace t;
    return t;
  }
  void begin_case() { cur = sim_record{}; }
  void note_failure() {
    last_fail = cur;
    have_fail = true;
  }
  void add(sim_event::kind k, unsigned klt, unsigned fiber = 0, unsigned long long arg = 0) {
    if (on && cur.events.size() < 100000) cur.events.push_back({k, klt, fiber, arg});
  }
};

inline const char* event_name(sim_event::kind k) {
  static const char* const names[] = {"run",       "create",    "yield", "preempt", "park",
                                      "sleep",     "wake",      "exit",  "idle_sleep", "idle_wake",
                                      "clock",     "data",      "poll",  "close",   "timer"};
  return names[k];
}

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out + "\"";
}

// Writes r as Chrome trace JSON; returns false if the file cannot be written.
inline bool write_sim_trace(const std::string& path, const sim_record& r, const std::string& property,
                            const std::string& violation) {
  std::ofstream out(path);
  if (!out) return false;
  const unsigned os_tid = 0;
  auto tid_of = [&](unsigned k) { return k >= r.nklts ? os_tid : k + 1; };
  std::vector<std::string> ev;
  auto meta = [&](unsigned tid, const std::string& name) {
    ev.push_back("{\"ph\":\"M\",\"name\":\"thread_name\",\"ts\":0,\"pid\":1,\"tid\":" + std::to_string(tid) +
                 ",\"args\":{\"name\":" + json_string(name) + "}}");
  };
  ev.push_back("{\"ph\":\"M\",\"name\":\"process_name\",\"ts\":0,\"pid\":1,\"tid\":0,\"args\":{\"name\":"
               "\"fiber simulator\"}}");
  meta(os_tid, "os threads, timers");
  for (unsigned k = 0; k < r.nklts; ++k) meta(k + 1, "klt " + std::to_string(k));
  std::map<unsigned, unsigned> open;  // tid -> fiber whose slice is open
  auto slice = [&](char ph, unsigned tid, unsigned f, unsigned long long ts) {
    ev.push_back(std::string("{\"ph\":\"") + ph + "\",\"name\":\"fiber " + std::to_string(f) + "\",\"cat\":\"fiber\",\"ts\":" +
                 std::to_string(ts) + ",\"pid\":1,\"tid\":" + std::to_string(tid) + "}");
  };
  unsigned long long ts = 0;
  for (const sim_event& e : r.events) {
    ts += 10;
    const unsigned tid = tid_of(e.klt);
    const bool leaves = e.what == sim_event::yield || e.what == sim_event::preempt || e.what == sim_event::park ||
                        e.what == sim_event::sleep || e.what == sim_event::exit;
    if (leaves && e.klt < r.nklts && open.count(tid) && open[tid] == e.fiber) {
      slice('E', tid, e.fiber, ts);
      open.erase(tid);
    }
    if (e.what == sim_event::run) {
      if (open.count(tid)) slice('E', tid, open[tid], ts);
      slice('B', tid, e.fiber, ts);
      open[tid] = e.fiber;
      continue;
    }
    std::string name = event_name(e.what);
    std::string args = "{";
    if (e.what == sim_event::clock) {
      name += " t=" + std::to_string(e.arg);
    } else if (e.what == sim_event::io_data || e.what == sim_event::io_close) {
      name += " d" + std::to_string(e.arg);
      args += "\"fd\":" + std::to_string(e.arg);
    } else if (e.what != sim_event::idle_sleep && e.what != sim_event::idle_wake && e.what != sim_event::io_poll) {
      name += " " + std::to_string(e.fiber);
      args += "\"fiber\":" + std::to_string(e.fiber);
      if (e.what == sim_event::park) args += ",\"obj\":" + std::to_string(e.arg);
    }
    args += "}";
    ev.push_back("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"sched\",\"name\":" + json_string(name) + ",\"ts\":" +
                 std::to_string(ts) + ",\"pid\":1,\"tid\":" + std::to_string(tid) + ",\"args\":" + args + "}");
  }
  ts += 10;
  for (const auto& [tid, f] : open) slice('E', tid, f, ts);
  ev.push_back("{\"ph\":\"i\",\"s\":\"g\",\"cat\":\"check\",\"name\":" + json_string("violation: " + violation) +
               ",\"ts\":" + std::to_string(ts) + ",\"pid\":1,\"tid\":0}");
  out << "{\"traceEvents\":[\n";
  for (std::size_t i = 0; i < ev.size(); ++i) out << ev[i] << (i + 1 < ev.size() ? ",\n" : "\n");
  out << "],\"displayTimeUnit\":\"ns\",\"otherData\":{\"source\":\"fiber simulator (proptests)\",\"property\":"
      << json_string(property) << ",\"klts\":" << r.nklts << ",\"schedule_steps\":" << r.schedule_steps
      << ",\"drain_steps\":" << r.drain_steps << ",\"events\":" << r.events.size()
      << ",\"violation\":" << json_string(violation) << "}}\n";
  return static_cast<bool>(out);
}

}  // namespace fiber_sim
