#!/usr/bin/env bash
# bench/trace_cost.sh - what the scheduling trace costs when it is on: the
# same benchmark binaries run with tracing off and with FIBER_TRACE set,
# interleaved (off, on, off, on, ...) so that this machine's drift hits both
# alike; prints each pair and the median on/off ratio per benchmark (issue 16's
# target: under 3% on skynet and ping-pong).
#
#   bench/trace_cost.sh --bin-dir build/main/bench [--reps 5] [--min-time 0.3]
#
# usage: bench/trace_cost.sh --bin-dir DIR [--reps N] [--min-time S]
# Builds nothing; the trace files go to a temporary directory, removed after.
set -euo pipefail
dir="" reps=5 mt=0.3
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) dir=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --min-time) mt=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "trace_cost.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# name|binary|filter (one benchmark each; Google Benchmark's real time column)
benches="pingpong|bench_sync|^pingpong/fiber/
skynet10k_1klt|bench_skynet|^skynet10k/fiber_1klt/
skynet10k_allklts|bench_skynet|^skynet10k/fiber_allklts/"
one() {  # binary filter -> real time in the benchmark's unit
  "$dir/$1" --benchmark_filter="$2" --benchmark_min_time="$mt" 2>/dev/null |
    awk -v f="${2#^}" 'index($1, f) == 1 {print $2; exit}'
}
echo "| benchmark | pair | off | on | on/off |"
echo "|---|---|---|---|---|"
while IFS='|' read -r name bin filt; do
  ratios=""
  for i in $(seq 1 "$reps"); do
    off=$(unset FIBER_TRACE; one "$bin" "$filt")
    on=$(FIBER_TRACE="$tmp/t.trace" one "$bin" "$filt"); rm -f "$tmp"/t.trace*
    r=$(awk -v a="$off" -v b="$on" 'BEGIN {printf "%.2f", b / a}')
    ratios="$ratios $r"
    echo "| $name | $i | $off | $on | $r |"
  done
  med=$(echo $ratios | tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "| **$name** | median | | | **$med** |"
done <<< "$benches"
