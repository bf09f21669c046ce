// fiber/fiber.hpp - the C++ API of fiber (std-shaped), over the C API in fiber.h.
//
// What it does: fiber::runtime starts the KLTs (RAII: its destructor waits
// for every fiber and shuts down); fiber::thread runs a callable on a fiber
// like std::thread; fiber::this_fiber mirrors std::this_thread;
// fiber::offload runs a blocking callable on the offload pool.  Mutex,
// condition variable, semaphore and barrier are in the headers included at
// the end.
//
// Guarantees: misuse reported by the C API throws std::system_error with its
// errno value, as the std types do.  An exception escaping a fiber's callable
// prints "fiber: fatal: uncaught exception in fiber <id>: <what>" and
// terminates the process (std::thread calls std::terminate too).
//
// Lifecycle: construct a fiber::runtime before the first fiber::thread (or let
// the first thread initialise the defaults), join or detach every thread
// (destroying a joinable fiber::thread terminates, as std::thread does).
//
// Example:
//     fiber::runtime rt({/*klts=*/2, std::chrono::microseconds(4000)});
//     int sum = 0;
//     fiber::thread t([&sum](int n) { for (int i = 0; i < n; ++i) sum += i; }, 10);
//     t.join();                          // sum == 45
//     fiber::thread w(fiber::thread::options{"worker"}, [] { /* named in fiber_dump and gdb */ });
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "fiber/fiber.h"

namespace fiber {

class runtime {
 public:
  struct options {
    unsigned klts = 0;                                   // 0 = online CPUs
    std::chrono::microseconds timeslice{FIBER_DEFAULT_TIMESLICE_US};  // 0 = cooperative
    std::size_t stack_size = 0;                          // 0 = library default
    std::chrono::milliseconds watchdog{0};               // 0 = off (fiber_config_t::watchdog_ms)
  };
  runtime() : runtime(options{}) {}
  explicit runtime(const options& o) {
    fiber_config_t c;
    fiber_config_init(&c);
    c.klts = o.klts;
    c.timeslice_us = static_cast<unsigned>(o.timeslice.count());
    c.stack_size = o.stack_size;
    c.watchdog_ms = static_cast<unsigned>(o.watchdog.count());
    if (int e = fiber_init(&c)) throw std::system_error(e, std::generic_category(), "fiber_init");
  }
  ~runtime() { fiber_shutdown(); }
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
};

namespace detail {
template <class Tuple>
struct thread_state {
  Tuple call;
  explicit thread_state(Tuple&& t) : call(std::move(t)) {}
};

[[noreturn]] inline void uncaught(const char* what) noexcept {
  std::fprintf(stderr, "fiber: fatal: uncaught exception in fiber %llu: %s\n",
               static_cast<unsigned long long>(fiber_self()), what);
  std::fflush(stderr);
  std::terminate();
}

template <class Tuple>
void* thread_start(void* p) {
  std::unique_ptr<thread_state<Tuple>> s(static_cast<thread_state<Tuple>*>(p));
  try {
    std::apply([](auto&&... a) { std::invoke(std::move(a)...); }, std::move(s->call));
  } catch (const std::exception& e) {
    uncaught(e.what());
  } catch (...) {
    uncaught("(not a std::exception)");
  }
  return nullptr;
}
}  // namespace detail

class thread {
 public:
  class id {
   public:
    id() noexcept = default;
    explicit id(fiber_t v) noexcept : v_(v) {}
    fiber_t native() const noexcept { return v_; }
    friend bool operator==(id a, id b) noexcept { return a.v_ == b.v_; }
    friend bool operator!=(id a, id b) noexcept { return a.v_ != b.v_; }
    friend bool operator<(id a, id b) noexcept { return a.v_ < b.v_; }
    friend std::ostream& operator<<(std::ostream& os, id i) { return os << i.v_; }

   private:
    fiber_t v_ = 0;
  };

  // Creation options beyond std::thread (fiber_attr_t): a name for fiber_dump
  // and gdb (copied; std::system_error ERANGE if FIBER_NAME_MAX or longer).
  struct options {
    const char* name = nullptr;
    std::size_t stack_size = 0;  // 0 = the runtime's default
  };

  thread() noexcept = default;
  template <class F, class... Args,
            class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, thread> &&
                                     !std::is_same_v<std::decay_t<F>, options>>>
  explicit thread(F&& f, Args&&... args) : thread(options{}, std::forward<F>(f), std::forward<Args>(args)...) {}
  template <class F, class... Args>
  thread(const options& o, F&& f, Args&&... args) {
    using tuple = std::tuple<std::decay_t<F>, std::decay_t<Args>...>;
    auto s = std::make_unique<detail::thread_state<tuple>>(
        tuple(std::forward<F>(f), std::forward<Args>(args)...));
    fiber_attr_t a;
    fiber_attr_init(&a);
    a.name = o.name;
    a.stack_size = o.stack_size;
    fiber_t t = 0;
    if (int e = fiber_create(&t, &a, &detail::thread_start<tuple>, s.get()))
      throw std::system_error(e, std::generic_category(), "fiber_create");
    s.release();
    id_ = id(t);
  }
  ~thread() {
    if (joinable()) std::terminate();
  }
  thread(thread&& o) noexcept : id_(std::exchange(o.id_, id())) {}
  thread& operator=(thread&& o) noexcept {
    if (joinable()) std::terminate();
    id_ = std::exchange(o.id_, id());
    return *this;
  }

  bool joinable() const noexcept { return id_ != id(); }
  id get_id() const noexcept { return id_; }
  void join() {
    if (!joinable()) throw std::system_error(EINVAL, std::generic_category(), "fiber::thread::join");
    if (int e = fiber_join(id_.native(), nullptr))
      throw std::system_error(e, std::generic_category(), "fiber::thread::join");
    id_ = id();
  }
  void detach() {
    if (!joinable()) throw std::system_error(EINVAL, std::generic_category(), "fiber::thread::detach");
    if (int e = fiber_detach(id_.native()))
      throw std::system_error(e, std::generic_category(), "fiber::thread::detach");
    id_ = id();
  }
  void swap(thread& o) noexcept { std::swap(id_, o.id_); }

 private:
  id id_;
};

namespace this_fiber {
inline void yield() noexcept { fiber_yield(); }
inline thread::id get_id() noexcept { return thread::id(fiber_self()); }
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) {
  if (d <= d.zero()) return;
  auto ns = std::chrono::ceil<std::chrono::nanoseconds>(d).count();
  fiber_sleep_ns(static_cast<std::uint64_t>(ns));
}
template <class Clock, class Duration>
void sleep_until(const std::chrono::time_point<Clock, Duration>& t) {
  for (auto now = Clock::now(); now < t; now = Clock::now()) sleep_for(t - now);
}
}  // namespace this_fiber

// Runs f() on the offload pool while the calling fiber parks (fiber_offload
// in fiber.h: for a blocking call the runtime cannot park on).  Returns what
// f returns; an exception f throws is rethrown here.  From an OS thread f
// runs inline.  f runs on an OS thread: it must not use the fiber API.
// Example:  auto addr = fiber::offload([&] { return blocking_lookup(name); });
template <class F>
auto offload(F&& f) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  struct call {
    F* f;
    std::optional<std::conditional_t<std::is_void_v<R>, char, R>> ret;  // unused for void
    std::exception_ptr error;
    static void* run(void* p) {
      auto* c = static_cast<call*>(p);
      try {
        if constexpr (std::is_void_v<R>) {
          (*c->f)();
        } else {
          c->ret.emplace((*c->f)());
        }
      } catch (...) {
        c->error = std::current_exception();
      }
      return nullptr;
    }
  } c{&f, {}, nullptr};
  fiber_offload(&call::run, &c, nullptr);  // 0: the function is not null
  if (c.error) std::rethrow_exception(c.error);
  if constexpr (!std::is_void_v<R>) return std::move(*c.ret);
}

}  // namespace fiber

#if __has_include("fiber/mutex.hpp")
#include "fiber/mutex.hpp"
#endif
#if __has_include("fiber/condition_variable.hpp")
#include "fiber/condition_variable.hpp"
#endif
#if __has_include("fiber/semaphore.hpp")
#include "fiber/semaphore.hpp"
#endif
#if __has_include("fiber/barrier.hpp")
#include "fiber/barrier.hpp"
#endif
