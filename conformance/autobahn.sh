#!/usr/bin/env bash
# Runs the Autobahn testsuite (wstest -m fuzzingclient) against
#   1. the gateway's connection code with an echo handler
#      (examples/autobahn_echo.rs): cases 1-7 and 9, and a part of the
#      permessage-deflate cases 12 and 13 (the echo negotiates it);
#   2. a real `pytake serve` endpoint (/ws with a token): cases 7.x, the
#      close handling that clients meet.
# Fails if any case is not OK, NON-STRICT or INFORMATIONAL. Reports land in
# $OUT (default target/autobahn); the summary goes to stdout.
#
# Usage: conformance/autobahn.sh [--quick | --deflate]
#   --quick:   skip the 9.x and the compression cases
#   --deflate: all the permessage-deflate cases (12.x, 13.x) against the
#              echo endpoint and nothing else; about 8 minutes, so .ci/run
#              runs only the part above
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-target/autobahn}
venv=${AUTOBAHN_VENV:-target/autobahn-venv}
# Where cargo put the release build (CI may set CARGO_TARGET_DIR).
release=${CARGO_TARGET_DIR:-target}/release
case $venv in /*) ;; *) venv=$PWD/$venv ;; esac
# 12.2 (64 KiB slices of a bitmap, compressed) once caught a deflate that
# lost a message's end; 13.x offer every parameter combination (13.3 and
# 13.5 are declined: they ask for a window miniz_oxide cannot use).
deflate_cases='"12.2.*", "13.1.*", "13.2.*", "13.3.*", "13.5.*"'
cases="\"1.*\", \"2.*\", \"3.*\", \"4.*\", \"5.*\", \"6.*\", \"7.*\", \"9.*\", $deflate_cases"
deflate=false
case "${1:-}" in
  --quick) cases='"1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*"' ;;
  --deflate) cases='"12.*", "13.*"'; deflate=true ;;
  "") ;;
  *) echo "autobahn: unknown option $1 (use --quick or --deflate)" >&2; exit 2 ;;
esac

# The testsuite is Python 2.7 only; pyenv has it on this kind of machine.
if [ ! -x "$venv/bin/wstest" ]; then
  py27=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/2.7*/bin/python2.7 2>/dev/null | tail -n 1)
  [ -n "$py27" ] || { echo "autobahn: no Python 2.7 under pyenv (pyenv install 2.7.18)" >&2; exit 1; }
  "$py27" -m pip install -q --disable-pip-version-check 'virtualenv<20.22' 2>&1 | grep -v DEPRECATION || true
  "$py27" -m virtualenv -q "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r conformance/requirements-py27.txt 2>&1 | grep -v DEPRECATION || true
fi

# Two builds: the feature must not reach the `pytake` binary.
cargo build --release --locked --bin pytake
cargo build --release --locked --features conformance --example autobahn_echo
rm -rf "$out"
mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "${data:-}"' EXIT

# Starts a command that prints `listening on URL`, in this shell (so the
# EXIT trap can stop it), and waits for that line.
start() {
  local log=$1
  shift
  "$@" >"$log" 2>"$log.err" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening on ' "$log" && return
    sleep 0.1
  done
  echo "autobahn: $* did not start:" >&2
  cat "$log.err" >&2
  exit 1
}

# The URL a started command printed.
url_of() {
  sed -n 's/^listening on //p' "$1" | head -n 1
}

fuzz() {
  local name=$1 url=$2 cases=$3 exclude=${4:-}
  cat >"$out/$name.json" <<JSON
{"outdir": "./$name", "servers": [{"agent": "$name", "url": "$url"}],
 "cases": [$cases], "exclude-cases": [$exclude], "exclude-agent-cases": {}}
JSON
  (cd "$out" && "$venv/bin/wstest" -m fuzzingclient -s "$name.json" >"$name.log" 2>&1) ||
    { tail -n 20 "$out/$name.log" >&2; exit 1; }
}

start "$out/echo.out" "$release/examples/autobahn_echo" 127.0.0.1:0
fuzz pytake-echo "$(url_of "$out/echo.out")" "$cases"
if $deflate; then
  python3 conformance/summarize.py "$out/pytake-echo/index.json"
  exit
fi

data=$(mktemp -d)
start "$out/serve.out" "$release/pytake" serve --listen 127.0.0.1:0 --data-dir "$data"
serve_url=$(url_of "$out/serve.out")
token=$("$release/pytake" token create --data-dir "$data" --role admin --ttl 1h)
# 7.1.1 waits for the echo of a text message, which only an echo sends: it
# gives up and closes 1001 instead of the 1000 it then expects.
fuzz pytake-serve "${serve_url/http:/ws:}/ws?token=$token" '"7.*"' '"7.1.1"'

python3 conformance/summarize.py "$out/pytake-echo/index.json" \
  --close-only "$out/pytake-serve/index.json"
