// core/tests/runtime_allow_list_test.cpp - fiber_preempt_allow_module's list
// (issue 14, item 3): a full list is an error (ENOMEM) rather than a silent
// drop, a module added twice takes one place, fiber_shutdown empties the
// list, and init always puts the main executable back.
//
// The modules are copies of one tiny shared object (spin_module.c) under
// distinct file names: each copy is a distinct module to the dynamic loader.
// Whether a module is really on the list is seen through behaviour: a fiber
// spinning inside the module on a 1-KLT runtime lets a second fiber run only
// if a tick may preempt it there.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
#include <x86intrin.h>

#include <fstream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace fiber_test;
using spin_fn = int (*)(const int*, unsigned long long);

constexpr unsigned long long kLong = 3'000'000'000ull;  // TSC cycles: about a second
constexpr unsigned long long kShort = 300'000'000ull;   // about a tenth

// Distinct copies of the spin module, loaded for the whole process (a
// dlclose'd module would leave stale ranges on the list until shutdown).
class module_copies {
 public:
  module_copies() {
    char tmpl[] = "/tmp/fiber-allow-XXXXXX";
    const char* d = mkdtemp(tmpl);
    dir_ = d ? d : "";
  }
  ~module_copies() {
    for (const std::string& p : paths_) unlink(p.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  // The spin function of a new copy; nullptr if it could not be loaded.
  spin_fn load() {
    std::string path = dir_ + "/spin" + std::to_string(paths_.size()) + ".so";
    {
      std::ifstream in(FIBER_TEST_SPIN_MODULE, std::ios::binary);
      std::ofstream out(path, std::ios::binary);
      out << in.rdbuf();
    }
    paths_.push_back(path);
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) return nullptr;
    return reinterpret_cast<spin_fn>(dlsym(h, "fiber_test_module_spin"));
  }

 private:
  std::string dir_;
  std::vector<std::string> paths_;
};

struct spin_job {
  spin_fn fn = nullptr;
  unsigned long long cycles = 0;
  int flag = 0;
  int result = -1;
};

void* set_flag(void* p) {
  __atomic_store_n(&static_cast<spin_job*>(p)->flag, 1, __ATOMIC_RELAXED);  // relaxed: a flag
  return nullptr;
}

// Spins in the module until a second fiber ran (1: the spin was preempted).
void* spin_in_module(void* p) {
  auto* job = static_cast<spin_job*>(p);
  fiber_t other;
  if (fiber_create(&other, nullptr, set_flag, job) != 0) return nullptr;
  job->result = job->fn(&job->flag, job->cycles);
  fiber_join(other, nullptr);
  return nullptr;
}

// 1 when a fiber spinning in `fn` was preempted, 0 when it never was.
int preempted_in(spin_fn fn, unsigned long long cycles) {
  spin_job job;
  job.fn = fn;
  job.cycles = cycles;
  fiber_t f = spawn(spin_in_module, &job);
  EXPECT_NE(f, 0u);
  if (f) join(f);
  return job.result;
}

class allow_list_test : public runtime_test {};

TEST_F(allow_list_test, FullListIsAnErrorNotASilentDrop) {
  module_copies mods;
  start(1, 1000);
  int r = 0;
  unsigned added = 0;
  spin_fn first = nullptr;
  for (unsigned i = 0; i < 200 && r == 0; ++i) {
    spin_fn fn = mods.load();
    ASSERT_NE(fn, nullptr);
    if (!first) first = fn;
    r = fiber_preempt_allow_module(reinterpret_cast<const void*>(fn));
    if (r == 0) ++added;
  }
  EXPECT_EQ(r, ENOMEM) << "200 modules added to a fixed list without an error";
  EXPECT_GE(added, 16u);
  EXPECT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(first)), 0)
      << "a module already on a full list is not an error";
}

TEST_F(allow_list_test, ModuleAddedTwiceTakesOnePlace) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  module_copies mods;
  start(1, 1000);
  spin_fn a = mods.load();
  spin_fn b = mods.load();
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(a)), 0);
  ASSERT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(b)), 0);
  EXPECT_EQ(preempted_in(b, kLong), 1) << "the second module was dropped: the list filled with copies of the first";
}

TEST_F(allow_list_test, ShutdownEmptiesTheList) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  module_copies mods;
  spin_fn a = mods.load();
  ASSERT_NE(a, nullptr);
  start(1, 1000);
  ASSERT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(a)), 0);
  EXPECT_EQ(preempted_in(a, kLong), 1) << "an allowed module was not preemptible";
  ASSERT_EQ(fiber_shutdown(), 0);
  start(1, 1000);
  EXPECT_EQ(preempted_in(a, kShort), 0) << "the module survived fiber_shutdown on the allow-list";
  EXPECT_GT(stats().deferred_pc, 0u);
}

// fiber_preempt_allow_module before fiber_init: the executable is still added at init.
TEST_F(allow_list_test, InitAddsTheExecutableAfterAnEarlyAllow) {
  FIBER_SKIP_WITHOUT_PREEMPTION();
  module_copies mods;
  spin_fn a = mods.load();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(fiber_preempt_allow_module(reinterpret_cast<const void*>(a)), 0);
  start(1, 1000);
  EXPECT_EQ(preempted_in(a, kLong), 1) << "a module allowed before init was lost";
  spin_job job;  // the same spin, compiled into the executable
  job.fn = [](const int* flag, unsigned long long cycles) {
    unsigned long long end = __rdtsc() + cycles;
    while (!__atomic_load_n(flag, __ATOMIC_RELAXED))  // relaxed: a flag, no data
      if (__rdtsc() > end) return 0;
    return 1;
  };
  job.cycles = kLong;
  fiber_t f = spawn(spin_in_module, &job);
  ASSERT_NE(f, 0u);
  join(f);
  EXPECT_EQ(job.result, 1) << "the main executable is missing from the allow-list";
}

}  // namespace
