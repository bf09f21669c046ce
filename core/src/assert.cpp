// core/src/assert.cpp - FIBER_ASSERT's and fatal()'s one line (async-signal-safe).
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "fiber/detail/assert.hpp"
#include "sys_write.hpp"

namespace fiber::detail {

static void put(const char* s) noexcept {
  if (s) {
    ssize_t r = sys_write(2, s, std::strlen(s));
    (void)r;
  }
}

void assert_fail(const char* cond, const char* msg, const char* file, int line,
                 const char* func) noexcept {
  char num[16];
  int n = 0;
  char tmp[16];
  unsigned v = static_cast<unsigned>(line);
  do { tmp[n++] = static_cast<char>('0' + v % 10); v /= 10; } while (v && n < 15);
  for (int i = 0; i < n; ++i) num[i] = tmp[n - 1 - i];
  num[n] = '\0';
  put("fiber: assertion failed: "); put(msg); put(" ("); put(cond); put(") at ");
  put(file); put(":"); put(num); put(" in "); put(func); put("\n");
  std::abort();
}

void fatal(const char* msg) noexcept {
  put("fiber: fatal: ");
  put(msg);
  put("\n");
  std::abort();
}

}  // namespace fiber::detail
