#!/usr/bin/env bash
# What the relay does when its disk fills up after Discord accepted a message: a 4 MiB tmpfs as
# DATA_DIR, a fake Discord on 127.0.0.1 that answers 503 until the events are stored, the disk then
# filled with dd, Discord answering 2xx for 20 s, then the disk freed. Prints how many requests
# Discord got while the disk was full and in all, and what /readyz said. Needs root (or a user
# namespace) for the tmpfs: run it as `unshare -rm scripts/full-disk.sh BINARY text|forum`.
#
# text: 40 user_limited, a text channel (DIGEST_THRESHOLD=0, so 4 messages of 10 embeds);
# forum: 10 users' user_created in forum mode (10 posts). Each must reach Discord once.
set -u
BIN=$(realpath "$1"); MODE=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d); FS=$W/fs; mkdir -p "$FS"
mount -t tmpfs -o size=4m tmpfs "$FS"
PORT=$((20000 + RANDOM % 20000)); RPORT=$((PORT + 1))

cat > "$W/fake.py" <<'PY'
# 503 until the file UP exists, then 200; ?wait=true answers carry a channel_id, a new post's own.
import http.server, itertools, json, os, sys, time
PORT, UP, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ids = itertools.count(1300000000000000000)
class Fake(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_POST(self):
        message = json.loads(self.rfile.read(int(self.headers.get('content-length', 0))))
        if not os.path.exists(UP):
            self.send_response(503); self.end_headers(); return
        query = dict(p.split('=', 1) for p in self.path.partition('?')[2].split('&') if '=' in p)
        if 'thread_name' in message: thread, kind = next(ids), 'new post ' + message['thread_name']
        elif 'thread_id' in query: thread, kind = int(query['thread_id']), 'into post'
        else: thread, kind = 1, 'channel'
        with open(LOG, 'a') as log:
            log.write('%.3f %s embeds=%d\n' % (time.time(), kind, len(message.get('embeds', []))))
        body = json.dumps({'id': str(next(ids)), 'channel_id': str(thread)}).encode()
        self.send_response(200); self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(('127.0.0.1', PORT), Fake).serve_forever()
PY
python3 "$W/fake.py" $PORT "$W/UP" "$W/sent.log" & FAKE=$!
touch "$W/sent.log"
FORUM=false; [ "$MODE" = forum ] && FORUM=true
env -i PATH="$PATH" DATA_DIR="$FS/data" WEBHOOK_SECRET=s3cret LISTEN_ADDR=127.0.0.1:$RPORT \
  DISCORD_WEBHOOK_URL=http://127.0.0.1:$PORT/api/webhooks/1/token DISCORD_FORUM=$FORUM DIGEST_THRESHOLD=0 \
  RETRY_SCHEDULE=1s RUST_LOG=warn "$BIN" serve 2> "$W/relay.log" & RELAY=$!
for _ in $(seq 100); do curl -s 127.0.0.1:$RPORT/healthz > /dev/null && break; sleep 0.1; done

python3 - "$MODE" "$ROOT" > "$W/body.json" <<'PY'
import json, sys
mode, root = sys.argv[1], sys.argv[2]
action, count = ('user_limited', 40) if mode == 'text' else ('user_created', 10)
event = json.load(open('%s/tests/fixtures/marzban-0.8.4/%s.json' % (root, action)))[0]
batch = []
for i in range(count):
    e = json.loads(json.dumps(event)); e['username'] = 'user%02d' % i
    if isinstance(e.get('user'), dict): e['user']['username'] = 'user%02d' % i
    batch.append(e)
print(json.dumps(batch))
PY
curl -s -o /dev/null -w "POST: %{http_code}\n" -H 'x-webhook-secret: s3cret' --data-binary @"$W/body.json" 127.0.0.1:$RPORT/
sleep 2
dd if=/dev/zero of="$FS/filler" bs=64k 2> /dev/null
touch "$W/UP"; sleep 20
echo "requests Discord accepted while the disk was full (20 s): $(wc -l < "$W/sent.log")"
echo "/readyz while full: $(curl -s -w ' (%{http_code})' 127.0.0.1:$RPORT/readyz)"
rm "$FS/filler"; sleep 15
echo "requests Discord accepted in all, 15 s after the disk was freed: $(wc -l < "$W/sent.log")"
cut -d' ' -f2- "$W/sent.log" | sort | uniq -c | sort -rn | head -3
echo "/readyz after: $(curl -s -w ' (%{http_code})' 127.0.0.1:$RPORT/readyz)"
kill $RELAY $FAKE; wait $RELAY 2> /dev/null
umount "$FS"; rm -rf "$W"
