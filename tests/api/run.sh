#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document: schemathesis (PyPI), every
# check, on a real `prism serve` on a loopback port with one tenant and a
# deployed module. Exits non-zero on any failure. Needs the release build
# and the guests (`cargo test --release` builds both).
#
#   bash tests/api/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi
prism=target/release/prism
data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$prism" serve --listen "127.0.0.1:$port" --data-dir "$data" > "$data/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
export PRISM_SERVER="http://127.0.0.1:$port"
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
PRISM_TOKEN=$("$prism" tenant create --data-dir "$data" schemathesis)
export PRISM_TOKEN
"$prism" deploy --name svc target/guests/wasm32-wasip2/release/service.wasm > /dev/null
"$venv/bin/schemathesis" --config-file tests/api/schemathesis.toml run "$PRISM_SERVER/v1/openapi.json" \
    -H "Authorization: Bearer $PRISM_TOKEN" --checks all --workers 2 --seed 1
kill -0 $server  # the server outlived it
