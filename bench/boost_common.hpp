// bench/boost_common.hpp - Boost.Fiber side of the side-by-side benchmarks.
//
// boost_run(st, body): runs `body` in a Boost fiber on a fresh OS thread
//   (default round_robin scheduler), like fiber_run() in common.hpp.
// ws_pool: the work_stealing scheduler of Boost 1.74 can be installed only
//   once per process (a static counter hands out scheduler ids), so the
//   threads that run it are created once and kept; between runs they sleep in
//   the kernel, during a run they spin stealing (work_stealing's default,
//   suspend=false: with suspend=true an idle thread sleeps until a remote
//   wake-up and never steals).
// tl_pooled_stack: recycled stacks that may be freed on another thread (the
//   pooled_fixedsize_stack of Boost.Context is not thread-safe): a per-thread
//   free list, so a stack goes back to the list of the thread that ends the
//   fiber.
#pragma once

#include <boost/context/stack_context.hpp>
#include <boost/fiber/all.hpp>

#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "common.hpp"

namespace bench {

inline constexpr std::size_t kBoostStack = 16 * 1024;

inline void boost_run(const std::function<void()>& body) {
  std::thread t([&body] {
    boost::fibers::fiber f(body);
    f.join();
  });
  t.join();
}

class tl_pooled_stack {
 public:
  explicit tl_pooled_stack(std::size_t size = kBoostStack) : size_(size) {}

  boost::context::stack_context allocate() {
    std::vector<void*>& fl = list().v;
    void* p = nullptr;
    if (!fl.empty()) {
      p = fl.back();
      fl.pop_back();
    } else {
      p = std::malloc(size_);
      if (p == nullptr) throw std::bad_alloc();
    }
    boost::context::stack_context sc;
    sc.size = size_;
    sc.sp = static_cast<char*>(p) + size_;
    return sc;
  }
  void deallocate(boost::context::stack_context& sc) noexcept {
    list().v.push_back(static_cast<char*>(sc.sp) - sc.size);
  }

 private:
  struct freelist {
    std::vector<void*> v;
    ~freelist() {
      for (void* p : v) std::free(p);
    }
  };
  static freelist& list() {
    thread_local freelist l;
    return l;
  }
  std::size_t size_;  // the same kBoostStack everywhere, so lists never mix sizes
};

// n OS threads with Boost's work_stealing scheduler; thread 0 runs jobs.
class ws_pool {
 public:
  static ws_pool& get() {
    static ws_pool p(online_cpus());
    return p;
  }
  unsigned threads() const { return n_; }

  // Runs `job` in a fiber of thread 0 and waits for it.  The helpers steal
  // while it runs.
  void run(const std::function<void()>& job) {
    {
      std::lock_guard<boost::fibers::mutex> flk(fm_);
      running_ = true;
    }
    std::unique_lock<std::mutex> lk(m_);
    job_ = &job;
    ++epoch_;
    done_ = false;
    cv_.notify_all();
    cv_.wait(lk, [this] { return done_; });
  }

  ~ws_pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
      ++epoch_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  explicit ws_pool(unsigned n) : n_(n) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { loop(i); });
  }

  void loop(unsigned idx) {
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n_);
    unsigned long seen = 0;
    for (;;) {
      const std::function<void()>* job = nullptr;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return epoch_ != seen; });
        seen = epoch_;
        if (quit_) return;
        job = job_;
      }
      if (idx == 0) {
        boost::fibers::fiber f(*job);
        f.join();
        {
          std::lock_guard<boost::fibers::mutex> lk(fm_);
          running_ = false;
        }
        fcv_.notify_all();  // the helpers stop stealing
        // Wait until every helper is back in the kernel before reporting.
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return parked_ == n_ - 1; });
        parked_ = 0;
        done_ = true;
        cv_.notify_all();
      } else {
        // Block this thread's main fiber on a fiber condition variable: its
        // dispatcher spins stealing until thread 0 says the job is over.
        {
          std::unique_lock<boost::fibers::mutex> lk(fm_);
          fcv_.wait(lk, [&] { return !running_; });
        }
        std::lock_guard<std::mutex> lk(m_);
        ++parked_;
        cv_.notify_all();
      }
    }
  }

 private:
  unsigned n_;
  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;
  unsigned long epoch_ = 0;
  unsigned parked_ = 0;
  bool done_ = false;
  bool quit_ = false;
  boost::fibers::mutex fm_;
  boost::fibers::condition_variable fcv_;
  bool running_ = false;
};

}  // namespace bench
