#!/usr/bin/env bash
# The soak test (tests/all/soak.rs) run longer: mixed load from several
# tenants on one `prism serve`, every answer checked, nothing lost, memory
# flat. Prints the counts and the server's RSS after warm-up and at the end,
# for docs/benchmarks.md.
#
#   bash tests/soak/run.sh [seconds, default 300]
set -euo pipefail
cd "$(dirname "$0")/../.."
PRISM_SOAK_SECONDS=${1:-300} cargo test --release --test all -- --exact \
    soak::mixed_load_from_several_tenants_loses_nothing_and_memory_stays_flat --nocapture 2>&1 |
    grep -E '^soak:|test result'
