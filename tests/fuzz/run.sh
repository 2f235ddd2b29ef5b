#!/usr/bin/env bash
# Runs each fuzz target for N executions (default 1,000,000) with cargo-fuzz
# on nightly, starting from the committed corpus, then merges what was new
# back into it (tests/fuzz/corpus/<target>), which CI replays on stable.
#
#   cargo install cargo-fuzz && rustup toolchain install nightly
#   bash tests/fuzz/run.sh [runs] [target...]
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-1000000}
shift || true
targets=("${@:-values nested_refs index_record http_request}")
read -r -a targets <<< "${targets[*]}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    cp corpus/"$target"/* "$scratch/$target/"
    cargo +nightly fuzz run --fuzz-dir libfuzzer -O "$target" "$scratch/$target" -- \
        -runs="$runs" -max_len=4096 -rss_limit_mb=8192 2>&1 | grep -E '^(Done|#[0-9]+ +DONE)|ERROR|panicked' || true
    # Keep only inputs that add coverage.
    cargo +nightly fuzz cmin --fuzz-dir libfuzzer -O "$target" "$scratch/$target" >/dev/null 2>&1
    rm -f corpus/"$target"/*
    cp "$scratch/$target"/* corpus/"$target"/
    echo "$target: $(ls corpus/"$target" | wc -l) inputs kept"
done
