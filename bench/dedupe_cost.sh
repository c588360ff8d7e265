#!/usr/bin/env bash
# What near-duplicate detection costs a whole fetch pass: cold passes over a
# loopback feed farm with dedupe on, and off (`[dedupe] window = "0s"`),
# user and system CPU of each.
#
#   bench/dedupe_cost.sh SITE [BIN] [ROUNDS]
#
# SITE: a farm from ../shared/bench/feedfarm/gen.py, served on PORT (8088).
# BIN: default target/release/gleaner. ROUNDS: default 2.
#
# Order matters on ext4: the first pass after a mass delete pays seconds of
# system time (new inodes are checked against recently deleted ones), so each
# round deletes both outputs, waits, and runs both modes, alternating which
# goes first; compare the averages over an even number of rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=$(cd "${1:?usage: bench/dedupe_cost.sh SITE [BIN] [ROUNDS]}" && pwd)
BIN=${2:-target/release/gleaner}
ROUNDS=${3:-2}
WORK=${WORK:-/tmp/gleaner-dedupe-cost}
[ -x "$BIN" ] || cargo build --release --quiet --bin gleaner
for round in $(seq 1 "$ROUNDS"); do
    order="on off"
    [ $((round % 2)) = 0 ] && order="off on"
    rm -rf "$WORK"
    sync
    sleep 90
    for mode in $order; do
        w=$WORK/$mode
        mkdir -p "$w"
        {
            printf 'output_dir = "%s/out"\nstate_dir = "%s/state"\n' "$w" "$w"
            [ "$mode" = off ] && printf '[dedupe]\nwindow = "0s"\n'
            printf '\n'
            cat "$SITE/feeds.toml"
        } >"$w/gleaner.toml"
        /usr/bin/time -f "$mode round $round: user %U s, sys %S s, wall %e s, peak RSS %M kB" \
            "$BIN" fetch --config "$w/gleaner.toml" >"$w/summary.txt" 2>"$w/time.txt"
        echo "$(tail -1 "$w/time.txt"), $(find "$w/out" -name '*.txt' | wc -l) stories written"
    done
done
