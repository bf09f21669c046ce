// core/src/slots.cpp - fiber control blocks, their caches, and the rules their
// stacks follow (where stacks come from: stacks.cpp).
//
// Control blocks live in chunks that are never freed while the runtime runs
// (type-stable: a late unpark or a stale id lookup touches valid memory,
// I-P4, I-J2).  An id is (sequence << 24) | slot with a process-wide
// sequence, so ids are never reused while the process lives, even across
// fiber_shutdown/fiber_init.
//
// Stacks are mapped when the fiber is created (so fiber_create can report
// EAGAIN) with MAP_NORESERVE, and the first frame is written only when the
// fiber first runs: a fiber that has not started costs address space, not
// memory (a breadth-first spawn tree of a million fibers touches stack pages
// only for those that started).  A PROT_NONE guard sits at the low end; an
// overflow faults there and preempt.cpp's SIGSEGV handler (on the KLT's
// sigaltstack) names the fiber.
//
// Stack clash: the guard is FIBER_STACK_GUARD_SIZE (64 KiB), not one page.
// Code compiled without -fstack-clash-protection moves sp by a whole frame at
// once and touches the frame's lowest bytes first; a frame larger than the
// guard would land in whatever is mapped below - typically the next fiber's
// live stack - with no fault.  64 KiB is glibc's own limit for a stack
// allocation (__MAX_ALLOCA_CUTOFF; larger buffers go to the heap) and 16 times
// the 4 KiB probe interval of -fstack-clash-protection, and it costs address
// space only (one PROT_NONE VMA whatever its size; 1M stacks: 64 GiB of the
// 128 TiB user address space).  Frames larger still are caught by the sp
// checks: a tick or a switch that finds sp in the guard or within a guard's
// width below it reports the overflow (fcb::sp_overflowed, preempt.cpp,
// sched.cpp), and so does a fault there.  The project builds with
// -fstack-clash-protection and fiber.h recommends it to users: with it no
// frame can skip a guard of even one page.
//
// Each guarded stack costs two VMAs, and vm.max_map_count (65530 by default)
// would cap live fibers near 32k.  So guarded stacks are budgeted (half of
// max_map_count less a margin; FIBER_MAX_GUARDED_STACKS overrides) and past
// the budget stacks are unguarded: mapped without mprotect (adjacent anonymous
// mappings merge into few VMAs), never unmapped before shutdown, with a canary
// at the low end checked every time the fiber leaves its KLT.  An overflow of
// an unguarded stack is then reported ("stack overflow (canary)") at the next
// switch instead of at the faulting instruction.
//
// A freed fiber keeps its stack for the next fiber (stacks.cpp: arenas,
// trimming), unless its stack went to its KLT's stash when it exited
// (stacks.cpp, I-ST1..3): a slot without a stack gets one from the stash at
// create.  Free slots are cached per KLT (I-SC1 below), then in a global
// pool, both LIFO so the stack is warm:
//
//   I-SC1 A KLT's slot cache (g_cache[k]) is touched only by KLT k, with
//        preemption off (fiber_create/fiber_join/fiber_detach hold no_preempt;
//        finish_exit runs in the switch path): no lock.  OS threads use the
//        global pool.
//   I-SC2 A cache holds at most kCacheMax slots; past that kBatch of them move
//        to the global pool under g_slot_lock in one critical section, as one
//        chain, and an empty cache takes the pool's newest chain whole (fewer
//        than 2 * kBatch slots; a chain shorter than kBatch takes the next
//        put in) without walking it.  So the lock is taken at most once per
//        kBatch creates or exits of a KLT, and held for a few stores.
//   I-SC3 The global pool keeps at most kResidentFree stacks untrimmed
//        (env FIBER_STACK_CACHE_RESIDENT overrides); a
//        stack that enters it past that is trimmed to its top page
//        (stack_trim) before it is published.
//   I-SC4 A KLT takes id sequence numbers kSeqBlock at a time from g_seq
//        (one fetch_add) and hands them out from its cache, so creates on
//        different KLTs do not bounce g_seq's line (on 2 KLTs that fetch_add
//        was half of slot_alloc's time in skynet); OS threads take one each.
//        Blocks are disjoint, so ids stay unique; they are no longer in
//        creation order across KLTs (fiber.h promises uniqueness only).  The
//        unused rest of a block is dropped at shutdown (slots_reset).
// fiber_shutdown empties the caches (slots_reset) before the chunks go.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "mapped_array.hpp"
#include "runtime.hpp"
#include "sanitizer.hpp"

namespace fiber::detail {

namespace {
constexpr unsigned kSlotBits = 24;
constexpr std::uint64_t kSlotMask = (std::uint64_t{1} << kSlotBits) - 1;
constexpr unsigned kChunkBits = 12;
constexpr unsigned kChunk = 1u << kChunkBits;
constexpr unsigned kMaxChunks = 1u << (kSlotBits - kChunkBits);
constexpr unsigned kCacheMax = 64;
constexpr unsigned kBatch = 32;
constexpr long kResidentFree = 4096;  // default; FIBER_STACK_CACHE_RESIDENT overrides

std::atomic<fcb*> g_chunks[kMaxChunks];  // published with release, never freed until shutdown
spinlock g_slot_lock;
// The global pool: chains of free slots as they came in (a KLT cache's
// overflow, or one slot from an OS thread, appended to the newest chain while
// it is short), so that a refill takes a whole chain without walking it
// (I-SC2): its slots were freed on another KLT, and walking them cost a cache
// miss each under the lock (a quarter of skynet's time on 2 KLTs).
struct chain {
  fcb* first;
  fcb* last;            // last->free_next == nullptr
  std::uint32_t n;      // slots
  std::uint32_t pooled; // of them untrimmed with a stack (I-SC3)
};
// Its room for one chain is made before the first slot exists (new_slot_locked),
// so a put always has a chain to join when the stack cannot grow.
struct chain_stack {
  mapped_array<chain> a;  // newest last
  std::size_t n = 0;
};
chain_stack g_chains;  // guarded by g_slot_lock
std::uint32_t g_nslots = 0;       // guarded by g_slot_lock
std::size_t g_pooled = 0;         // untrimmed stacks in the pool; guarded by g_slot_lock
std::atomic<std::uint64_t> g_seq{1};  // process-wide: ids are never reused
constexpr std::uint64_t kSeqBlock = 1024;

struct alignas(64) slot_cache {
  fcb* head = nullptr;  // free_next links; KLT-private (I-SC1)
  unsigned n = 0;
  std::uint64_t seq_next = 0, seq_end = 0;  // this KLT's id block (I-SC4)
};
slot_cache g_cache[FIBER_MAX_KLTS];  // [klt::index]

// Free stacks the global pool keeps untrimmed (I-SC3).
std::size_t resident_free() noexcept {
  static std::atomic<long> v{-1};
  long r = v.load(std::memory_order_relaxed);  // relaxed: idempotent computation
  if (r >= 0) return static_cast<std::size_t>(r);
  r = kResidentFree;
  if (const char* e = std::getenv("FIBER_STACK_CACHE_RESIDENT")) r = std::atol(e);
  if (r < 0) r = 0;
  v.store(r, std::memory_order_relaxed);
  return static_cast<std::size_t>(r);
}

slot_cache* my_cache() noexcept {
  if (knobs.no_stack_cache.load(std::memory_order_relaxed)) return nullptr;  // relaxed: test knob
  klt* k = this_klt();
  return k ? &g_cache[k->index] : nullptr;
}
}  // namespace

static fcb* new_slot_locked() noexcept {
  std::uint32_t s = g_nslots;
  if (s > kSlotMask || !g_chains.a.reserve(1, 0)) return nullptr;
  std::uint32_t c = s >> kChunkBits;
  fcb* chunk = g_chunks[c].load(std::memory_order_relaxed);  // relaxed: written under g_slot_lock
  if (!chunk) {
    chunk = new (std::nothrow) fcb[kChunk];
    if (!chunk) return nullptr;
    for (unsigned i = 0; i < kChunk; ++i) {
      chunk[i].slot = c * kChunk + i;
      chunk[i].park.owner = &chunk[i];
    }
    g_chunks[c].store(chunk, std::memory_order_release);  // release: pairs with slot_lookup()
  }
  ++g_nslots;
  return &chunk[s & (kChunk - 1)];
}

// Puts chain first..last (n slots, `pooled` of them untrimmed) in the pool;
// g_slot_lock held.  A short newest chain takes it in at its front (so OS
// threads' single slots still refill a cache by the batch, and an OS thread
// takes back the slot it freed last); else it is a new chain, or, if the
// chain stack cannot grow, the front of the newest one.
static void chains_push_locked(fcb* first, fcb* last, std::uint32_t n, std::uint32_t pooled) noexcept {
  g_pooled += pooled;
  chain_stack& cs = g_chains;
  // cs.a.cap >= 1 (new_slot_locked), so a failed growth leaves a newest chain.
  const bool merge = (cs.n && cs.a.v[cs.n - 1].n < kBatch) || !cs.a.reserve(cs.n + 1, cs.n);
  if (merge) {
    chain& top = cs.a.v[cs.n - 1];
    last->free_next = top.first;  // in front: the newest slot is the next one taken (LIFO)
    top.first = first;
    top.n += n;
    top.pooled += pooled;
    return;
  }
  last->free_next = nullptr;
  cs.a.v[cs.n++] = {first, last, n, pooled};
}

// Moves the newest chain of the global pool into cache c (I-SC2): one
// critical section of a few stores, whatever the chain's length.
static void cache_refill(slot_cache* c) noexcept {
  lock_guard<spinlock> g(g_slot_lock);
  if (!g_chains.n) return;
  const chain& top = g_chains.a.v[--g_chains.n];
  g_pooled -= top.pooled;
  top.last->free_next = c->head;
  c->head = top.first;
  c->n += top.n;
}

static fcb* take_slot(slot_cache* c) noexcept {
  if (c) {
    if (!c->head) cache_refill(c);
    if (fcb* f = c->head) {
      c->head = f->free_next;
      --c->n;
      return f;
    }
  }
  lock_guard<spinlock> g(g_slot_lock);
  if (!g_chains.n) return new_slot_locked();
  chain& top = g_chains.a.v[g_chains.n - 1];
  fcb* f = top.first;
  top.first = f->free_next;
  if (f->map_base && !f->trimmed) {
    --top.pooled;
    --g_pooled;
  }
  if (--top.n == 0) --g_chains.n;
  return f;
}

// Publishes the chain first..last (n slots) in the global pool; trims the
// stacks that would take it past resident_free() (I-SC3), outside the lock.
// One critical section when nothing is to be trimmed.
static void pool_put(fcb* first, fcb* last, unsigned n) noexcept {
  std::size_t room;
  {
    lock_guard<spinlock> g(g_slot_lock);
    const std::size_t keep =
        knobs.trim_all.load(std::memory_order_relaxed) ? 0 : resident_free();  // relaxed: test knob
    room = g_pooled < keep ? keep - g_pooled : 0;
    if (room >= n) {
      std::uint32_t pooled = 0;
      for (fcb* f = first;; f = f->free_next) {
        f->trimmed = !f->map_base;  // no stack counts as trimmed
        pooled += f->map_base != nullptr;
        if (f == last) break;
      }
      chains_push_locked(first, last, n, pooled);
      return;
    }
    g_pooled += room;  // reserved; what is not used is given back below
  }
  std::size_t kept = 0, ntrim = 0;
  fcb* trim[kTrimBatch];
  for (fcb* f = first;; f = f->free_next) {
    const bool keep = f->map_base && kept < room;
    f->trimmed = !keep;  // no stack counts as trimmed
    if (keep) ++kept; else if (f->map_base) trim[ntrim++] = f;
    if (ntrim == kTrimBatch) {
      stack_trim(trim, ntrim);
      ntrim = 0;
    }
    if (f == last) break;
  }
  stack_trim(trim, ntrim);
  lock_guard<spinlock> g(g_slot_lock);
  g_pooled -= room;  // the reservation, replaced by what was kept
  chains_push_locked(first, last, n, static_cast<std::uint32_t>(kept));
}

// The next id sequence number for a create on the cache's KLT (I-SC4).
static std::uint64_t next_seq(slot_cache* c) noexcept {
  if (!c) return g_seq.fetch_add(1, std::memory_order_relaxed);  // relaxed: uniqueness only
  if (c->seq_next == c->seq_end) {
    c->seq_next = g_seq.fetch_add(kSeqBlock, std::memory_order_relaxed);  // relaxed: as above
    c->seq_end = c->seq_next + kSeqBlock;
  }
  return c->seq_next++;
}

fcb* slot_alloc(std::size_t stack_size) noexcept {
  std::size_t pg = fcb::page_size();
  slot_cache* c = my_cache();
  fcb* f = take_slot(c);
  if (!f) return nullptr;
  f->want_stack = ((stack_size + pg - 1) / pg) * pg;
  f->sp = nullptr;  // the first frame is written at first run: no page is touched before
  f->trimmed = false;
  if (!stack_ensure(f)) {
    f->free_next = nullptr;
    pool_put(f, f, 1);
    return nullptr;
  }
  f->id = (next_seq(c) << kSlotBits) | f->slot;
  f->diag.id_.store(f->id, std::memory_order_relaxed);  // relaxed: diagnostics (diag.hpp)
  f->diag.kind_.store(wait_kind::none, std::memory_order_relaxed);  // relaxed: as above
  f->tsan_fiber = san_create_fiber();
  return f;
}

void slot_free(fcb* f) noexcept {
  f->diag.move(fstate::exited, fstate::free);
  san_destroy_fiber(f->tsan_fiber);
  f->tsan_fiber = nullptr;
  slot_cache* c = my_cache();
  if (!c) {
    if (knobs.no_stack_cache.load(std::memory_order_relaxed)) stack_release(f);  // relaxed: test knob
    f->free_next = nullptr;
    pool_put(f, f, 1);
    return;
  }
  f->free_next = c->head;
  c->head = f;
  if (++c->n <= kCacheMax) return;
  // Keep the newest (warmest) slots, move the oldest kBatch (I-SC2).
  fcb* keep = c->head;
  for (unsigned i = 1; i < c->n - kBatch; ++i) keep = keep->free_next;
  fcb* first = keep->free_next;
  fcb* last = first;
  while (last->free_next) last = last->free_next;
  keep->free_next = nullptr;
  c->n -= kBatch;
  pool_put(first, last, kBatch);
}

fcb* slot_lookup(fiber_t id) noexcept {
  std::uint64_t s = id & kSlotMask;
  fcb* chunk = g_chunks[s >> kChunkBits].load(std::memory_order_acquire);  // acquire: pairs with new_slot_locked()
  return chunk ? &chunk[s & (kChunk - 1)] : nullptr;
}

void slots_visit(void (*fn)(fcb&, void*), void* ctx) noexcept {
  for (unsigned c = 0; c < kMaxChunks; ++c) {
    fcb* chunk = g_chunks[c].load(std::memory_order_acquire);  // acquire: pairs with new_slot_locked()
    if (!chunk) break;
    for (unsigned i = 0; i < kChunk; ++i) fn(chunk[i], ctx);
  }
}

// At shutdown, no fiber is alive: empty the caches, unmap every stack and
// free the chunks.
void slots_reset() noexcept {
  lock_guard<spinlock> g(g_slot_lock);
  for (slot_cache& c : g_cache) c = slot_cache{};
  for (unsigned c = 0; c < kMaxChunks; ++c) {
    fcb* chunk = g_chunks[c].load(std::memory_order_relaxed);  // relaxed: quiescent
    if (!chunk) break;
    for (unsigned i = 0; i < kChunk; ++i) {
      stack_free_own(&chunk[i]);
      san_destroy_fiber(chunk[i].tsan_fiber);
    }
    delete[] chunk;
    g_chunks[c].store(nullptr, std::memory_order_relaxed);  // relaxed: quiescent
  }
  g_chains.a.reset();
  g_chains.n = 0;
  g_nslots = 0;
  g_pooled = 0;
  stacks_reset();
}

}  // namespace fiber::detail
