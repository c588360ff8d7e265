#!/usr/bin/env bash
# Story-index benchmark: 1,000,000 synthetic stories (or $GLEANER_BENCH_STORIES)
# through a real SqliteStore, release build (cargo's bench profile inherits
# release). Usage: bench/index.sh [STORIES]. See benches/index.rs and
# bench/README.md. Runs under `nice -n 10`: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
    export GLEANER_BENCH_STORIES=$1
fi
cargo bench --quiet --bench index --no-run
exec nice -n 10 cargo bench --quiet --bench index
