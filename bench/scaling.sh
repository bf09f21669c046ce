#!/usr/bin/env bash
# bench/scaling.sh - sweep KLT counts: fiber's skynet, CPU-bound speed-up and
# fairness (bench/scaling.cpp) beside Go's skynet at the same GOMAXPROCS, in one
# run on one machine.  One JSON object a line goes to OUT (default
# papers/results/scaling.jsonl); progress goes to stderr.
#
#   bench/scaling.sh --bin build/bench/bench/scaling [--go build/bench/skynet-go]
#                    [--klts "1 2 4 8 16"] [--reps 3] [--out FILE] [--size 1000000]
#
# Builds nothing.  The Go peer is a binary built from bench/go/skynet.go
# (go build -o skynet-go bench/go/skynet.go); without --go it is skipped.
set -euo pipefail
bin="" go="" klts="1 2" reps=3 out="papers/results/scaling.jsonl" size=1000000
usage() { sed -n '2,12p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --go) go=$2; shift 2 ;;
    --klts) klts=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "scaling.sh: --bin must name the built scaling binary" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
host=$(uname -n) cpus=$(nproc) when=$(date -u +%FT%TZ)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
meta() { sed "s/}\$/,\"rep\":$1,\"host\":\"$host\",\"cpus\":$cpus,\"date\":\"$when\",\"rev\":\"$rev\"}/"; }
total=$(( $(wc -w <<<"$klts") * reps )) step=0 start=$(date +%s)
for r in $(seq 1 "$reps"); do
  for k in $klts; do
    step=$((step + 1))
    el=$(( $(date +%s) - start ))
    eta=$(( step > 1 ? el * (total - step + 1) / (step - 1) : 0 ))
    echo "scaling: rep $r/$reps klts $k ($step/$total, ${el}s elapsed, ETA ${eta}s)" >&2
    "$bin" --workload skynet --klts "$k" --size "$size" | meta "$r" >> "$out"
    "$bin" --workload cpu --klts "$k" --fibers 64 | meta "$r" >> "$out"
    "$bin" --workload fair --klts "$k" --fibers $((k * 4)) --seconds 2 | meta "$r" >> "$out"
    if [ -n "$go" ]; then
      # Go's Google-Benchmark-shaped JSON, on one line (no python needed on the run machine).
      GOMAXPROCS=$k "$go" -size "$size" -reps 1 -name "skynet/go_p$k" | tr -d '\n' |
        sed "s/}\$/,\"impl\":\"go\",\"workload\":\"skynet\",\"klts\":$k}\n/" | meta "$r" >> "$out"
    fi
  done
done
echo "scaling: done, $(wc -l < "$out") records in $out" >&2
