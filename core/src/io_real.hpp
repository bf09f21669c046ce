// core/src/io_real.hpp - libc's own I/O and sleep functions, found behind
// libfiber's interposers (interpose_io.cpp, interpose_sleep.cpp).  Not installed.
//
// As for the signal interposers (signals.cpp): the next definition in lookup
// order is found with dlsym(RTLD_NEXT) (real_symbol.hpp) - libc, or a
// sanitizer's interceptor that itself goes on to libc - so a fiber's read()
// still passes through ASan/TSan.  In a fully static program, or while this
// thread is inside a lookup, FIBER_REAL gives nullptr and the raw system call
// is made instead.  Every lookup is cached (relaxed: idempotent, every thread
// finds the same pointer) and done once at load time too, so a call from a
// signal handler does not run dlsym.
#pragma once

#include <atomic>

#include "real_symbol.hpp"

namespace fiber::detail {

// FIBER_REAL(read) -> libc's read, or nullptr in a fully static program.
#define FIBER_REAL(fn) ::fiber::detail::next_symbol<void*, decltype(&::fn)>(::fiber::detail::g_real_##fn, #fn)

// One cache per function (inline: one definition for every file that uses it).
inline std::atomic<void*> g_real_read{nullptr}, g_real_write{nullptr}, g_real_readv{nullptr},
    g_real_writev{nullptr}, g_real_recvfrom{nullptr}, g_real_recvmsg{nullptr}, g_real_sendto{nullptr},
    g_real_sendmsg{nullptr}, g_real_accept4{nullptr}, g_real_connect{nullptr}, g_real_poll{nullptr},
    g_real_select{nullptr}, g_real_epoll_wait{nullptr}, g_real_close{nullptr}, g_real_nanosleep{nullptr},
    g_real_clock_nanosleep{nullptr}, g_real_usleep{nullptr}, g_real_sleep{nullptr}, g_real_sched_yield{nullptr};

}  // namespace fiber::detail
