// core/src/offload.cpp - the pool that runs a fiber's blocking calls with no
// readiness path (offload.hpp: what goes here, I-OFF1..3, lifecycle).
#include "offload.hpp"

#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "fiber/detail/spinlock.hpp"
#include "io_fiber.hpp"
#include "runtime.hpp"

namespace fiber::detail {

namespace {

struct job {
  long (*fn)(void*);
  void* arg;
  long ret = 0;
  int err = 0;       // in: the caller's errno; out: the errno fn left (I-OFF2)
  parker* p = nullptr;
  job* next = nullptr;
  std::atomic<std::uint32_t> done{0};
};

// The queue and the census, under g_lk (a runtime spinlock: a fiber holding it
// is not preempted, I-S1; on a worker it is a plain spinlock).
basic_spinlock<native_seam> g_lk;
job* g_head = nullptr;
job* g_tail = nullptr;
unsigned g_idle = 0;       // workers asleep (or about to sleep) on g_seq
unsigned g_threads = 0;    // workers started
native_atomic<std::uint32_t> g_seq{0};  // bumped by each submit: the workers' futex word
std::atomic<long> g_alive{0};            // g_threads, readable without the lock (deadlock census)
std::atomic<unsigned long> g_jobs{0};    // jobs run by workers (test counter)

job* pop_locked() noexcept {
  job* j = g_head;
  if (j) {
    g_head = j->next;
    if (!g_head) g_tail = nullptr;
  }
  return j;
}

void run(job* j) noexcept {
  errno = j->err;
  j->ret = j->fn(j->arg);
  j->err = errno;
  g_jobs.fetch_add(1, std::memory_order_relaxed);  // relaxed: a test counter
  parker* p = j->p;
  j->done.store(1, std::memory_order_release);  // I-OFF1: the last touch of j; pairs with offload_call's acquire
  p->unpark();
}

void* worker_main(void*) {
  pthread_setname_np(pthread_self(), "fiber-offload");
  for (;;) {
    g_lk.lock();
    job* j = pop_locked();
    if (!j) {
      ++g_idle;
      // relaxed: read under g_lk, which orders it against the submitter's bump.
      std::uint32_t seen = g_seq.load(mo::relaxed);
      g_lk.unlock();
      native_seam::os_wait(g_seq, seen, kNoDeadline);
      g_lk.lock();
      --g_idle;
      g_lk.unlock();
      continue;
    }
    g_lk.unlock();
    run(j);
  }
  return nullptr;
}

// A new worker, with every signal blocked (the program's signals go to its
// own threads; glibc's internal 32 and 33 stay open, as for the poller).
// Raw rt_sigprocmask: a fiber's pthread_sigmask is interposed (signals.cpp).
bool start_worker() noexcept {
  std::uint64_t all = ~((std::uint64_t{1} << 31) | (std::uint64_t{1} << 32)), old = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int r = pthread_create(&t, &a, worker_main, nullptr);
  pthread_attr_destroy(&a);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  return r == 0;
}

long inline_call(long (*fn)(void*), void* arg) noexcept { return fn(arg); }

}  // namespace

long offload_call(long (*fn)(void*), void* arg) noexcept {
  if (knobs.no_offload.load(std::memory_order_relaxed)) return inline_call(fn, arg);  // relaxed: a test knob
  fcb* f = current_fiber();
  if (!f) return inline_call(fn, arg);
  job j;
  j.fn = fn;
  j.arg = arg;
  j.err = fresh_errno();
  parker& p = native_seam::current_parker();
  j.p = &p;
  g_lk.lock();
  bool spawn = g_idle == 0 && g_threads < kOffloadMaxThreads;
  if (spawn) ++g_threads;  // counted before it exists: a second submitter does not start one too
  if (g_tail) g_tail->next = &j; else g_head = &j;
  g_tail = &j;
  bool wake = g_idle != 0;
  g_seq.store(g_seq.load(mo::relaxed) + 1, mo::relaxed);  // relaxed: under g_lk (the worker reads it there)
  g_lk.unlock();
  if (spawn) {
    if (start_worker()) {
      g_alive.fetch_add(1, std::memory_order_relaxed);  // relaxed: a census, confirmed by the rules
    } else {
      g_lk.lock();
      --g_threads;
      bool none = g_threads == 0;
      // No worker will ever take j: take it back and run it here (I-OFF3).
      if (none) {
        job** link = &g_head;
        job* prev = nullptr;
        while (*link && *link != &j) { prev = *link; link = &(*link)->next; }
        if (*link) {
          *link = j.next;
          if (g_tail == &j) g_tail = prev;
        }
      }
      g_lk.unlock();
      if (none) return inline_call(fn, arg);
    }
  }
  if (wake) native_seam::os_wake(g_seq, 1);
  native_seam::note_wait(p, wait_kind::io, &j);  // the dump shows it; the detector waits for it
  while (j.done.load(std::memory_order_acquire) == 0) p.park();  // acquire: pairs with run()'s release
  fresh_errno() = j.err;  // fresh: the fiber may have resumed on another KLT (io_fiber.hpp)
  return j.ret;
}

long offload_threads() noexcept { return g_alive.load(std::memory_order_relaxed); }  // relaxed: a census

unsigned long offload_jobs() noexcept { return g_jobs.load(std::memory_order_relaxed); }  // relaxed: a counter

void offload_forget() noexcept {
  // The child has one thread: the workers and their jobs stayed behind.
  new (&g_lk) basic_spinlock<native_seam>();
  g_head = g_tail = nullptr;
  g_idle = g_threads = 0;
  g_alive.store(0, std::memory_order_relaxed);  // relaxed: one thread
}

}  // namespace fiber::detail
