// core/src/interpose_locks.hpp - libc's blocking locks called from fibers
// (interpose_locks.cpp).  Not installed.
//
// What: libfiber defines pthread_mutex_{lock,trylock,timedlock,clocklock,
// unlock}, pthread_cond_{wait,timedwait,clockwait,signal,broadcast},
// pthread_rwlock_{rdlock,wrlock,tryrdlock,trywrlock,timedrdlock,timedwrlock,
// clockrdlock,clockwrlock,unlock} and sem_{wait,timedwait,clockwait,post}.
// std::mutex, std::shared_mutex, std::condition_variable and
// std::counting_semaphore's pthread paths reach them.
//
// Guarantees, for a caller that is a fiber (I9, runtime.hpp):
//   - a mutex or rwlock taken is held by libc's own object (so OS threads
//     and fibers exclude each other), and the fiber is not preempted until it
//     releases it (one preempt-gate count per lock: the "preempted holder
//     pinned behind a KLT blocked in the futex" hang cannot form);
//   - when the lock (semaphore, condition) is busy the fiber parks in the
//     parking lot keyed by the object's address (parking_lot.hpp), never in
//     the kernel; every release through these functions - by fibers and by
//     OS threads - wakes the lot's waiters of that address;
//   - a condition wait parks in the lot keyed by the condition and takes the
//     mutex back through the same path; signal/broadcast wake the lot's
//     waiters and call libc's (for OS-thread waiters).
// An OS thread gets libc's behaviour (one TLS read more, and the lot check
// on release).  Process-shared objects always get libc's behaviour: another
// process's release cannot reach this lot.
//
// Lifecycle: the real functions are found with dlsym(RTLD_NEXT) at load time
// and again at fiber_init (interpose_locks_init), which also makes a static
// program link this object, so its definitions are in the executable and bind
// libstdc++'s calls too.
#pragma once

#include <pthread.h>
#include <semaphore.h>

namespace fiber::detail {

// libc's functions (whatever comes after libfiber in symbol lookup: libc, or a
// sanitizer's interceptor).  Filled by interpose_locks_init and at load time.
struct libc_locks {
  int (*mutex_lock)(pthread_mutex_t*);
  int (*mutex_trylock)(pthread_mutex_t*);
  int (*mutex_timedlock)(pthread_mutex_t*, const struct timespec*);
  int (*mutex_clocklock)(pthread_mutex_t*, clockid_t, const struct timespec*);
  int (*mutex_unlock)(pthread_mutex_t*);
  int (*cond_wait)(pthread_cond_t*, pthread_mutex_t*);
  int (*cond_timedwait)(pthread_cond_t*, pthread_mutex_t*, const struct timespec*);
  int (*cond_clockwait)(pthread_cond_t*, pthread_mutex_t*, clockid_t, const struct timespec*);
  int (*cond_signal)(pthread_cond_t*);
  int (*cond_broadcast)(pthread_cond_t*);
  int (*rw_rdlock)(pthread_rwlock_t*);
  int (*rw_wrlock)(pthread_rwlock_t*);
  int (*rw_tryrdlock)(pthread_rwlock_t*);
  int (*rw_trywrlock)(pthread_rwlock_t*);
  int (*rw_timedrdlock)(pthread_rwlock_t*, const struct timespec*);
  int (*rw_timedwrlock)(pthread_rwlock_t*, const struct timespec*);
  int (*rw_clockrdlock)(pthread_rwlock_t*, clockid_t, const struct timespec*);
  int (*rw_clockwrlock)(pthread_rwlock_t*, clockid_t, const struct timespec*);
  int (*rw_unlock)(pthread_rwlock_t*);
  int (*sem_wait)(sem_t*);
  int (*sem_trywait)(sem_t*);
  int (*sem_timedwait)(sem_t*, const struct timespec*);
  int (*sem_clockwait)(sem_t*, clockid_t, const struct timespec*);
  int (*sem_post)(sem_t*);
};
const libc_locks& real_locks() noexcept;

}  // namespace fiber::detail
