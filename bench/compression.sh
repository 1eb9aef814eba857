#!/usr/bin/env bash
# What permessage-deflate saves on the wire and costs the server: `pytake
# serve --demo`, N WebSocket connections to the tenants' rooms
# (/ws/tenant/{id}, spread over the three demo tenants) for SECONDS, once
# offering permessage-deflate and once not, each on a fresh server. Bytes
# come from the server's own counter (`pytake_ws_sent_bytes_total` on
# /metrics, framing included), CPU from /proc/PID/stat (utime + stime)
# over the measured window.
#
#   bench/compression.sh                 # N=200 SECONDS=60
#   N=500 SECONDS=30 bench/compression.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
SECONDS_=${SECONDS:-60}
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/pytake")
tick=$(getconf CLK_TCK)

metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
  local mode=$1 data log pid url token b0 b1 c0 c1 frames
  data=$(mktemp -d)
  log=$data/serve.out
  "$bin" serve --demo --listen 127.0.0.1:0 --data-dir "$data" >"$log" 2>"$data/serve.err" &
  pid=$!
  for _ in $(seq 100); do grep -q '^listening on ' "$log" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$log" | head -n 1)
  token=$("$bin" token create --data-dir "$data" --role admin --ttl 1h)
  b0=$(metric "$url" pytake_ws_sent_bytes_total); c0=$(cpu "$pid")
  frames=$(python3 bench/ws_drain.py "$url" "$token" "$N" "$SECONDS_" $([ "$mode" = deflate ] && echo --deflate))
  b1=$(metric "$url" pytake_ws_sent_bytes_total); c1=$(cpu "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
  echo "| $mode | $N | $SECONDS_ | $((${b1%.*} - ${b0%.*})) | $(awk -v a="$c0" -v b="$c1" -v t="$tick" 'BEGIN {printf "%.2f", (b - a) / t}') | $frames |"
}

echo "| mode | connections | seconds | bytes sent | server CPU s | client saw |"
echo "|---|---|---|---|---|---|"
run plain
run deflate
