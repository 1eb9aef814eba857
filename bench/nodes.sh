#!/usr/bin/env bash
# pytake on several nodes, measured on this one machine: a throwaway
# PostgreSQL 15 and redis-server, release `pytake serve` nodes on them, and
# `pytake loadtest` (each run against a fresh database):
#
#   a  one node, PostgreSQL + Redis
#   b  two nodes on the same PostgreSQL and Redis, the load split over both
#      with --node (subscribers and publishers taken in turn)
#   c  one node, SQLite + the in-process bus, for reference
#   d  the bytes a node reads from Redis when none of its connections
#      subscribe to the busy tenant: node B holds subscribers of tenant
#      `quiet` only, node A takes a flood of tenant `loadtest-0` (the busy
#      one, with its subscribers on A); B's and A's Redis sockets'
#      bytes_received (ss -tinpH) before and after
#
# a to c: 1,000 connections, 100 events/s for 30 s, 4 rooms x 2 tenants,
# thresholds loss==0 and duplicates==0. Everything (JSON summaries, ss
# snapshots, versions, summary.md) goes to bench/results/<UTC time>-nodes/.
# About 3 minutes after the build; everything it started is stopped and its
# temp dir removed on exit, Ctrl-C included.
#
#   bench/nodes.sh
#   CARGO="flock /tmp/cargo.lock cargo" CARGO_TARGET_DIR=/shared/target bench/nodes.sh
#
# Needs initdb and pg_ctl (pg_config --bindir, /usr/lib/postgresql/15/bin or
# PATH), createdb, redis-server, redis-cli, ss, curl, python3. As root,
# PostgreSQL runs as nobody (setpriv), since it refuses root.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30s}
FLOOD_RATE=${FLOOD_RATE:-1000}
FLOOD_DURATION=${FLOOD_DURATION:-15s}
QUIET_SUBSCRIBERS=${QUIET_SUBSCRIBERS:-10}
load=(--connections 1000 --rate 100 --duration "$DURATION" --rooms 4 --tenants 2
      --threshold 'loss==0' --threshold 'duplicates==0')

${CARGO:-cargo} build --release --quiet
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/pytake")
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-nodes
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/pytake-bench-nodes.XXXXXX")
# PostgreSQL's user must reach its dir inside.
chmod 711 "$work"

pids=()          # servers and subscribers to stop
pg_running=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_running" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "== $*" >&2; }
die() { echo "bench/nodes.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: as root, its tools run as nobody.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$work/pg" && setpriv --reuid=65534 --regid=65534 --clear-groups "$@")
  else
    "$@"
  fi
}

# ------------------------------------------------------------- PostgreSQL
pg_bin=$(pg_config --bindir 2>/dev/null || true)
for dir in "$pg_bin" /usr/lib/postgresql/15/bin "$(dirname "$(realpath "$(command -v initdb || echo /nonexistent)")")"; do
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then pg_bin=$dir; break; fi
done
[ -x "$pg_bin/initdb" ] || die "no initdb and pg_ctl (pg_config --bindir, /usr/lib/postgresql/15/bin, PATH)"
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$work/pg"
say "PostgreSQL: $("$pg_bin/postgres" --version)"
as_pg "$pg_bin/initdb" -D "$work/pg/data" -A trust -U pytake -E UTF8 --no-locale >"$work/pg/initdb.log" 2>&1 \
  || die "initdb failed: $(cat "$work/pg/initdb.log")"
pg_port=$(free_port)
# Durable like the SQLite reference (fsync and synchronous_commit on, the
# defaults); room for two nodes' pools.
as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w -t 30 \
  -o "-k $work/pg -c listen_addresses=127.0.0.1 -p $pg_port -c max_connections=200" start >/dev/null \
  || die "pg_ctl start failed: $(cat "$work/pg/postgres.log")"
pg_running=1

# A fresh database: its URL.
database() {
  createdb -h 127.0.0.1 -p "$pg_port" -U pytake "$1" >/dev/null
  echo "postgres://pytake@127.0.0.1:$pg_port/$1"
}

# ------------------------------------------------------------------ Redis
redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$work/redis" >"$work/redis/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || die "redis-server did not start: $(cat "$work/redis/redis.log")"
say "Redis: $(redis-server --version)"
bus=redis://127.0.0.1:$redis_port

# ------------------------------------------------------------------ nodes
# One secret for every node and for the generator's token.
PYTAKE_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PYTAKE_SECRET

# start_node NAME [serve flags]: a release node on a free port; sets
# NODE_URL and NODE_PID.
start_node() {
  local name=$1; shift
  mkdir -p "$work/$name"
  chmod 700 "$work/$name"
  "$bin" --data-dir "$work/$name" serve --listen 127.0.0.1:0 "$@" \
    >"$work/$name.out" 2>"$work/$name.log" &
  NODE_PID=$!
  pids+=("$NODE_PID")
  for _ in $(seq 300); do
    if grep -q '^listening on ' "$work/$name.out"; then
      NODE_URL=$(sed -n 's/^listening on //p' "$work/$name.out" | head -n 1)
      return
    fi
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  die "node $name did not start; its log:
$(tail -n 20 "$work/$name.log")"
}

stop() {
  kill "$@" 2>/dev/null || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# loadtest NAME [loadtest flags]: a JSON summary in $out/NAME.json.
loadtest() {
  local name=$1; shift
  say "$name: pytake loadtest $*"
  local status=0
  "$bin" loadtest --output json "$@" >"$out/$name.json" || status=$?
  case $status in
    0) ;;
    130 | 143) exit "$status" ;;  # interrupted: stop here (and clean up)
    *) echo "   (exit $status)" >&2 ;;
  esac
}

# Runs are independent: nothing left in Redis (presence, quotas) from the last.
fresh_redis() { redis-cli -p "$redis_port" flushall >/dev/null; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo -dirty)"
  echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(uname -sr)"
  echo "postgres: $("$pg_bin/postgres" --version)"
  echo "redis: $(redis-server --version)"
  echo "load: ${load[*]}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/versions.txt"

# a: one node on PostgreSQL and Redis.
fresh_redis
start_node a --store "$(database bench_a)" --bus "$bus"
loadtest pg-redis-1-node --server "$NODE_URL" "${load[@]}"
stop "$NODE_PID"

# b: two nodes on one database and one Redis.
fresh_redis
store=$(database bench_b)
start_node b1 --store "$store" --bus "$bus"; url1=$NODE_URL; pid1=$NODE_PID
start_node b2 --store "$store" --bus "$bus"; url2=$NODE_URL; pid2=$NODE_PID
loadtest pg-redis-2-nodes --server "$url1" --node "$url2" "${load[@]}"
stop "$pid1" "$pid2"

# c: one node, SQLite and the in-process bus.
start_node c
loadtest sqlite-memory-1-node --server "$NODE_URL" "${load[@]}"
stop "$NODE_PID"

# d: what node B reads from Redis while node A takes a tenant B has no
# subscriber of.
fresh_redis
store=$(database bench_d)
start_node da --store "$store" --bus "$bus"; url_a=$NODE_URL; pid_a=$NODE_PID
start_node db --store "$store" --bus "$bus"; url_b=$NODE_URL; pid_b=$NODE_PID
tails=()
for i in $(seq "$QUIET_SUBSCRIBERS"); do
  "$bin" tail --server "$url_b" --tenant quiet --output json >"$work/quiet.$i.jsonl" 2>"$work/quiet.$i.log" &
  tails+=($!)
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$(curl -fsS "$url_b/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["websocket"]["authenticated"])')" \
    -ge "$QUIET_SUBSCRIBERS" ] && break
  sleep 0.1
done

# Bytes received from Redis by PID's sockets, summed (ss: one line per
# socket, then one of TCP details).
redis_rx() {
  ss -tinpH "( dport = :$redis_port )" | awk -v pid="pid=$1," '
    /users:\(/ { mine = index($0, pid) > 0; next }
    mine && match($0, /bytes_received:[0-9]+/) { sum += substr($0, RSTART + 15, RLENGTH - 15) }
    END { print sum + 0 }'
}
ss -tinpH "( dport = :$redis_port )" >"$out/redis-bytes-ss-before.txt"
b_before=$(redis_rx "$pid_b"); a_before=$(redis_rx "$pid_a")
loadtest redis-bytes-flood-on-a --server "$url_a" --connections 10 --rate "$FLOOD_RATE" \
  --duration "$FLOOD_DURATION" --threshold 'loss==0'
# Then a few events of the quiet tenant, posted to A: B's subscribers must
# get them (B does hear from Redis what its connections are owed).
token=$("$bin" token create --role admin --ttl 1h)
for i in $(seq 5); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"event_type\":\"QuietEvent\",\"tenant_id\":\"quiet\",\"rooms\":[\"erp\"],\"data\":{\"n\":$i}}" \
    "$url_a/api/v1/events"
done
sleep 1
ss -tinpH "( dport = :$redis_port )" >"$out/redis-bytes-ss-after.txt"
b_after=$(redis_rx "$pid_b"); a_after=$(redis_rx "$pid_a")
stop "${tails[@]}"
quiet_got=$(cat "$work"/quiet.*.jsonl | grep -c '"QuietEvent"' || true)
cat >"$out/redis-bytes.json" <<EOF
{"redis_port": $redis_port, "node_a_pid": $pid_a, "node_b_pid": $pid_b,
 "node_a_bytes_received": {"before": $a_before, "after": $a_after, "delta": $((a_after - a_before))},
 "node_b_bytes_received": {"before": $b_before, "after": $b_after, "delta": $((b_after - b_before))},
 "quiet_subscribers_on_b": $QUIET_SUBSCRIBERS, "quiet_events_posted_to_a": 5,
 "quiet_events_received_on_b": $quiet_got}
EOF
stop "$pid_a" "$pid_b"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/versions.txt"

python3 - "$out" <<'EOF' | tee "$out/summary.md"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
print(open(os.path.join(out, "versions.txt")).read())
print("| run | nodes | connections ok/failed | published | deliveries/s | lost | dup | p50 ms | p99 ms | ack p50 ms | ack p99 ms | valid |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for name in ["pg-redis-1-node", "pg-redis-2-nodes", "sqlite-memory-1-node", "redis-bytes-flood-on-a"]:
    r = load(name)
    if r is None:
        print(f"| {name} | no summary |")
        continue
    c, d, l, a = r["connections"], r["deliveries"], r["latency_ms"], r["events"]["ack_latency_ms"]
    print(f'| {name} | {r["config"].get("nodes", 1)} | {c["established"]}/{c["failed"]} | {r["events"]["published"]} '
          f'| {d["per_second"]:,.0f} | {d["lost"]} | {d["duplicated"]} | {l["p50"]:.1f} | {l["p99"]:.1f} '
          f'| {a["p50"]:.1f} | {a["p99"]:.1f} | {r["valid"]} |')
r = load("pg-redis-2-nodes")
if r is not None and r.get("nodes"):
    print("\nTwo nodes, per node:\n")
    print("| node | connections ok/failed | published | expected | received | lost | dup | deliveries/s |")
    print("|---|---|---|---|---|---|---|---|")
    for i, n in enumerate(r["nodes"]):
        d = n["deliveries"]
        print(f'| {i + 1} | {n["connections"]["established"]}/{n["connections"]["failed"]} | {n["events"]["published"]} '
              f'| {d["expected"]} | {d["received"]} | {d["lost"]} | {d["duplicated"]} | {d["per_second"]:,.0f} |')
b = load("redis-bytes")
f = load("redis-bytes-flood-on-a")
if b is not None:
    published = f["events"]["published"] if f else 0
    print("\nBytes received from Redis during the flood of the busy tenant on node A:\n")
    print("| node | subscribers | bytes before | bytes after | received | per busy event |")
    print("|---|---|---|---|---|---|")
    for key, label, subs in [("node_a_bytes_received", "A", "10 of the busy tenant"),
                             ("node_b_bytes_received", "B", f'{b["quiet_subscribers_on_b"]} of tenant quiet')]:
        x = b[key]
        per = f'{x["delta"] / published:.1f}' if published else "n/a"
        print(f'| {label} | {subs} | {x["before"]:,} | {x["after"]:,} | {x["delta"]:,} | {per} |')
    print(f'\nbusy events published to A: {published}; quiet events posted to A: {b["quiet_events_posted_to_a"]}, '
          f'received on B: {b["quiet_events_received_on_b"]} (over {b["quiet_subscribers_on_b"]} subscribers)')
EOF
