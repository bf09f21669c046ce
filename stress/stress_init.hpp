// stress/stress_init.hpp - starts the runtime the way every stress binary does:
// the given KLTs and quantum, and a 5 s hang watchdog (a stuck KLT is reported
// on stderr while the run goes on).  Prints "FAIL: fiber_init" and returns
// false if the runtime cannot start.
#pragma once

#include <fiber/fiber.h>

#include <cstdio>

namespace stress {

inline bool start_runtime(unsigned klts, unsigned timeslice_us) {
  fiber_config_t cfg;
  fiber_config_init(&cfg);
  cfg.klts = klts;
  cfg.timeslice_us = timeslice_us;
  cfg.watchdog_ms = 5000;
  if (fiber_init(&cfg) != 0) {
    std::printf("FAIL: fiber_init\n");
    return false;
  }
  return true;
}

}  // namespace stress
