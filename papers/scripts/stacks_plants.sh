#!/bin/bash
# papers/scripts/stacks_plants.sh - the planted bugs of papers/results/stacks.md ("Tests"):
# each is one textual replace in core/src/stacks.cpp of a copy of HEAD; the stacks unit tests
# are built and run, and the failing ones printed.  Run from the repository root; about 3 min
# per plant after the first build.
set -u
W=/tmp/stacks_plant; rm -rf $W; mkdir -p $W; git archive HEAD | tar -x -C $W
cd $W
export CCACHE_BASEDIR=/tmp
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIBER_BUILD_BENCH=OFF -DFIBER_BUILD_MODELS=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache > /dev/null
plant() {  # name file old new
  cp $2 $2.orig
  python3 - "$2" "$3" "$4" <<'PY'
import sys
p,old,new=sys.argv[1:4]; s=open(p).read()
assert old in s, "pattern not found: "+old
open(p,'w').write(s.replace(old,new,1))
PY
  cmake --build build -j1 --target fiber_unit_tests > /tmp/plant_build.log 2>&1 || { echo "$1: BUILD FAILED"; tail -5 /tmp/plant_build.log; }
  echo "== $1"; (cd build/core/tests && timeout 300 ./fiber_unit_tests --gtest_filter='stacks*' 2>&1 | grep -E "FAILED  \]|PASSED  \]" | sort -u)
  mv $2.orig $2
}
plant no_reuse core/src/stacks.cpp 'if (f->map_size - (f->guarded ? fcb::kGuard : 0) == f->want_stack) return true;' 'if (false) return true;'
plant no_guard_in_arena core/src/stacks.cpp 'mprotect(base + fcb::kGuard, f->want_stack, PROT_READ | PROT_WRITE)' 'mprotect(base, fcb::kGuard + f->want_stack, PROT_READ | PROT_WRITE)'
plant no_canary_check core/src/stacks.cpp 'return v == kCanary;' 'return v == v;'
plant canary_not_shared core/src/stacks.cpp 'c.next = static_cast<char*>(p) + (guarded ? 0 : pg - fcb::kCanaryBytes);' 'c.next = static_cast<char*>(p) + (guarded ? 0 : pg);'
plant trim_ignores_depth core/src/stacks.cpp 'if (f->low_sp >= hi || hi <= lo) return false;' 'if (hi <= lo) return false;'
plant no_trim core/src/stacks.cpp 'if (k == 0) return;' 'if (k == 0 || true) return;'
plant no_spare core/src/stacks.cpp '  s.v[s.n++] = f->map_base;' '  return;'
plant no_arena_unmap core/src/stacks.cpp 'munmap(g_arenas[i].base, g_arenas[i].size);' '(void)0;'
echo PLANT_END
