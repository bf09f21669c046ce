// core/src/stacks.cpp - fiber stacks: where they come from, what they keep.
//
// A stack belongs to a control block (fcb::map_base) and travels with it
// through the slot caches (slots.cpp): a fiber created on a reused slot runs
// on a warm stack and costs no system call.  New stacks of the runtime's
// default size are carved from arenas, so the address space lock is taken
// once per kArenaStacks stacks, not once per fiber (on 2 KLTs a mmap per
// fiber serialised both on mmap_lock: skynet 1M spent 5x its user time in the
// kernel).  Other sizes are mapped one by one, as before.
//
// Guarded arena: a PROT_NONE reservation of kArenaStacks x (guard + stack);
// carving a stack is one mprotect of its stack part, the guard below it is
// the reservation itself.  Same VMA count as one mapping per stack (2 per
// guarded stack), so the guarded budget below still applies.
//
// Unguarded arena (past the budget): one read-write MAP_NORESERVE mapping of
// kArenaStacks stacks, adjacent, with the canary of each stack in the same
// page as the top of the stack below it:
//
//   page k-1                          | page k ...            page k+63 |
//   [... top frames of stack i-1][can.i][stack i: lo (page aligned) ... hi)[can.i+1]
//
// stack_lo is page aligned and stack_hi sits kCanaryBytes below a page
// boundary.  A fiber that only ever touches its top page then costs one page
// of memory, where a page-aligned layout costs two (its top page and the page
// holding its canary): that second page was half of the 7.4 KB a parked
// fiber cost.
//
// Guard size, stack clash, the guarded budget (half of vm.max_map_count less
// a margin; FIBER_MAX_GUARDED_STACKS) and the canary check of unguarded
// stacks are unchanged: see slots.cpp's header.
//
// What a cached stack keeps resident: a stack handed to the global pool when
// it already holds kResidentFree stacks is trimmed with MADV_DONTNEED below
// its top page (the top page holds the next stack's canary in an unguarded
// arena, and the next fiber touches it first anyway).  So a burst of a
// million fibers leaves at most one page per cached stack, and deep stacks
// give their memory back.  Arena stacks are never unmapped alone; every
// arena is unmapped at fiber_shutdown (stacks_reset).
//
// The per-KLT stash: creating a fiber reserves a stack (address space, so
// fiber_create can report EAGAIN), but which stack a fiber runs on is
// decided when it first runs.  A fiber that exits leaves a stack whose top
// page is resident and in this core's cache; it goes to its KLT's stash, and
// the exiting slot takes a cold stack in exchange.  The next fiber to start
// on that KLT runs on the warm stack and leaves its own, untouched, as the
// next cold one.  Without this a breadth-first spawn of a million fibers
// (skynet under FIFO) touched a new page for every fiber that started,
// although at most one leaf ran at a time: 1.2 M page faults and 4.9 GB for
// skynet 1M on 1 KLT, against 0.22 M and 0.9 GB with it (papers/results/stacks.md).
//   I-ST1 g_stash[k] is touched only by KLT k with preemption off, in the
//        switch path: exits (klt_loop's finish_exit) and first runs
//        (install).  No lock, as the slot caches (I-SC1).
//   I-ST2 A stack is in exactly one place: a control block, a stash (warm:
//        a fiber exited on it; cold: a starting fiber gave it up), the
//        shared pools (I-ST4), a spare list, or unused in its arena.  Only arena stacks enter a stash, so
//        they all have the runtime's stack size, and stacks_reset's unmapping
//        of the arenas frees every stashed stack.  Control blocks always keep
//        a stack: the exchanges swap, they never take one away.
//   I-ST3 warm <= kWarm and cold <= kWarm per stash: a first run moves one
//        stack from warm to cold, an exit one from cold to warm, and an exit
//        adds a new arena stack only when its stash and the shared cold pool
//        have no cold one.  A stack a switch saw below its top page is never
//        stashed; it stays with its slot, where the pool trims it (I-SC3).
//   I-ST4 A stash overflows into, and refills from, two pools every KLT
//        shares (warm, cold), kMove stacks at a time under g_pool_lock: an
//        exit that finds warm full spills its oldest kMove warm stacks; a
//        first run that finds warm empty takes the pool's newest kMove; cold
//        spills and refills the same way.  So a first run gets a warm stack
//        whenever any KLT's exits left one: on 2 KLTs one KLT's exits and
//        the other's starts need not balance.  Without the pools a fiber
//        starting on a KLT whose stash was empty ran on its own, never-
//        touched stack, and at a page fault each (tens of microseconds on
//        a VM with two threads in the address space) skynet 1M on 2 KLTs
//        spent most of its time there (papers/results/stacks.md).
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fiber/detail/testing.h"
#include "mapped_array.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"

namespace fiber::detail {

namespace {
constexpr std::uint64_t kCanary = 0xF1BE5CA7C0DEC0DEull;
constexpr std::size_t kArenaStacks = 64;
constexpr std::size_t kMaxArenas = 1u << 16;  // 4M arena stacks; past that, one mapping each

struct arena {
  char* base;
  std::size_t size;
};

// Arenas and the free arena stacks of a size no slot wanted; all guarded by
// g_arena_lock (taken once per kArenaStacks new stacks, and when a slot
// changes its stack size).
spinlock g_arena_lock;
arena g_arenas[kMaxArenas];  // every arena mapped, for stacks_reset
std::size_t g_narenas = 0;
struct carver {
  char* next = nullptr;  // next stack's map_base in the current arena
  std::size_t left = 0;  // stacks left in it
  std::size_t size = 0;  // their stack size
};
carver g_carve[2];  // [guarded]
struct spare_list {
  char** v = nullptr;
  std::size_t n = 0, cap = 0, size = 0;  // size: the stack size of every entry
};
spare_list g_spare[2];  // [guarded]: arena stacks whose slot took another size

std::atomic<long> g_guarded{0};        // guarded mappings alive (in use or cached)
std::atomic<long> g_guarded_max{-1};   // budget; -1 until read
std::atomic<std::uint64_t> g_maps{0}, g_arena_maps{0}, g_carved{0}, g_trims{0}, g_warm_starts{0};

long guarded_budget() noexcept {
  long b = g_guarded_max.load(std::memory_order_relaxed);  // relaxed: idempotent computation
  if (b >= 0) return b;
  long maps = 65530;
  if (FILE* fp = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(fp, "%ld", &maps) != 1) maps = 65530;
    std::fclose(fp);
  }
  b = maps / 2 - 8192;  // the margin: libraries, heaps, sanitizer shadow
  if (const char* e = std::getenv("FIBER_MAX_GUARDED_STACKS")) b = std::atol(e);
  if (b < 0) b = 0;
  g_guarded_max.store(b, std::memory_order_relaxed);
  return b;
}

void count(std::atomic<std::uint64_t>& c) noexcept {
  c.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
}

// Maps a new arena for stacks of `size` bytes; g_arena_lock held.
bool arena_new_locked(carver& c, std::size_t size, bool guarded) noexcept {
  if (g_narenas == kMaxArenas) return false;
  std::size_t pg = fcb::page_size();
  std::size_t total = guarded ? kArenaStacks * (fcb::kGuard + size) : pg + kArenaStacks * size;
  void* p = mmap(nullptr, total, guarded ? PROT_NONE : PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return false;
  count(g_arena_maps);
  g_arenas[g_narenas++] = {static_cast<char*>(p), total};
  c.next = static_cast<char*>(p) + (guarded ? 0 : pg - fcb::kCanaryBytes);
  c.left = kArenaStacks;
  c.size = size;
  return true;
}

// One stack of `size` from the arenas (a spare one first); g_arena_lock held.
char* arena_take_locked(std::size_t size, bool guarded) noexcept {
  spare_list& s = g_spare[guarded];
  if (s.n && s.size == size) return s.v[--s.n];
  carver& c = g_carve[guarded];
  if (!c.left || c.size != size) {
    if (!arena_new_locked(c, size, guarded)) return nullptr;
  }
  count(g_carved);
  char* base = c.next;
  c.next += guarded ? fcb::kGuard + size : size;
  --c.left;
  return base;
}

// Whether a new stack may be guarded: within the budget, and not under the
// test knob that makes every stack unguarded.
bool guarded_allowed() noexcept {
  return !knobs.unguarded_stacks.load(std::memory_order_relaxed) &&  // relaxed: test knob
         g_guarded.load(std::memory_order_relaxed) < guarded_budget();  // relaxed: a budget
}

// A usable stack of `size` from the arenas; its map_base, or nullptr.
char* arena_carve(std::size_t size, bool guarded) noexcept {
  char* base;
  {
    lock_guard<spinlock> g(g_arena_lock);
    base = arena_take_locked(size, guarded);
  }
  if (!base) return nullptr;
  if (guarded && mprotect(base + fcb::kGuard, size, PROT_READ | PROT_WRITE) != 0) {
    // Address space only: the stack stays a guard.  Not returned to a list
    // (it could fail again); the arena is unmapped at shutdown.
    return nullptr;
  }
  return base;
}

bool arena_stack(fcb* f, bool guarded) noexcept {
  char* base = arena_carve(f->want_stack, guarded);
  if (!base) return false;
  f->map_base = base;
  f->map_size = guarded ? fcb::kGuard + f->want_stack : f->want_stack;
  f->guarded = guarded;
  f->in_arena = true;
  return true;
}

bool map_unguarded(std::size_t size, char** base, std::size_t* map_size) noexcept {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return false;
  *base = static_cast<char*>(p);
  *map_size = size;
  return true;
}

// A stack mapped for f alone (sizes other than the default, or the knob).
bool own_stack(fcb* f, bool guarded) noexcept {
  bool ok = guarded ? stack_map(f->want_stack, &f->map_base, &f->map_size, fcb::kGuard)
                    : map_unguarded(f->want_stack, &f->map_base, &f->map_size);
  if (!ok) {
    f->map_base = nullptr;
    return false;
  }
  count(g_maps);
  f->guarded = guarded;
  f->in_arena = false;
  return true;
}

bool arena_size(std::size_t size) noexcept {
  if (knobs.no_stack_cache.load(std::memory_order_relaxed)) return false;  // relaxed: test knob
  runtime* rt = g_rt.load(std::memory_order_relaxed);  // relaxed: set while fibers are created
  return rt && size == rt->cfg.stack_size;
}

// Keeps a spare arena stack for the next slot that wants its size.
void arena_spare(fcb* f) noexcept {
  std::size_t size = f->map_size - (f->guarded ? fcb::kGuard : 0);
  lock_guard<spinlock> g(g_arena_lock);
  spare_list& s = g_spare[f->guarded];
  if (s.size != size) s.n = 0;  // the old size's spares stay in their arenas until shutdown
  s.size = size;
  if (s.n == s.cap) {
    std::size_t cap = s.cap ? 2 * s.cap : 64;
    auto* v = static_cast<char**>(std::realloc(s.v, cap * sizeof(char*)));
    if (!v) return;  // kept in its arena, unused, until shutdown
    s.v = v;
    s.cap = cap;
  }
  s.v[s.n++] = f->map_base;
}

// ---- the per-KLT stash (I-ST1..I-ST3, see the header) ------------------------

// A stack apart from any control block (always an arena stack).
struct stack_desc {
  char* base = nullptr;
  std::size_t map_size = 0;
  std::uintptr_t low_sp = 0;
  bool guarded = false;
};

constexpr unsigned kWarm = 16;         // bounds warm and cold, each (I-ST3)
constexpr unsigned kMove = kWarm / 2;  // stacks one spill or refill moves (I-ST4)

struct alignas(64) stash {
  stack_desc warm[kWarm];  // stacks fibers exited on, newest last
  unsigned nwarm = 0;
  stack_desc cold[kWarm];  // stacks starting fibers gave up, for exiting ones
  unsigned ncold = 0;
};
stash g_stash[FIBER_MAX_KLTS];  // [klt::index]; zero, in .bss: nothing runs at start-up

// The stashes' overflow, shared by every KLT (I-ST4); guarded by g_pool_lock.
struct desc_pool {
  mapped_array<stack_desc> a;     // newest last
  std::atomic<std::size_t> n{0};  // written under the lock; read before it as a hint
};
spinlock g_pool_lock;
desc_pool g_pool[2];  // [0]: warm, [1]: cold

// Moves the kMove oldest of `from` (n of them) to the newest end of pool p,
// so the newest stay with the KLT.  Nothing moves if the pool cannot grow:
// the caller then keeps what it has (the exit keeps its stack, I-ST3).
bool spill(stack_desc* from, unsigned& n, desc_pool& p) noexcept {
  {
    lock_guard<spinlock> g(g_pool_lock);
    const std::size_t n0 = p.n.load(std::memory_order_relaxed);  // relaxed: under the lock
    if (!p.a.reserve(n0 + kMove, n0)) return false;
    std::memcpy(p.a.v + n0, from, kMove * sizeof(stack_desc));
    p.n.store(n0 + kMove, std::memory_order_relaxed);  // relaxed: under the lock
  }
  std::memmove(from, from + kMove, (n - kMove) * sizeof(stack_desc));
  n -= kMove;
  return true;
}

// Moves up to kMove of pool p's newest to the newest end of `to` (empty);
// returns how many.  The relaxed peek skips the lock when the pool is empty.
unsigned refill(stack_desc* to, unsigned& n, desc_pool& p) noexcept {
  if (p.n.load(std::memory_order_relaxed) == 0) return 0;  // relaxed: a hint, rechecked under the lock
  lock_guard<spinlock> g(g_pool_lock);
  const std::size_t have = p.n.load(std::memory_order_relaxed);  // relaxed: under the lock
  const std::size_t k = have < kMove ? have : kMove;
  // Oldest of the k first, so the pool's newest ends up newest here.
  std::memcpy(to + n, p.a.v + have - k, k * sizeof(stack_desc));
  p.n.store(have - k, std::memory_order_relaxed);  // relaxed: under the lock
  n += static_cast<unsigned>(k);
  return static_cast<unsigned>(k);
}


stack_desc desc_of(const fcb* f) noexcept { return {f->map_base, f->map_size, f->low_sp, f->guarded}; }

void give_stack(fcb* f, const stack_desc& d) noexcept {
  f->map_base = d.base;
  f->map_size = d.map_size;
  f->low_sp = d.low_sp;
  f->guarded = d.guarded;
  f->in_arena = true;
}

// One more cold stack for a stash: a new arena stack of `usable` bytes, as
// a create would get it (guarded within the budget).  False: none to be had.
bool cold_new(stash& s, std::size_t usable) noexcept {
  for (const bool guarded : {true, false}) {
    if (guarded && !guarded_allowed()) continue;
    char* base = arena_carve(usable, guarded);
    if (!base) continue;
    if (guarded) g_guarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: a budget
    s.cold[s.ncold++] = {base, guarded ? fcb::kGuard + usable : usable, ~std::uintptr_t{0}, guarded};
    return true;
  }
  return false;
}
}  // namespace

bool stack_map(std::size_t size, char** base, std::size_t* map_size, std::size_t guard) noexcept {
  std::size_t pg = fcb::page_size();
  std::size_t total = ((size + pg - 1) / pg) * pg + guard;
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return false;
  if (mprotect(p, guard, PROT_NONE) != 0) {
    munmap(p, total);
    return false;
  }
  *base = static_cast<char*>(p);
  *map_size = total;
  return true;
}

void stack_unmap(char* base, std::size_t map_size) noexcept {
  if (base) munmap(base, map_size);
}

void stack_release(fcb* f) noexcept {
  if (!f->map_base) return;
  if (f->in_arena) {
    arena_spare(f);
  } else {
    stack_unmap(f->map_base, f->map_size);
    if (f->guarded) g_guarded.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget
  }
  f->map_base = nullptr;
}

bool stack_ensure(fcb* f) noexcept {
  if (f->map_base) {
    if (f->map_size - (f->guarded ? fcb::kGuard : 0) == f->want_stack) return true;  // no count: hot path
    stack_release(f);
  }
  const bool arena = arena_size(f->want_stack);
  bool ok = false;
  f->low_sp = ~std::uintptr_t{0};  // a new stack: no depth seen yet
  if (guarded_allowed()) {
    ok = (arena && arena_stack(f, true)) || own_stack(f, true);  // own: past kMaxArenas
    if (ok) g_guarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: a budget
  }
  if (!ok) ok = (arena && arena_stack(f, false)) || own_stack(f, false);
  return ok;  // an unguarded stack's canary is written when a fiber first runs on it
}

// The pages of a free stack below its top page (see the header); false: none.
static bool trim_range(fcb* f, iovec* out) noexcept {
  if (!f->map_base) return false;
  std::size_t pg = fcb::page_size();
  auto lo = reinterpret_cast<std::uintptr_t>(f->stack_lo());
  auto hi = reinterpret_cast<std::uintptr_t>(f->stack_hi());
  lo = (lo + pg - 1) & ~(pg - 1);  // never the canary's page
  hi = (hi - 1) & ~(pg - 1);       // never the top page
  if (f->low_sp >= hi || hi <= lo) return false;  // never seen below its top page
  f->low_sp = ~std::uintptr_t{0};  // the next fibers' depth, from now on
  *out = {reinterpret_cast<void*>(lo), hi - lo};
  return true;
}

// Trims up to kTrimBatch stacks with one process_madvise(PIDFD_SELF) where
// the kernel has it (Linux 6.13 accepts MADV_DONTNEED for the caller itself,
// 6.15 PIDFD_SELF), else one madvise each.
void stack_trim(fcb* const* fs, std::size_t n) noexcept {
  constexpr int kPidfdSelf = -10000;  // PIDFD_SELF
  static std::atomic<bool> no_batch{false};
  iovec iov[kTrimBatch];
  std::size_t k = 0;
  for (std::size_t i = 0; i < n && k < kTrimBatch; ++i) k += trim_range(fs[i], &iov[k]);
  if (k == 0) return;
  g_trims.fetch_add(k, std::memory_order_relaxed);  // relaxed: statistics
  if (!no_batch.load(std::memory_order_relaxed)) {  // relaxed: a cached capability
    long r = syscall(SYS_process_madvise, kPidfdSelf, iov, k, MADV_DONTNEED, 0u);
    if (r >= 0) return;
    no_batch.store(true, std::memory_order_relaxed);  // relaxed: as above
  }
  for (std::size_t i = 0; i < k; ++i) madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

void stack_stash_exited(unsigned k, fcb* f) noexcept {
  stash& s = g_stash[k];
  if (!f->map_base || !f->in_arena) return;  // f keeps its stack
  // Only stacks no switch saw below their top page: a deep one stays with
  // its slot, where the pool trims it (I-SC3).
  const auto top_page = (reinterpret_cast<std::uintptr_t>(f->stack_hi()) - 1) & ~(fcb::page_size() - 1);
  if (f->low_sp < top_page) return;
  if (s.nwarm == kWarm && !spill(s.warm, s.nwarm, g_pool[0])) return;
  if (!s.ncold && !refill(s.cold, s.ncold, g_pool[1]) &&
      !cold_new(s, f->map_size - (f->guarded ? fcb::kGuard : 0)))
    return;
  s.warm[s.nwarm++] = desc_of(f);
  give_stack(f, s.cold[--s.ncold]);
}

void stack_first_run(unsigned k, fcb* f) noexcept {
  stash& s = g_stash[k];
  if (f->in_arena && !s.nwarm) refill(s.warm, s.nwarm, g_pool[0]);
  if (f->in_arena && s.nwarm &&  // the same size (I-ST2)
      (!s.warm[s.nwarm - 1].guarded || !knobs.unguarded_stacks.load(std::memory_order_relaxed)) &&  // relaxed: test knob
      (s.ncold < kWarm || spill(s.cold, s.ncold, g_pool[1]))) {
    s.cold[s.ncold++] = desc_of(f);
    give_stack(f, s.warm[--s.nwarm]);
    count(g_warm_starts);
    san_fresh_stack(f->stack_lo(), static_cast<std::size_t>(f->stack_hi() - f->stack_lo()));
  }
  if (!f->guarded) std::memcpy(f->map_base, &kCanary, sizeof kCanary);
}

bool stack_canary_ok_slow(const fcb* f) noexcept {
  std::uint64_t v;
  std::memcpy(&v, f->map_base, sizeof v);
  return v == kCanary;
}

void stack_free_own(fcb* f) noexcept {
  if (f->map_base && !f->in_arena) stack_unmap(f->map_base, f->map_size);
  f->map_base = nullptr;
}

// At shutdown, every fiber is gone: unmap the arenas (own mappings are
// unmapped by slots_reset through stack_free_own).
void stacks_reset() noexcept {
  lock_guard<spinlock> g(g_arena_lock);
  for (std::size_t i = 0; i < g_narenas; ++i) munmap(g_arenas[i].base, g_arenas[i].size);
  g_narenas = 0;
  g_carve[0] = g_carve[1] = carver{};
  for (spare_list& s : g_spare) {
    std::free(s.v);
    s = spare_list{};
  }
  for (stash& s : g_stash) s.nwarm = s.ncold = 0;
  {
    lock_guard<spinlock> pg(g_pool_lock);
    for (desc_pool& p : g_pool) {
      p.a.reset();
      p.n.store(0, std::memory_order_relaxed);  // relaxed: quiescent
    }
  }
  g_guarded.store(0, std::memory_order_relaxed);  // relaxed: quiescent
}

}  // namespace fiber::detail

using namespace fiber::detail;

extern "C" void fiber_test_get_stack_counters(fiber_test_stack_counters_t* out) {
  // relaxed: statistics, read by a test after the fibers it counts are joined
  out->own_maps = g_maps.load(std::memory_order_relaxed);
  out->arena_maps = g_arena_maps.load(std::memory_order_relaxed);
  out->carved = g_carved.load(std::memory_order_relaxed);
  out->trims = g_trims.load(std::memory_order_relaxed);
  out->warm_starts = g_warm_starts.load(std::memory_order_relaxed);
}
