#!/usr/bin/env bash
# bench/fairness.sh - fair shares of CPU-bound fibers across KLTs: runs
# bench/scaling.cpp's `fair` workload for each fiber count with each setting
# of migrate_preempted (2 never: preempted fibers pinned; 0 scan: the default;
# 1 always), REPS times each,
# and appends one JSON object a line to OUT (default papers/results/fairness.jsonl).
# papers/results/fairness.md is made from such a file (medians per row).
#
#   bench/fairness.sh --bin build/dev/bench/scaling [--klts 2] [--fibers "8 5 3"]
#                     [--reps 5] [--seconds 3] [--out FILE] [--label NAME]
#
# --label tags the records (e.g. the revision under test when comparing two
# builds).  Builds nothing.
set -euo pipefail
bin="" klts=2 fibers="8 5 3" reps=5 seconds=3 out="papers/results/fairness.jsonl" label=""
usage() { sed -n '2,12p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --klts) klts=$2; shift 2 ;;
    --fibers) fibers=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "fairness.sh: --bin must name the built scaling binary" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
when=$(date -u +%FT%TZ) host=$(uname -n)
tag() { sed "s/}\$/,\"rep\":$1,\"label\":\"$label\",\"host\":\"$host\",\"date\":\"$when\"}/"; }
for r in $(seq 1 "$reps"); do
  for f in $fibers; do
    for m in 2 0 1; do
      echo "fairness: rep $r/$reps fibers $f migrate $m" >&2
      "$bin" --workload fair --klts "$klts" --fibers "$f" --seconds "$seconds" --migrate "$m" | tag "$r" >> "$out"
    done
  done
done
