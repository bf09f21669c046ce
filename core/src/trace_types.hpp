// core/src/trace_types.hpp - the scheduling trace's per-fiber and per-KLT
// state, as members of fcb and klt (runtime.hpp).  The hooks and the writer
// are in trace.hpp / trace.cpp; the file format in trace.cpp's header comment.
#pragma once

#include <cstdint>

namespace fiber::detail {

struct trace_klt;  // a KLT's event buffers (trace.cpp); nullptr in klt::trace when off

// Per fiber.  seq numbers the events that record a step of the fiber (create,
// run, leave, wake, exit, join) in the order the fiber's owners recorded them.
// It is a plain counter: whoever records a step owns the fiber at that moment
// (runtime.hpp ownership rules; the owner hand-offs - queue push/pop, park
// commit/unpark, join - are release/acquire pairs), so two parties never write
// it at once in a correct run.  A duplicated or skipped seq in a trace is
// therefore itself a finding (tools/trace_check.py).
struct trace_fiber {
  std::uint32_t seq = 0;
};

}  // namespace fiber::detail
