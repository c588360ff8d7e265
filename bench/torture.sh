#!/usr/bin/env bash
# Crash torture: SIGKILL `gleaner fetch` at random moments against a loopback
# feed farm, then let it finish and check that nothing is lost, half-written
# or written twice (bench/torture_check.py).
#
#   bench/torture.sh [KILLS] [BIN]
#
# KILLS (default 25): SIGKILLs to deliver (only kills that hit a live process
# count). BIN (default target/release/gleaner, built if missing). When a pass
# completes before the kill target is reached, the round is checked and a new
# round starts from empty output and state directories.
#
# Environment: SITE (default /tmp/torture-site, generated with the farm's
# gen.py --feeds 100 --items 20 --seed 3 if missing), PORT (8093), FARM
# (../shared/bench/feedfarm), WORK (/tmp/torture-work), MAX_DELAY_MS (900):
# each run is killed after a uniform random 20..MAX_DELAY_MS ms.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-25}
BIN=${2:-target/release/gleaner}
SITE=${SITE:-/tmp/torture-site}
PORT=${PORT:-8093}
FARM=${FARM:-../shared/bench/feedfarm}
WORK=${WORK:-/tmp/torture-work}
MAX_DELAY_MS=${MAX_DELAY_MS:-900}

[ -x "$BIN" ] || cargo build --release --quiet --bin gleaner
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -f "$SITE/truth.json" ] ||
    python3 "$FARM/gen.py" --feeds 100 --items 20 --port "$PORT" --seed 3 --out "$SITE" >/dev/null
"$FARM/serve.sh" status "$PORT" >/dev/null 2>&1 || "$FARM/serve.sh" start "$SITE" "$PORT"

new_round() {
    rm -rf "$WORK"
    mkdir -p "$WORK"
    { printf 'output_dir = "out"\nstate_dir = "state"\n\n'; cat "$SITE/feeds.toml"; } >"$WORK/gleaner.toml"
}

check_round() {
    # Let it finish, twice: the second pass must find nothing new.
    "$BIN" fetch --config "$WORK/gleaner.toml" >"$WORK/final.log" 2>"$WORK/final.err"
    tail -1 "$WORK/final.log"
    "$BIN" fetch --config "$WORK/gleaner.toml" >"$WORK/again.log" 2>&1
    grep -q ' 0 new,' "$WORK/again.log" || { echo "FAIL: a further pass wrote again: $(tail -1 "$WORK/again.log")"; return 1; }
    sqlite3 "$WORK/state/state.sqlite" 'PRAGMA integrity_check' | grep -qx ok ||
        { echo "FAIL: sqlite3 integrity_check"; return 1; }
    python3 bench/torture_check.py "$WORK/out" "$WORK/state" "$SITE/truth.json" "$FARM/score.py"
}

kills=0 rounds=1 finished_early=0 failed=0
new_round
echo "== torture: $KILLS kills, $BIN, farm $SITE on port $PORT, work $WORK"
while [ "$kills" -lt "$KILLS" ]; do
    delay_ms=$((20 + RANDOM % (MAX_DELAY_MS - 20)))
    "$BIN" fetch --config "$WORK/gleaner.toml" >>"$WORK/runs.log" 2>>"$WORK/runs.err" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -KILL "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        kills=$((kills + 1))
        written=$(find "$WORK/out" -name '*.txt' 2>/dev/null | wc -l)
        echo "kill $kills after ${delay_ms} ms ($written stories on disk)"
    else
        # The pass completed before the kill: check this round, start another.
        wait "$pid" 2>/dev/null || true
        finished_early=$((finished_early + 1))
        echo "== round $rounds: pass completed; checking"
        check_round || failed=1
        rounds=$((rounds + 1))
        new_round
    fi
done
echo "== round $rounds: $KILLS kills reached; finishing and checking"
check_round || failed=1
echo "== $kills kills over $rounds round(s); $( [ $failed = 0 ] && echo PASS || echo FAIL )"
exit $failed
