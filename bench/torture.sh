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
# Kills must land while stories are being written, or the run proves little:
# a kill during start-up or the feed fetches never interrupts a write. So the
# script first times one uninterrupted pass (T, and the number of stories it
# writes), then kills each run after a uniform random KILL_FROM..KILL_TO
# percent of T. A kill "lands mid-write" when the killed run itself put
# stories on disk and the round was not finished yet; the script fails if
# fewer than MIN_MID_WRITE kills (default: half of KILLS) did.
#
# Environment: SITE (default /tmp/torture-site, generated with the farm's
# gen.py --feeds FEEDS --items ITEMS --seed 3 if missing; FEEDS 100, ITEMS
# 20), PORT (8093; the farm is generated for it), FARM
# (../shared/bench/feedfarm), WORK (/tmp/torture-work), KILL_FROM (5),
# KILL_TO (95), MIN_MID_WRITE. The farm's server is stopped at the end if
# this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-25}
BIN=${2:-target/release/gleaner}
SITE=${SITE:-/tmp/torture-site}
PORT=${PORT:-8093}
FARM=${FARM:-../shared/bench/feedfarm}
WORK=${WORK:-/tmp/torture-work}
FEEDS=${FEEDS:-100}
ITEMS=${ITEMS:-20}
KILL_FROM=${KILL_FROM:-5}
KILL_TO=${KILL_TO:-95}
MIN_MID_WRITE=${MIN_MID_WRITE:-$(((KILLS + 1) / 2))}
[ "$KILL_FROM" -lt "$KILL_TO" ] || { echo "KILL_FROM must be below KILL_TO" >&2; exit 2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin gleaner
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -f "$SITE/truth.json" ] ||
    python3 "$FARM/gen.py" --feeds "$FEEDS" --items "$ITEMS" --port "$PORT" --seed 3 --out "$SITE" >/dev/null
grep -q "127.0.0.1:$PORT/" "$SITE/feeds.toml" ||
    { echo "$SITE was generated for another port than $PORT: remove it or set PORT" >&2; exit 2; }
if ! "$FARM/serve.sh" status "$PORT" >/dev/null 2>&1; then
    "$FARM/serve.sh" start "$SITE" "$PORT"
    trap '"$FARM/serve.sh" stop "$PORT" >/dev/null' EXIT
fi

new_round() {
    rm -rf "$WORK"
    mkdir -p "$WORK"
    { printf 'output_dir = "out"\nstate_dir = "state"\n\n'; cat "$SITE/feeds.toml"; } >"$WORK/gleaner.toml"
}

stories() {
    if [ -d "$WORK/out" ]; then find "$WORK/out" -name '*.txt' | wc -l; else echo 0; fi
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
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

# One uninterrupted pass: how long a pass takes and how many stories it writes.
new_round
start=$(now_ms)
"$BIN" fetch --config "$WORK/gleaner.toml" >"$WORK/timing.log" 2>&1
pass_ms=$(($(now_ms) - start))
total=$(stories)
[ "$total" -gt 0 ] || { echo "FAIL: an uninterrupted pass wrote nothing: $(tail -3 "$WORK/timing.log")"; exit 1; }
from_ms=$((pass_ms * KILL_FROM / 100))
to_ms=$((pass_ms * KILL_TO / 100))
[ "$to_ms" -gt "$from_ms" ] || to_ms=$((from_ms + 1))

kills=0 mid_write=0 rounds=1 finished_early=0 failed=0
new_round
echo "== torture: $KILLS kills, $BIN, farm $SITE on port $PORT, work $WORK"
echo "== an uninterrupted pass takes ${pass_ms} ms and writes $total stories; kills land after ${from_ms}..${to_ms} ms"
while [ "$kills" -lt "$KILLS" ]; do
    # $RANDOM is 15 bits: two of them cover any pass length.
    delay_ms=$((from_ms + ((RANDOM << 15 | RANDOM) % (to_ms - from_ms))))
    before=$(stories)
    "$BIN" fetch --config "$WORK/gleaner.toml" >>"$WORK/runs.log" 2>>"$WORK/runs.err" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -KILL "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        kills=$((kills + 1))
        written=$(stories)
        what="no new story on disk"
        if [ "$written" -gt "$before" ] && [ "$written" -lt "$total" ]; then
            mid_write=$((mid_write + 1))
            what="mid-write: this run wrote $((written - before))"
        elif [ "$written" -ge "$total" ]; then
            what="after the last story"
        fi
        echo "kill $kills after ${delay_ms} ms ($written of $total stories on disk; $what)"
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
echo "== $kills kills over $rounds round(s), $mid_write of them mid-write (at least $MIN_MID_WRITE required), $finished_early pass(es) completed before their kill"
if [ "$mid_write" -lt "$MIN_MID_WRITE" ]; then
    echo "FAIL: only $mid_write kills landed while stories were being written"
    failed=1
fi
echo "== $( [ $failed = 0 ] && echo PASS || echo FAIL )"
exit $failed
