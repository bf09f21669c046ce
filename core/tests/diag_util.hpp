// core/tests/diag_util.hpp - helpers for the diagnostics tests (diag_test.cpp,
// deadlock_test.cpp): a forked child whose stderr is captured, with the time
// at which a given line arrived, and a dump captured into a string.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "fiber/fiber.h"
#include "test_util.hpp"

namespace fiber_test {

struct captured {
  bool exited = false;     // exited by itself (not killed for running past the timeout)
  int status = -1;         // exit status when exited
  std::string out;         // its stderr
  std::uint64_t seen_ns = 0;  // CLOCK_MONOTONIC when `watch` first arrived (0: never)
};

// Runs body() in a forked child (no runtime may run in this process), with
// FIBER_DEADLOCK=deadlock_env when given, stderr captured.  The child is
// killed after timeout_ms.  body's return value is the exit status.
inline captured run_captured(const std::function<int()>& body, unsigned timeout_ms,
                             const char* watch = nullptr, const char* deadlock_env = nullptr) {
  captured r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    if (deadlock_env) setenv("FIBER_DEADLOCK", deadlock_env, 1);
    _exit(body());
  }
  close(fds[1]);
  std::uint64_t end = now_ns() + std::uint64_t{timeout_ms} * kMs;
  char buf[4096];
  bool eof = false;
  for (;;) {
    std::uint64_t now = now_ns();
    if (now >= end) break;
    struct pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>((end - now) / kMs) + 1);
    if (n <= 0) continue;
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got <= 0) {  // EOF: the child exited (or closed stderr)
      eof = true;
      break;
    }
    r.out.append(buf, static_cast<std::size_t>(got));
    if (watch && !r.seen_ns && r.out.find(watch) != std::string::npos) r.seen_ns = now_ns();
  }
  int st = 0;
  if (!eof) {
    kill(pid, SIGKILL);  // ran past the timeout
    waitpid(pid, &st, 0);
  } else if (waitpid(pid, &st, 0) == pid && WIFEXITED(st)) {
    r.exited = true;
    r.status = WEXITSTATUS(st);
  }
  close(fds[0]);
  return r;
}

// Writes "formed=<CLOCK_MONOTONIC ns>" to stderr: the moment a test's
// deadlock is (about to be) complete.  The last one in `out` is returned.
inline void mark_formed() {
  char line[64];
  int n = std::snprintf(line, sizeof line, "formed=%llu\n", static_cast<unsigned long long>(now_ns()));
  ssize_t w = write(2, line, static_cast<std::size_t>(n));
  (void)w;
}
inline std::uint64_t last_formed(const std::string& out) {
  std::size_t at = out.rfind("formed=");
  return at == std::string::npos ? 0 : std::strtoull(out.c_str() + at + 7, nullptr, 10);
}

// A fiber created with a name (attr.name); 0 if the create failed.
inline fiber_t spawn_named(void* (*fn)(void*), void* arg, const char* name) {
  fiber_attr_t a;
  fiber_attr_init(&a);
  a.name = name;
  fiber_t f = 0;
  return fiber_create(&f, &a, fn, arg) == 0 ? f : 0;
}

// fiber_dump into a string (through a memfd).
inline std::string dump_string() {
  int fd = memfd_create("fiber-dump", 0);
  if (fd < 0) return {};
  EXPECT_EQ(fiber_dump(fd), 0);
  std::string s;
  lseek(fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return s;
}

}  // namespace fiber_test
