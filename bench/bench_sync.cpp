// bench/bench_sync.cpp - (f) synchronisation.
//   mutex/<v>            uncontended lock+unlock (ops = 1)
//   mutex1klt/<v>        4 ULTs on one kernel thread (pthreads: pinned to one
//                        CPU): lock, ++n, yield, unlock, yield - a handoff
//                        per acquisition; per acquisition
//   mutexmt/<v>          4 ULTs/threads on every CPU: lock, ++n, unlock;
//                        per acquisition
//   mutexmt_klt1/<v>,    the same with the fiber runtime on exactly 1 or 2
//   mutexmt_klt2/<v>     KLTs (issue 13: 4 fibers on 2 KLTs against
//                        std::mutex with 4 threads; 1 KLT must not regress)
//   pingpong/<v>         condition-variable ping-pong between two ULTs (or
//                        threads); per round trip (two waits, two notifies)
// Variants: fiber (fiber::mutex / fiber::condition_variable, once
//   core/include/fiber/{mutex,condition_variable}.hpp exist), fiber_c (the C
//   API fiber_mutex_t / fiber_cond_t), boost (boost::fibers, one thread, or
//   boost_ws on every CPU), std (std::mutex; std::condition_variable with two
//   pthreads pinned to the same CPU = pthread_samecpu, to two CPUs =
//   pthread_crosscpu).  fiber runtimes use klts=1 except mutexmt (klts=0).
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "common.hpp"
#include "fiber/detail/testing.h"  // FIBER_KNOB_MUTEX_NO_SPIN (mutexmt_klt2/fiber_c_nospin)
#ifdef BENCH_HAVE_BOOST
#include "boost_common.hpp"
#endif
#if defined(BENCH_HAVE_FIBER_HPP) && __has_include("fiber/mutex.hpp") && \
    __has_include("fiber/condition_variable.hpp")
#include "fiber/condition_variable.hpp"
#include "fiber/mutex.hpp"
#define BENCH_FIBER_SYNC 1
#endif

namespace {

constexpr int kWorkers = 4;

// The C API behind the standard names, so that one template serves all.
class c_mutex {
 public:
  c_mutex() { fiber_mutex_init(&m_, nullptr); }
  ~c_mutex() { fiber_mutex_destroy(&m_); }
  c_mutex(const c_mutex&) = delete;
  c_mutex& operator=(const c_mutex&) = delete;
  void lock() { fiber_mutex_lock(&m_); }
  void unlock() { fiber_mutex_unlock(&m_); }
  fiber_mutex_t* native() { return &m_; }

 private:
  fiber_mutex_t m_;
};

class c_cond {
 public:
  c_cond() { fiber_cond_init(&c_, nullptr); }
  ~c_cond() { fiber_cond_destroy(&c_); }
  c_cond(const c_cond&) = delete;
  c_cond& operator=(const c_cond&) = delete;
  template <class Pred>
  void wait(std::unique_lock<c_mutex>& lk, Pred p) {
    while (!p()) fiber_cond_wait(&c_, lk.mutex()->native());
  }
  void notify_one() { fiber_cond_signal(&c_); }

 private:
  fiber_cond_t c_;
};

// --- bodies, one per test, templated on the primitives --------------------------
template <class M>
void uncontended(benchmark::State& st) {
  M m;
  for (auto _ : st) {
    m.lock();
    benchmark::ClobberMemory();
    m.unlock();
  }
}

// One iteration: every worker does kPer acquisitions (lock, ++n, [yield],
// unlock, [yield]); ops = workers * kPer acquisitions.  On one kernel thread
// the yield inside the critical section makes the others queue on the lock
// and the yield after unlock lets the woken one take it: each acquisition is
// a handoff, whatever the mutex's fairness.  On several CPUs there are no
// yields (throughput under contention, barging allowed).
template <class M>
struct contended {
  M m;
  long total = 0;  // guarded by m
  template <class Yield>
  void worker(long per, Yield yield) {
    for (long i = 0; i < per; ++i) {
      {
        std::lock_guard<M> lk(m);
        ++total;
        yield();
      }
      yield();
    }
  }
};
constexpr long kPer1Klt = 2000;
constexpr long kPerMt = 20000;

template <class M, class CV>
struct pingpong {
  M m;
  CV cv;
  int turn = 0;       // guarded by m; 0: measured side's turn
  bool stop = false;  // guarded by m
  void partner() {
    std::unique_lock<M> lk(m);
    for (;;) {
      cv.wait(lk, [&] { return turn == 1; });
      if (stop) return;
      turn = 0;
      cv.notify_one();
    }
  }
  void measured(benchmark::State& st) {
    std::unique_lock<M> lk(m);
    for (auto _ : st) {
      turn = 1;
      cv.notify_one();
      cv.wait(lk, [&] { return turn == 0; });
    }
    stop = true;
    turn = 1;
    cv.notify_one();
  }
};

// --- fiber runners ----------------------------------------------------------------
// Runs `measured` and n-1 copies of `other` as fibers of one runtime.
void fiber_group(benchmark::State& st, unsigned klts, int n, std::function<void()> other,
                 const std::function<void()>& measured) {
  bench::fiber_run(st, {klts, FIBER_DEFAULT_TIMESLICE_US}, [&] {
    std::vector<fiber_t> ids;
    for (int i = 1; i < n; ++i) {
      fiber_t id = 0;
      if (int e = bench::fiber_go(&id, &other)) {
        st.SkipWithError(bench::err_text("fiber_create", e).c_str());
        break;
      }
      ids.push_back(id);
    }
    fiber_yield();
    measured();
    for (fiber_t id : ids) fiber_join(id, nullptr);
  });
}

// Each iteration runs kWorkers fibers doing `per` acquisitions and joins them.
template <class M>
void contended_fiber(benchmark::State& st, unsigned klts, long per, bool yields) {
  contended<M> c;
  std::function<void()> work = [&] {
    if (yields)
      c.worker(per, [] { fiber_yield(); });
    else
      c.worker(per, [] {});
  };
  bench::fiber_run(st, {klts, FIBER_DEFAULT_TIMESLICE_US}, [&] {
    for (auto _ : st) {
      fiber_t ids[kWorkers];
      int n = 0;
      for (; n < kWorkers; ++n) {
        if (int e = bench::fiber_go(&ids[n], &work)) {
          st.SkipWithError(bench::err_text("fiber_create", e).c_str());
          break;
        }
      }
      for (int i = 0; i < n; ++i) fiber_join(ids[i], nullptr);
    }
  });
  bench::set_ops(st, static_cast<double>(kWorkers * per));
}

template <class M>
void mutex_fiber(benchmark::State& st) {
  fiber_group(st, 1, 1, nullptr, [&] { uncontended<M>(st); });
}
template <class M>
void mutex1klt_fiber(benchmark::State& st) {
  contended_fiber<M>(st, 1, kPer1Klt, true);
}
template <class M>
void mutexmt_fiber(benchmark::State& st) {
  contended_fiber<M>(st, 0, kPerMt, false);
}
template <class M, unsigned Klts>
void mutexmt_klts_fiber(benchmark::State& st) {
  contended_fiber<M>(st, Klts, kPerMt, false);
}
// The same without the spin before parking (test knob): what spinning buys.
template <class M, unsigned Klts>
void mutexmt_klts_nospin_fiber(benchmark::State& st) {
  fiber_test_set_knob(FIBER_KNOB_MUTEX_NO_SPIN, 1);
  contended_fiber<M>(st, Klts, kPerMt, false);
  fiber_test_set_knob(FIBER_KNOB_MUTEX_NO_SPIN, 0);
}
template <class M, class CV>
void pingpong_fiber(benchmark::State& st) {
  pingpong<M, CV> p;
  fiber_group(
      st, 1, 2, [&] { p.partner(); }, [&] { p.measured(st); });
}

// --- Boost.Fiber runners -------------------------------------------------------------
#ifdef BENCH_HAVE_BOOST
void boost_group(int n, const std::function<void()>& other, const std::function<void()>& measured) {
  std::vector<boost::fibers::fiber> fs;
  for (int i = 1; i < n; ++i) fs.emplace_back(other);
  boost::this_fiber::yield();
  measured();
  for (auto& f : fs) f.join();
}
void mutex_boost(benchmark::State& st) {
  bench::boost_run([&] { uncontended<boost::fibers::mutex>(st); });
}
template <class Yield>
void contended_boost(benchmark::State& st, long per, Yield yield) {
  contended<boost::fibers::mutex> c;
  for (auto _ : st) {
    std::vector<boost::fibers::fiber> fs;
    for (int i = 0; i < kWorkers; ++i) fs.emplace_back([&] { c.worker(per, yield); });
    for (auto& f : fs) f.join();
  }
  bench::set_ops(st, static_cast<double>(kWorkers * per));
}
void mutex1klt_boost(benchmark::State& st) {
  bench::boost_run([&] { contended_boost(st, kPer1Klt, [] { boost::this_fiber::yield(); }); });
}
void mutexmt_boost_ws(benchmark::State& st) {
  bench::ws_pool::get().run([&] { contended_boost(st, kPerMt, [] {}); });
}
void pingpong_boost(benchmark::State& st) {
  pingpong<boost::fibers::mutex, boost::fibers::condition_variable> p;
  bench::boost_run([&] { boost_group(2, [&] { p.partner(); }, [&] { p.measured(st); }); });
}
#endif

// --- std / pthreads ------------------------------------------------------------------
void mutex_std(benchmark::State& st) { uncontended<std::mutex>(st); }

template <class Yield>
void contended_std(benchmark::State& st, bool one_cpu, long per, Yield yield) {
  contended<std::mutex> c;
  const int cpu = bench::first_allowed_cpu();
  for (auto _ : st) {
    std::vector<std::thread> ts;
    for (int i = 0; i < kWorkers; ++i)
      ts.emplace_back([&] {
        if (one_cpu) bench::pin_self_to(cpu);
        c.worker(per, yield);
      });
    for (auto& t : ts) t.join();
  }
  bench::set_ops(st, static_cast<double>(kWorkers * per));
}
void mutex1klt_std(benchmark::State& st) {
  contended_std(st, true, kPer1Klt, [] { sched_yield(); });
}
void mutexmt_std(benchmark::State& st) { contended_std(st, false, kPerMt, [] {}); }
void pingpong_pthread(benchmark::State& st, bool same_cpu) {
  pingpong<std::mutex, std::condition_variable> p;
  const int a = bench::first_allowed_cpu();
  const int b = same_cpu ? a : bench::second_allowed_cpu();
  bench::thread_pair(
      a, b, [&] { p.partner(); }, [&] { p.measured(st); });
}

void reg(const char* name, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name, fn)->UseRealTime();
}

void register_all() {
#ifdef BENCH_FIBER_SYNC
  reg("mutex/fiber", mutex_fiber<fiber::mutex>);
#endif
  reg("mutex/fiber_c", mutex_fiber<c_mutex>);
#ifdef BENCH_HAVE_BOOST
  reg("mutex/boost", mutex_boost);
#endif
  reg("mutex/std", mutex_std);

#ifdef BENCH_FIBER_SYNC
  reg("mutex1klt/fiber", mutex1klt_fiber<fiber::mutex>);
#endif
  reg("mutex1klt/fiber_c", mutex1klt_fiber<c_mutex>);
#ifdef BENCH_HAVE_BOOST
  reg("mutex1klt/boost", mutex1klt_boost);
#endif
  reg("mutex1klt/pthread_samecpu", mutex1klt_std);

#ifdef BENCH_FIBER_SYNC
  reg("mutexmt/fiber", mutexmt_fiber<fiber::mutex>);
#endif
  reg("mutexmt/fiber_c", mutexmt_fiber<c_mutex>);
#ifdef BENCH_HAVE_BOOST
  reg("mutexmt/boost_ws", mutexmt_boost_ws);
#endif
  reg("mutexmt/std", mutexmt_std);
  reg("mutexmt_klt1/fiber_c", mutexmt_klts_fiber<c_mutex, 1>);
  reg("mutexmt_klt2/fiber_c", mutexmt_klts_fiber<c_mutex, 2>);
  reg("mutexmt_klt2/fiber_c_nospin", mutexmt_klts_nospin_fiber<c_mutex, 2>);
#ifdef BENCH_FIBER_SYNC
  reg("mutexmt_klt2/fiber", mutexmt_klts_fiber<fiber::mutex, 2>);
#endif

#ifdef BENCH_FIBER_SYNC
  reg("pingpong/fiber", pingpong_fiber<fiber::mutex, fiber::condition_variable>);
#endif
  reg("pingpong/fiber_c", pingpong_fiber<c_mutex, c_cond>);
#ifdef BENCH_HAVE_BOOST
  reg("pingpong/boost", pingpong_boost);
#endif
  benchmark::RegisterBenchmark("pingpong/pthread_samecpu", pingpong_pthread, true)->UseRealTime();
  benchmark::RegisterBenchmark("pingpong/pthread_crosscpu", pingpong_pthread, false)
      ->UseRealTime();
}

}  // namespace

FIBER_BENCH_MAIN(register_all)
