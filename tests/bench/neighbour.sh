#!/usr/bin/env bash
# One tenant's trivial call while another tenant spins: tenant `spinner`
# runs as many endless-loop calls as the server has cpus, and tenant
# `neighbour` invokes `add` at one connection with wrk. Reports the
# neighbour's latency with the loops idle and running, and how long its
# first call took to answer once they run; and, as the floor the kernel
# sets, its latency next to as many plain busy-loop processes. Asserts nothing; results go in
# docs/benchmarks.md.
#
#   bash tests/bench/neighbour.sh [seconds per run, default 10]
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
cpus=$(nproc)

data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
export PRISM_DATA_DIR=$data
spinner=$($prism tenant create spinner)
neighbour=$($prism tenant create neighbour)
# The loops run until the bench ends, not until a cpu deadline.
$prism tenant quota spinner --cpu-deadline-ms 3600000 >/dev/null
$prism tenant quota neighbour --requests-per-second 10000000 >/dev/null
$prism serve --listen 127.0.0.1:0 >"$data/out" 2>"$data/err" &
until grep -q listening "$data/out" 2>/dev/null; do sleep 0.1; done
addr=$(sed -n 's/listening on //p' "$data/out")
PRISM_SERVER=$addr PRISM_TOKEN=$spinner $prism deploy --name svc "$guest" >/dev/null
PRISM_SERVER=$addr PRISM_TOKEN=$neighbour $prism deploy --name svc "$guest" >/dev/null

cat >"$data/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "[1, 2]"
wrk.headers["authorization"] = "Bearer $neighbour"
wrk.headers["content-type"] = "application/json"
LUA
url="$addr/v1/modules/svc/functions/add"
add() { curl -s --max-time 30 -o /dev/null -w '%{time_total}' -X POST -H "authorization: Bearer $neighbour" -d '[1, 2]' "$url"; }
add >/dev/null  # warm up
latency() {
    echo "== neighbour's add, 1 connection, $1"
    wrk -t 1 -c 1 -d "${seconds}s" --latency -s "$data/post.lua" "$url" \
        | grep -E "Requests/sec|^ +(50|90|99)%|Non-2xx|Socket errors"
}
latency "loops idle"
# The floor the kernel gives: the same number of plain busy-loop processes.
spinners=()
for _ in $(seq "$cpus"); do
    bash -c 'while :; do :; done' &
    spinners+=($!)
done
latency "$cpus busy-loop processes"
kill "${spinners[@]}"
for _ in $(seq "$cpus"); do
    curl -s -o /dev/null -X POST -H "authorization: Bearer $spinner" -d '[]' \
        "$addr/v1/modules/svc/functions/forever" &
done
sleep 1  # every loop holds a cpu
echo "== neighbour's first add with $cpus loops running: $(add) s"
latency "$cpus loops running"
