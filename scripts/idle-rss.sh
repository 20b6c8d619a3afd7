#!/usr/bin/env bash
# An idle relay's memory, as the benches measure it but without building them: the release binary
# started RUNS times (default 3) with an empty data folder, nothing from this environment but
# WEBHOOK_SECRET, RUST_LOG=warn and a DISCORD_WEBHOOK_URL on a closed port of 127.0.0.1 (nothing is
# delivered: the relay is idle), read 2 s after /readyz first answers 200 (WAIT to change).
# Prints VmRSS, its anonymous and file-backed parts (RssFile: the binary's pages), the threads by
# name and the heap. Usage: scripts/idle-rss.sh [BINARY] (default target/release/marzban-discord-relay).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/marzban-discord-relay}")
RUNS=${RUNS:-3}; WAIT=${WAIT:-2}
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
for run in $(seq "$RUNS"); do
  DIR=$(mktemp -d); PORT=$((20000 + RANDOM % 20000))
  (cd "$DIR" && exec env -i PATH=/usr/bin:/bin LISTEN_ADDR=127.0.0.1:$PORT WEBHOOK_SECRET=bench-secret \
    DISCORD_WEBHOOK_URL=http://127.0.0.1:9/api/webhooks/1/idle RUST_LOG=warn "$BIN" 2>"$DIR/log") &
  PID=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$PORT/readyz")" = 200 ]; do
    kill -0 $PID 2>/dev/null || { echo "the relay exited:"; cat "$DIR/log"; exit 1; }
    sleep 0.02
  done
  sleep "$WAIT"
  echo "run $run: $(grep -E '^(VmRSS|RssAnon|RssFile|Threads)' /proc/$PID/status | tr -s ' \t' ' ' | tr '\n' ' ')"
  echo "  threads: $(cat /proc/$PID/task/*/comm | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
  echo "  heap: $(awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{ if (name=="[heap]") print $2 " kB" }' /proc/$PID/smaps)"
  kill $PID; wait $PID 2>/dev/null; rm -rf "$DIR"
done
