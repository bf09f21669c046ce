// models/spinlock_spec.hpp - the spinlock's specification, for compositional
// full search (models only).
#pragma once

#include "fiber/detail/seam.hpp"
#include "fiber/detail/spinlock.hpp"

// relacy_seam_abs: relacy_seam with the spinlock replaced by its
// specification, for compositional full search.  basic_spinlock<relacy_seam_abs>
// (below) is Relacy's own mutex: one scheduling step per lock or unlock, a
// blocked thread is not scheduled, and a release-acquire edge from each
// unlock to the next lock, which is what basic_spinlock guarantees and all
// its callers rely on (model_spinlock checks the real one with a 2-thread full
// search: mutual exclusion and ordering through a plain variable, I-S1).  Contended spinning is stuttering
// (relaxed loads and yields with no effect), so the abstraction removes
// interleavings without removing behaviours of the callers; what it cannot
// show is a bug *inside* the spinlock, which its own model covers.  Models
// instantiate an algorithm with both seams: the concrete composition gets
// bounded and random search, the abstract one the 2-thread full search that
// the concrete one makes unaffordable (models/README.md, "Compositional
// full search").  Everything else (atomics, parker, clock) is relacy_seam's.
// Relacy's try_lock may fail spuriously (std::mutex may); the real one does
// not, but no core algorithm calls the spinlock's try_lock.
namespace fiber::detail {

struct relacy_seam_abs : relacy_seam {
  using parker_type = basic_parker<relacy_seam_abs>;
  static parker_type& current_parker() {
    void* p = g_relacy.parkers[me()];
    RL_ASSERT(g_relacy.env_live && p != nullptr && "no relacy_env in this test: make one a test member");
    return *static_cast<parker_type*>(p);
  }
};

template <>
class basic_spinlock<relacy_seam_abs> {
 public:
  void lock(src_loc l = src_loc::current()) noexcept {
    relacy_seam::preempt_disable();  // I-S1, as the real lock
    m_.lock(l.info);
    held_ = true;
  }
  bool try_lock(src_loc l = src_loc::current()) noexcept {
    relacy_seam::preempt_disable();
    if (m_.try_lock(l.info)) {
      held_ = true;
      return true;
    }
    relacy_seam::preempt_enable();
    return false;
  }
  void unlock(src_loc l = src_loc::current()) noexcept {
    held_ = false;
    m_.unlock(l.info);
    relacy_seam::preempt_enable();
  }
  // Diagnostics only, as the real one (a relaxed hint); not a scheduling point.
  bool is_locked() const noexcept { return held_; }

 private:
  ::rl::mutex m_;
  bool held_ = false;
};

}  // namespace fiber::detail
