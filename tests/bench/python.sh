#!/usr/bin/env bash
# The Python SDK against the raw bindings, in one sitting: `prism bench
# --lang python` (the SDK) and tests/bench/python_raw.py (the generated
# bindings alone, built with the same componentize-py), alternated RUNS
# times. Asserts nothing; results go in docs/benchmarks.md.
#
#   bash tests/bench/python.sh [runs, default 3] [seconds per case, default 1]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
seconds=${2:-1}
venv=${PRISM_PYTHON:-${XDG_DATA_HOME:-$HOME/.local/share}/prism/python}
cargo build --release -q -p prism-cli
prism=./target/release/prism
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PRISM_DATA_DIR=$work/data PRISM_PYTHON_SDK=$PWD/guest-sdk/python
cp tests/bench/python_raw.py "$work/"
"$venv/bin/componentize-py" -d guest-sdk/python/prism/wit -w prism:python/guest@0.3.0 \
    --import-interface-name prism:core/bytes@0.3.0=prism_bytes \
    componentize python_raw -p "$work" -o "$work/raw.wasm" >/dev/null
cases=(single_client_get_calls single_client_put_calls single_client_tasks_sync single_client_tasks_async 1_1_actor_calls_async)
for run in $(seq "$runs"); do
    echo "== run $run: SDK"
    $prism bench --lang python --seconds "$seconds" "${cases[@]}"
    echo "== run $run: raw bindings"
    $prism run "$work/raw.wasm" -- "$seconds"
done
