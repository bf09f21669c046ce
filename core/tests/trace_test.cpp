// core/tests/trace_test.cpp - the scheduling trace's switch and file
// (core/src/trace.cpp): fiber_config_t::trace_path, FIBER_TRACE, and that a
// traced run holds one create, one exit and one join per fiber.  The
// schedule itself is checked by tools/trace_check.py (ctest trace_*).
#include <fiber/fiber.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

// The file format (core/src/trace.cpp's header comment).
struct rec {
  std::uint64_t ts, fiber, arg;
  std::uint32_t seq;
  unsigned char kind, aux;
  std::uint16_t q;
};
struct chunk {
  std::uint32_t magic, source, count, flags;
  std::uint64_t dropped, reserved;
};
enum : unsigned char { kCreate = 1, kRun = 2, kExit = 8, kJoin = 9, kName = 13 };
constexpr std::uint32_t kSrcCalib = 0xFFFFFFFE;

struct parsed {
  bool ok = false;
  std::vector<rec> recs;
  std::uint64_t dropped = 0;
  bool calibrated = false;
};

parsed read_trace(const std::string& path) {
  parsed p;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return p;
  char hdr[40];
  if (std::fread(hdr, 1, sizeof hdr, f) != sizeof hdr || std::memcmp(hdr, "FIBTRC01", 8) != 0) {
    std::fclose(f);
    return p;
  }
  chunk c;
  while (std::fread(&c, sizeof c, 1, f) == 1) {
    if (c.magic != 0x4b4e4843) break;
    std::vector<rec> rs(c.count);
    if (std::fread(rs.data(), sizeof(rec), c.count, f) != c.count) break;
    if (c.source == kSrcCalib) {
      p.calibrated = true;
      continue;
    }
    p.dropped += c.dropped;
    p.recs.insert(p.recs.end(), rs.begin(), rs.end());
  }
  p.ok = !std::ferror(f);
  std::fclose(f);
  return p;
}

std::string tmp_path(const char* tag) {
  return std::string("/tmp/fiber_trace_test_") + tag + "_" + std::to_string(getpid());
}

void* napper(void*) {
  fiber_yield();
  fiber_sleep_ns(100 * 1000);
  return nullptr;
}

}  // namespace

TEST(Trace, ConfigPathThatCannotBeOpenedIsEinval) {
  fiber_config_t c;
  fiber_config_init(&c);
  EXPECT_EQ(c.trace_path, nullptr);  // off by default
  c.klts = 1;
  c.trace_path = "/nonexistent-dir/trace";
  EXPECT_EQ(fiber_init(&c), EINVAL);
  c.trace_path = nullptr;
  ASSERT_EQ(fiber_init(&c), 0);  // nothing was left half-initialised
  EXPECT_EQ(fiber_shutdown(), 0);
}

TEST(Trace, EveryFiberHasOneCreateExitJoinAndItsName) {
  std::string path = tmp_path("count");
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 2;
  c.trace_path = path.c_str();
  ASSERT_EQ(fiber_init(&c), 0);
  constexpr int kFibers = 50;
  std::vector<fiber_t> ids(kFibers);
  fiber_attr_t at;
  fiber_attr_init(&at);
  at.name = "napper-fiber-name";
  for (auto& id : ids) ASSERT_EQ(fiber_create(&id, &at, napper, nullptr), 0);
  for (auto id : ids) ASSERT_EQ(fiber_join(id, nullptr), 0);
  ASSERT_EQ(fiber_shutdown(), 0);
  parsed p = read_trace(path);
  unlink(path.c_str());
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.calibrated);
  EXPECT_EQ(p.dropped, 0u);
  std::map<std::uint64_t, int> creates, exits, joins, runs;
  std::map<std::uint64_t, std::map<int, std::uint64_t>> names;
  for (const rec& r : p.recs) {
    if (r.kind == kCreate) ++creates[r.fiber];
    if (r.kind == kExit) ++exits[r.fiber];
    if (r.kind == kJoin) ++joins[r.fiber];
    if (r.kind == kRun) ++runs[r.fiber];
    if (r.kind == kName) names[r.fiber][r.aux] = r.arg;
  }
  for (auto id : ids) {
    EXPECT_EQ(creates[id], 1) << id;
    EXPECT_EQ(exits[id], 1) << id;
    EXPECT_EQ(joins[id], 1) << id;
    EXPECT_GE(runs[id], 2) << id;  // yield and sleep: at least two runs
    std::string name;
    for (auto& [part, bytes] : names[id]) name.append(reinterpret_cast<const char*>(&bytes), 8);
    EXPECT_STREQ(name.c_str(), "napper-fiber-name") << id;
  }
}

TEST(Trace, EnvironmentOverridesTheConfigField) {
  std::string from_cfg = tmp_path("cfg"), from_env = tmp_path("env");
  unlink(from_cfg.c_str());
  setenv("FIBER_TRACE", from_env.c_str(), 1);
  fiber_config_t c;
  fiber_config_init(&c);
  c.klts = 1;
  c.trace_path = from_cfg.c_str();
  int r = fiber_init(&c);
  unsetenv("FIBER_TRACE");
  ASSERT_EQ(r, 0);
  fiber_t id;
  ASSERT_EQ(fiber_create(&id, nullptr, napper, nullptr), 0);
  ASSERT_EQ(fiber_join(id, nullptr), 0);
  ASSERT_EQ(fiber_shutdown(), 0);
  EXPECT_NE(access(from_cfg.c_str(), F_OK), 0);
  parsed p = read_trace(from_env);
  unlink(from_env.c_str());
  ASSERT_TRUE(p.ok);
  int creates = 0;
  for (const rec& r : p.recs) creates += r.kind == kCreate && r.fiber == id;
  EXPECT_EQ(creates, 1);
}

TEST(Trace, EnvironmentPathThatCannotBeOpenedRunsUntraced) {
  setenv("FIBER_TRACE", "/nonexistent-dir/trace", 1);
  int r = fiber_init(nullptr);  // one line on stderr, no error: an implicit init must not fail
  unsetenv("FIBER_TRACE");
  ASSERT_EQ(r, 0);
  fiber_t id;
  ASSERT_EQ(fiber_create(&id, nullptr, napper, nullptr), 0);
  ASSERT_EQ(fiber_join(id, nullptr), 0);
  EXPECT_EQ(fiber_shutdown(), 0);
}
