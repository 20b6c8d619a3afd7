#!/usr/bin/env bash
# Profiles the states bench: runs it (the bench binary BENCH, e.g. target/release/deps/states-<hash>,
# built with `cargo bench --bench states --no-run`) and, once both relays are filled, attaches
# `perf record -F 1999` to each until the bench ends. Then prints, per symbol, the samples per
# 1,000 events with states minus without (scripts/perf-diff.py): where the states' cost goes.
# Usage: scripts/states-profile.sh BENCH OUT_DIR [VAR=value ...]  (e.g. STATES_ROUNDS=2
# STATES_BINARY=/path/to/relay; build the relay unstripped for symbols:
# CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only).
set -eu
BENCH=$1; OUT=$2; shift 2
mkdir -p "$OUT"
env STATES_ROUNDS=2 "$@" "$BENCH" --bench > "$OUT/bench.log" 2>&1 &
BENCH_PID=$!
until [ "$(grep -c 'after filling' "$OUT/bench.log")" -ge 2 ]; do
  kill -0 $BENCH_PID 2>/dev/null || { cat "$OUT/bench.log"; exit 1; }
  sleep 1
done
pid() { grep "$1" "$OUT/bench.log" | grep -o 'pid [0-9]*' | cut -d' ' -f2; }
perf record -F 1999 -o "$OUT/without.data" -p "$(pid 'without (0)')" 2>/dev/null &
P0=$!
perf record -F 1999 -o "$OUT/with.data" -p "$(pid 'with (90d)')" 2>/dev/null &
P1=$!
wait $BENCH_PID
# perf stops by itself when its relay exits with the bench; INT it in case it did not.
kill -INT $P0 $P1 2>/dev/null || true
wait $P0 $P1 2>/dev/null || true
tail -5 "$OUT/bench.log"
python3 "$(dirname "$0")/perf-diff.py" "$OUT" 40
