// core/src/slots.cpp - fiber control blocks and their stacks.
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
// A freed fiber keeps its stack for the next fiber of the same size (free
// slots are reused LIFO, so the stack is warm); at most kMaxPooled idle
// guarded stacks are kept, the rest are unmapped.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime.hpp"
#include "sanitizer.hpp"

namespace fiber::detail {

namespace {
constexpr unsigned kSlotBits = 24;
constexpr std::uint64_t kSlotMask = (std::uint64_t{1} << kSlotBits) - 1;
constexpr unsigned kChunkBits = 12;
constexpr unsigned kChunk = 1u << kChunkBits;
constexpr unsigned kMaxChunks = 1u << (kSlotBits - kChunkBits);
constexpr std::size_t kMaxPooled = 16384;
constexpr std::uint64_t kCanary = 0xF1BE5CA7C0DEC0DEull;

std::atomic<fcb*> g_chunks[kMaxChunks];  // published with release, never freed until shutdown
spinlock g_slot_lock;
fcb* g_free = nullptr;            // guarded by g_slot_lock
std::uint32_t g_nslots = 0;       // guarded by g_slot_lock
std::size_t g_pooled = 0;         // free slots holding a stack; guarded by g_slot_lock
std::atomic<std::uint64_t> g_seq{1};  // process-wide: ids are never reused
std::atomic<long> g_guarded{0};        // guarded mappings alive (in use or pooled)
std::atomic<long> g_guarded_max{-1};   // budget; -1 until read

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

static fcb* new_slot_locked() noexcept {
  std::uint32_t s = g_nslots;
  if (s > kSlotMask) return nullptr;
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

fcb* slot_alloc(std::size_t stack_size) noexcept {
  std::size_t pg = fcb::page_size();
  fcb* f;
  {
    lock_guard<spinlock> g(g_slot_lock);
    f = g_free;
    if (f) {
      g_free = f->free_next;
      if (f->map_base && f->guarded) --g_pooled;
    } else {
      f = new_slot_locked();
      if (!f) return nullptr;
    }
  }
  f->want_stack = ((stack_size + pg - 1) / pg) * pg;
  f->sp = nullptr;  // the first frame is written at first run: no page is touched before
  if (!stack_ensure(f)) {
    lock_guard<spinlock> g(g_slot_lock);
    f->free_next = g_free;
    g_free = f;
    return nullptr;
  }
  f->id = (g_seq.fetch_add(1, std::memory_order_relaxed) << kSlotBits) | f->slot;  // relaxed: uniqueness only
  f->diag.id_.store(f->id, std::memory_order_relaxed);  // relaxed: diagnostics (diag.hpp)
  f->diag.kind_.store(wait_kind::none, std::memory_order_relaxed);  // relaxed: as above
  f->tsan_fiber = san_create_fiber();
  return f;
}

static bool map_unguarded(std::size_t size, char** base, std::size_t* map_size) noexcept {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return false;
  *base = static_cast<char*>(p);
  *map_size = size;
  return true;
}

bool stack_ensure(fcb* f) noexcept {
  if (f->map_base) {
    std::size_t have = f->map_size - (f->guarded ? fcb::kGuard : 0);
    if (have == f->want_stack) return true;
    if (f->guarded) {  // unguarded mappings stay until shutdown (unmapping could split a VMA)
      stack_unmap(f->map_base, f->map_size);
      g_guarded.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget, not a synchronisation
    }
    f->map_base = nullptr;
  }
  bool ok = false;
  if (g_guarded.load(std::memory_order_relaxed) < guarded_budget()) {  // relaxed: a budget
    ok = stack_map(f->want_stack, &f->map_base, &f->map_size, fcb::kGuard);
    if (ok) g_guarded.fetch_add(1, std::memory_order_relaxed);
    f->guarded = true;
  }
  if (!ok) {
    ok = map_unguarded(f->want_stack, &f->map_base, &f->map_size);
    f->guarded = false;
    if (ok) std::memcpy(f->map_base, &kCanary, sizeof kCanary);
  }
  if (!ok) f->map_base = nullptr;
  return ok;
}

bool stack_canary_ok_slow(const fcb* f) noexcept {
  std::uint64_t v;
  std::memcpy(&v, f->map_base, sizeof v);
  return v == kCanary;
}

void slot_free(fcb* f) noexcept {
  f->diag.move(fstate::exited, fstate::free);
  san_destroy_fiber(f->tsan_fiber);
  f->tsan_fiber = nullptr;
  char* unmap_base = nullptr;
  std::size_t unmap_size = 0;
  {
    lock_guard<spinlock> g(g_slot_lock);
    if (f->map_base && f->guarded) {
      if (g_pooled >= kMaxPooled) {  // keep the slot, drop its stack
        unmap_base = f->map_base;
        unmap_size = f->map_size;
        f->map_base = nullptr;
        g_guarded.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget
      } else {
        ++g_pooled;
      }
    }
    f->free_next = g_free;
    g_free = f;
  }
  stack_unmap(unmap_base, unmap_size);
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

// At shutdown, no fiber is alive: unmap every stack and free the chunks.
void slots_reset() noexcept {
  lock_guard<spinlock> g(g_slot_lock);
  for (unsigned c = 0; c < kMaxChunks; ++c) {
    fcb* chunk = g_chunks[c].load(std::memory_order_relaxed);  // relaxed: quiescent
    if (!chunk) break;
    for (unsigned i = 0; i < kChunk; ++i) {
      stack_unmap(chunk[i].map_base, chunk[i].map_size);
      san_destroy_fiber(chunk[i].tsan_fiber);
    }
    delete[] chunk;
    g_chunks[c].store(nullptr, std::memory_order_relaxed);  // relaxed: quiescent
  }
  g_free = nullptr;
  g_nslots = 0;
  g_pooled = 0;
  g_guarded.store(0, std::memory_order_relaxed);  // relaxed: quiescent
}

}  // namespace fiber::detail
