#!/usr/bin/env bash
# The benchmark record of pytake: runs the matrix of BENCHMARKS.md with
# `pytake loadtest --spawn` (server and generator on this one machine),
# RUNS times each, and writes every JSON summary plus a Markdown table of
# medians, with the machine, date and commit, under bench/results/.
#
#   bench/run.sh            # the whole matrix, 3 runs each (about 10 minutes)
#   RUNS=1 bench/run.sh fanout-1k ingest   # some rows only
#
# Run it on a quiet machine: anything else on the cores shows up as latency.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}

cargo build --release --quiet
bin=target/release/pytake
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

# name | loadtest arguments
matrix=(
  "fanout-1k|--connections 1000 --rate 100 --duration 20s"
  "fanout-5k|--connections 5000 --ramp 5s --rate 100 --duration 20s"
  "fanout-10k|--connections 10000 --ramp 10s --rate 100 --duration 20s"
  "fanout-1k-1000eps|--connections 1000 --rate 1000 --duration 20s"
  "rooms-100|--connections 1000 --rooms 100 --rate 1000 --duration 20s"
  "idle-10k|--connections 10000 --ramp 5s --rate 0 --duration 1s"
  "idle-15k|--connections 15000 --ramp 8s --rate 0 --duration 1s"
  "ingest|--connections 0 --rate 100000 --duration 20s"
)

selected=("$@")
for row in "${matrix[@]}"; do
  name=${row%%|*}
  args=${row#*|}
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " =~ " ${name} " ]]; then
    continue
  fi
  for i in $(seq "$RUNS"); do
    echo "== $name run $i: pytake loadtest --spawn $args" >&2
    # shellcheck disable=SC2086
    "$bin" loadtest --output json --spawn $args > "$out/$name.$i.json" || echo "   (exit $?)" >&2
  done
done

python3 bench/summarize.py "$out" | tee "$out/summary.md"
