#!/usr/bin/env bash
# Side-by-side extraction speed: gleaner vs trafilatura 2.3.1, plus gleaner's
# peak RSS and F1 on the same pages. Usage: bench/extract_speed.sh [DIR]
# DIR (default ../shared/bench/extraction, relative to the repo root) holds
# html/*.html.gz and score.py. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../shared/bench/extraction}
[ -d "$DIR/html" ] || { echo "no $DIR/html directory" >&2; exit 1; }
VENV=bench/.venv

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import sys, trafilatura, lxml_html_clean; sys.exit(trafilatura.__version__ != "2.3.1")' 2>/dev/null; then
    "$VENV/bin/pip" install -q trafilatura==2.3.1 lxml_html_clean
fi

PIN=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    PIN=(taskset -c 0)
    echo "== pinned to CPU 0 with taskset"
else
    echo "== taskset not available: running UNPINNED (numbers are noisier)"
fi

echo "== gleaner (cargo bench --bench extract)"
cargo build --release --quiet --bin gleaner
cargo bench --quiet --bench extract --no-run
# Captured, then printed: a `tee /dev/stderr` clobbered lines when both
# streams went to one file.
G_OUT=$("${PIN[@]}" cargo bench --quiet --bench extract -- "$DIR")
echo "$G_OUT"
echo "== trafilatura"
T_OUT=$("${PIN[@]}" "$VENV/bin/python" bench/trafilatura_speed.py "$DIR")
echo "$T_OUT"

g=$(awk '/^gleaner:/ {print $(NF-1)}' <<<"$G_OUT")
t=$(awk '/^trafilatura\(favor_precision\):/ {print $(NF-1)}' <<<"$T_OUT")
td=$(awk '/^trafilatura\(default\):/ {print $(NF-1)}' <<<"$T_OUT")
echo "== ratio gleaner/trafilatura(favor_precision): $(awk -v g="$g" -v t="$t" 'BEGIN {printf "%.2fx", g / t}')"
echo "== ratio gleaner/trafilatura(default):         $(awk -v g="$g" -v t="$td" 'BEGIN {printf "%.2fx", g / t}')"

if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "GNU time missing: install it (apt-get install time) to measure peak RSS" >&2
    exit 1
fi
OUT=$(mktemp -d)
TIMELOG=$(mktemp)
trap 'rm -rf "$OUT" "$TIMELOG"' EXIT
/usr/bin/time -v -o "$TIMELOG" target/release/gleaner extract --out-dir "$OUT" "$DIR"/html/*.html.gz
kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TIMELOG")
echo "== gleaner extract, $(ls "$DIR"/html/*.html.gz | wc -l) pages: peak RSS $(awk -v k="$kb" 'BEGIN {printf "%.1f", k / 1024}') MiB"
echo "== score.py on gleaner extract output"
python3 "$DIR/score.py" "$OUT" | tail -n 5
