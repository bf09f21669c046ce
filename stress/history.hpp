// stress/history.hpp - a per-worker, preallocated, append-only history of
// operations on shared objects, for the linearizability checker
// (tools/lin_check.py; papers/verification.md, "Linearizability of native
// histories").
//
// Each operation is one record: worker, object, op kind, argument, result, and
// two timestamps: `inv`, read just before the call, and `res`, read just after
// it returned.  The checker takes op A to precede op B in real time iff
// A.res < B.inv; every other pair is concurrent.
//
// Clock: CLOCK_MONOTONIC through clock_gettime (the vDSO: no system call,
// about 20-40 ns here).  The precedence rule is sound only if a reading taken
// after another reading, on any CPU, is not smaller: the kernel keeps
// CLOCK_MONOTONIC monotone across CPUs (it falls back from the TSC to another
// clocksource when it finds the TSCs out of sync), which a raw rdtsc does not
// promise on a VM even where the CPU reports an invariant TSC.  A reading
// delayed by a preemption only widens the op's interval (more concurrency, never
// a false precedence).  Equal readings count as concurrent.
//
// Hot path: no allocation, no lock, no system call beyond the two clock reads;
// the buffer is allocated and touched at construction.  One recorder per
// worker (single writer); the main thread reads the records only after joining
// the workers, and reads size() for the progress line through a relaxed atomic.
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

namespace lin {

enum class op : std::uint8_t { lock, trylock, unlock, wait, trywait, timedwait, post, enq, deq };

inline const char* op_name(op k) noexcept {
  static const char* const kNames[] = {"lock", "trylock", "unlock", "wait", "trywait",
                                       "timedwait", "post", "enq", "deq"};
  return kNames[static_cast<unsigned>(k)];
}

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct record {
  std::uint64_t inv, res;  // CLOCK_MONOTONIC ns: before the call, after its return
  std::int64_t arg, ret;   // ret: 0 or an errno value; a dequeued value for deq
  std::uint16_t worker;
  std::uint8_t obj;  // index into the run's object table
  op kind;
};

class recorder {
 public:
  recorder(unsigned worker, std::size_t capacity)
      : buf_(new record[capacity]()), cap_(capacity), worker_(static_cast<std::uint16_t>(worker)) {}

  bool full() const noexcept { return n_ == cap_; }
  // Appends one completed op: `inv` is now_ns() read just before the call;
  // the response time is read here, first thing after the call returned.
  // A full recorder drops the op (callers stop at full(); never reached).
  void add(std::uint64_t inv, std::uint8_t obj, op kind, std::int64_t arg, std::int64_t ret) noexcept {
    const std::uint64_t res = now_ns();
    if (n_ == cap_) return;
    buf_[n_++] = record{inv, res, arg, ret, worker_, obj, kind};
    published_.store(n_, std::memory_order_relaxed);  // relaxed: a statistic for the progress line
  }
  std::size_t size() const noexcept { return n_; }  // the owner, or after the join
  std::size_t published() const noexcept {
    return published_.load(std::memory_order_relaxed);  // relaxed: progress line only
  }
  const record* begin() const noexcept { return buf_.get(); }
  const record* end() const noexcept { return buf_.get() + n_; }

 private:
  std::unique_ptr<record[]> buf_;
  std::size_t cap_, n_ = 0;
  std::atomic<std::size_t> published_{0};
  std::uint16_t worker_;
};

// Writes one JSON-lines file: `header` (a JSON object, written as the first
// line) and then one line per op of every recorder, in recorder order, with
// times relative to `t0`:
//   {"obj":"mutex","w":3,"op":"lock","arg":0,"ret":0,"inv":1234,"res":1301}
// Returns the number of ops written, or -1 if the file could not be written.
inline long write_jsonl(const char* path, const char* header, const std::vector<const char*>& obj_names,
                        const std::vector<const recorder*>& recs, std::uint64_t t0) {
  std::FILE* f = std::fopen(path, "w");
  if (f == nullptr) return -1;
  std::fprintf(f, "%s\n", header);
  long n = 0;
  for (const recorder* r : recs) {
    for (const record& e : *r) {
      std::fprintf(f, "{\"obj\":\"%s\",\"w\":%u,\"op\":\"%s\",\"arg\":%lld,\"ret\":%lld,\"inv\":%llu,\"res\":%llu}\n",
                   obj_names[e.obj], static_cast<unsigned>(e.worker), op_name(e.kind),
                   static_cast<long long>(e.arg), static_cast<long long>(e.ret),
                   static_cast<unsigned long long>(e.inv - t0), static_cast<unsigned long long>(e.res - t0));
      ++n;
    }
  }
  return std::fclose(f) == 0 ? n : -1;
}

}  // namespace lin
