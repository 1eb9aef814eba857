#!/usr/bin/env bash
# The queue's benchmarks (BENCHMARKS.md "Job queue and webhooks"): no-op
# jobs per second on SQLite and on two PostgreSQL nodes, and webhook
# acknowledgement and end-to-end latency at 500/s, RUNS rounds one after
# another, each benchmark's JSON line kept in
# bench/results/<time>-queue/runs.ndjson.
#
#   bench/queue.sh           # 3 rounds (about 3 minutes)
#   RUNS=5 bench/queue.sh
#
# Run it on a quiet machine: anything else on the two cores shows up as
# latency. PostgreSQL's server binaries must be installed (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-queue
mkdir -p "$out"
cargo test --release --test integration --no-run --quiet
for i in $(seq "$RUNS"); do
  echo "== round $i" >&2
  cargo test --release --quiet --test integration queue_bench -- \
    --ignored --nocapture --test-threads 1 |
    grep -o '{"[a-z_]*":.*}' | tee -a "$out/runs.ndjson"
done
echo "raw data: $out/runs.ndjson" >&2
