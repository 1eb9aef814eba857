#!/usr/bin/env bash
# pytake beside the thinnest server the generator can drive (bench/thin-server:
# fan-out only; no auth check, store, filters or limits), alternating runs of
# the same load on this machine. The thin server's figures are the floor that
# the machine, tokio, tungstenite and the generator leave; the gap above it is
# pytake's own cost.
#
#   bench/thin.sh                      # fanout-1k, 3 runs each
#   RUNS=5 bench/thin.sh --connections 5000 --ramp 5s --rate 100 --duration 20s
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--connections 1000 --rate 100 --duration 20s)

cargo build --release --quiet
CARGO_TARGET_DIR=target cargo build --release --quiet --manifest-path bench/thin-server/Cargo.toml
bin=target/release/pytake
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-thin
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"

for i in $(seq "$RUNS"); do
  echo "== pytake run $i: pytake loadtest --spawn ${args[*]}" >&2
  "$bin" loadtest --output json --spawn "${args[@]}" > "$out/pytake.$i.json" || echo "   (exit $?)" >&2

  echo "== thin run $i" >&2
  coproc THIN { exec target/release/thin-server 127.0.0.1:0; }
  read -r line <&"${THIN[0]}"
  url=${line#listening on }
  "$bin" loadtest --output json --server "$url" --token thin "${args[@]}" > "$out/thin.$i.json" || echo "   (exit $?)" >&2
  kill "$THIN_PID"; wait "$THIN_PID" 2>/dev/null || true
done

python3 bench/summarize.py "$out" | tee "$out/summary.md"
