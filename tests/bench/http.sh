#!/usr/bin/env bash
# Invoke throughput and latency of a trivial function over loopback, at 1,
# 16 and 64 connections, with wrk (installed from Debian if missing); then
# the same answered with a ref (`?result=ref`, each result pinned) at 16
# and 64.
# Reports numbers; asserts nothing. Results go in docs/benchmarks.md.
#
#   bash tests/bench/http.sh [seconds per run, default 10]
# PRISM_BIN picks another `prism` binary (to measure before a change).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}

if ! command -v wrk >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y wrk >/dev/null
fi
cargo build --release -q -p prism-cli -p prism-test-guests
prism=${PRISM_BIN:-./target/release/prism}
guest=target/guests/wasm32-wasip2/release/service.wasm

data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
export PRISM_DATA_DIR=$data
# The benchmark tenant may send as many requests as the machine takes.
token=$($prism tenant create bench)
$prism tenant quota bench --requests-per-second 10000000 --concurrent-tasks 100000 >/dev/null
$prism serve --listen 127.0.0.1:0 >"$data/out" 2>"$data/err" &
server=$!
until grep -q listening "$data/out" 2>/dev/null; do sleep 0.1; done
addr=$(sed -n 's/listening on //p' "$data/out")
PRISM_SERVER=$addr PRISM_TOKEN=$token $prism deploy --name svc "$guest" >/dev/null

cat >"$data/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "[1, 2]"
wrk.headers["authorization"] = "Bearer $token"
wrk.headers["content-type"] = "application/json"
LUA
url="$addr/v1/modules/svc/functions/add"
curl -sf -X POST -H "authorization: Bearer $token" -d '[1, 2]' "$url" >/dev/null  # warm up
run() {
    echo "== $2 connections${3:+, $3}"
    # One wrk thread: the load generator shares the machine's cores with the
    # server, and one thread keeps it to at most one of them.
    wrk -t 1 -c "$2" -d "${seconds}s" --latency -s "$data/post.lua" "$1" \
        | grep -E "Requests/sec|^ +(50|99)%|Non-2xx|Socket errors"
}
for connections in 1 16 64; do
    run "$url" "$connections"
done
for connections in 16 64; do
    run "$url?result=ref" "$connections" "answered with a ref"
done
