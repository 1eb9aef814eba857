#!/usr/bin/env bash
# The events export at scale: a release `pytake serve` on SQLite is filled
# with EVENTS stored events (the loadtest's ingest, batched POSTs), then
# `pytake export events` streams them all to a file, as NDJSON and as CSV.
# Measured: rows per second (the export's wall time), the CLI's peak RSS
# (/usr/bin/time -v) and the server's RSS sampled every 100 ms during each
# export (it must stay flat: the server holds one page of 1,000 events).
# Everything goes to bench/results/<UTC time>-export/.
#
#   bench/export.sh
#   EVENTS=200000 CARGO="flock /tmp/cargo.lock cargo" bench/export.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
${CARGO:-cargo} build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/pytake")
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-export
mkdir -p "$out"
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" > "$work/serve.out" 2> "$out/serve.log" &
server_pid=$!
for _ in $(seq 100); do
  url=$(sed -n 's/^listening on //p' "$work/serve.out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start" >&2; exit 1; }
token=$("$bin" --data-dir "$work/data" token create --role admin --ttl 2h)
head() { curl -s "$url/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_event_id"])'; }

# Fill: the loadtest's ingest, until EVENTS are stored.
started=$(date +%s)
while [ "$(head)" -lt "$EVENTS" ]; do
  left=$(( EVENTS - $(head) ))
  # Offered below what the server takes, so what is offered is stored.
  secs=$(( left / 40000 + 1 ))
  "$bin" loadtest --server "$url" --token "$token" --connections 0 --rate 40000 \
    --duration "${secs}s" --output json > "$work/fill.json" 2>> "$out/fill.log" || true
done
stored=$(head)
echo "stored $stored events in $(( $(date +%s) - started )) s" | tee "$out/fill.txt"

# Samples the server's RSS (KiB) every 100 ms while $1 runs.
export_run() {
  local name=$1; shift
  : > "$out/$name.server-rss.txt"
  ( while kill -0 "$server_pid" 2>/dev/null; do
      awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" >> "$out/$name.server-rss.txt"
      sleep 0.1
    done ) &
  local sampler=$!
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$bin" "$@" --server "$url" --token "$token" 2> "$out/$name.time.txt"
  t1=$(date +%s.%N)
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  python3 - "$name" "$t0" "$t1" "$out" "$work" <<'EOF'
import re, sys
name, t0, t1, out, work = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
path = f"{work}/{name}.out"
rows = sum(1 for _ in open(path, "rb"))
if name.endswith("csv"):
    rows -= 1  # the header
size = __import__("os").path.getsize(path)
rss = [int(x) for x in open(f"{out}/{name}.server-rss.txt") if x.strip()]
cli = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{out}/{name}.time.txt").read()).group(1))
secs = t1 - t0
line = (f"| {name} | {rows:,} | {size / 1e6:,.1f} MB | {secs:.1f} s | {rows / secs:,.0f} | "
        f"{min(rss) / 1024:.1f} / {max(rss) / 1024:.1f} MiB | {cli / 1024:.1f} MiB |")
print(line)
open(f"{out}/summary.md", "a").write(line + "\n")
EOF
}

{
  echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores, $stored events"
  echo
  echo "| export | rows | size | time | rows/s | server RSS min / max | CLI peak RSS |"
  echo "|---|---|---|---|---|---|---|"
} > "$out/summary.md"
export_run ndjson export events --format ndjson -o "$work/ndjson.out"
export_run csv export events --format csv -o "$work/csv.out"
cat "$out/summary.md"
