#!/usr/bin/env bash
# What the metrics cost intake: the loadtest's ingest row (no connections,
# 100,000 events/s offered in batched POSTs, 20 s, each acknowledged after
# its group commit) against a build without the metrics (BASE, a commit
# before them) and the build under test, in turns, RUNS times each, each
# on a fresh data dir (`--spawn`). The metrics' share is the rollup rows
# written in every append's transaction plus the aggregator following the
# stream; both run on the same two cores as the load generator.
#
#   bench/metrics-cost.sh
#   BASE=5a8ff38 RUNS=5 bench/metrics-cost.sh
#   BASE_BIN=/path/to/old/pytake bench/metrics-cost.sh
#
# Results (every JSON summary and summary.md) go to
# bench/results/<UTC time>-metrics-cost/.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-5a8ff38}
RUNS=${RUNS:-3}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-metrics-cost
mkdir -p "$out"

${CARGO:-cargo} build --release --quiet
new=$(realpath "${CARGO_TARGET_DIR:-target}/release/pytake")
# BASE_BIN: a release binary of BASE already built (skips the build).
old=${BASE_BIN:-}
if [ -z "$old" ]; then
  base_tree=$(mktemp -d)
  trap 'git worktree remove --force "$base_tree" >/dev/null 2>&1 || rm -rf "$base_tree"' EXIT
  git worktree add --force --detach "$base_tree" "$BASE" >/dev/null
  (cd "$base_tree" && ${CARGO:-cargo} build --release --quiet)
  old=$(realpath "$base_tree/target/release/pytake")
fi

args=(--spawn --connections 0 --rate 100000 --duration 20s --output json)
for i in $(seq "$RUNS"); do
  for which in base new; do
    bin=$old; [ "$which" = new ] && bin=$new
    echo "== $which run $i" >&2
    "$bin" loadtest "${args[@]}" > "$out/$which-$i.json"
  done
done

python3 - "$out" "$RUNS" "$BASE" "$(git rev-parse --short HEAD)" <<'EOF'
import json, statistics, sys
out, runs, base, head = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rate = {w: [json.load(open(f"{out}/{w}-{i}.json"))["events"]["accepted_per_s"] for i in range(1, runs + 1)]
        for w in ("base", "new")}
med = {w: statistics.median(v) for w, v in rate.items()}
lines = [
    f"ingest, {runs} runs each in turns; base `{base}` (no metrics), new `{head}`",
    "",
    "| build | accepted events/s (runs) | median |",
    "|---|---|---|",
]
for w in ("base", "new"):
    lines.append(f"| {w} | {', '.join(f'{r:,.0f}' for r in rate[w])} | {med[w]:,.0f} |")
lines.append("")
lines.append(f"cost of the metrics: {(1 - med['new'] / med['base']) * 100:.1f} % of ingest throughput")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
