#!/usr/bin/env bash
# End-to-end check of the Docker image and the compose file, on a machine with a Docker engine and
# Docker Compose v2 (`docker compose` or `docker-compose`), curl and python3.
#
# It copies the project to a scratch folder, writes a .env there (from .env.example), and runs the
# project's docker-compose.yml unchanged plus one override that lets the container reach a fake
# Discord on this host. Then: build; start; post a real Marzban fixture with the secret and see it
# delivered; stop the fake Discord, post another, restart the stack, start the fake Discord again
# and see the queued message delivered; check the user (65532), the capabilities, the read-only
# root, the image's and the volume's /data (0700, 65532), the health check, the stop time and that
# no secret reaches the logs; that the warning about a 0755 volume says a host command that fixes
# it; then docs/DEPLOY.md's compose-secrets-and-bind-mount setup, its error messages and its fix;
# and tear it all down.
#
# It uses the compose project name marzban-discord-relay-smoke (its own volume, container and image
# marzban-discord-relay:smoke), so a real deployment on the same host is left alone, but it needs
# 127.0.0.1:9000 free. Base images must be pullable or present. Prints each step with its time.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
project=marzban-discord-relay-smoke
secret=smoke-secret-$RANDOM$RANDOM
token=smoke-token-$RANDOM$RANDOM
started=$(date +%s.%N)

say() { printf '%s\n' "$*"; }
die() {
  say "FAILED: $*"
  [[ -n ${work:-} && -f $work/docker-compose.yml ]] && compose logs --no-color --tail 40 2>&1 | sed 's/^/  | /'
  exit 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_start=
step() { step_start=$(date +%s.%N); printf '%-64s' "$*"; }
ok() { say "ok  $(since "$step_start") s${1:+  ($1)}"; }
# Evidence under a step: what was seen.
detail() { sed 's/^/      | /'; }
# The last $2 (default 1) lines of the relay's log matching $1, as evidence.
log_lines() { { compose logs --no-color 2>&1 | grep -E -- "$1" | tail -n "${2:-1}" | detail; } || true; }
# Whether the relay's log holds $1.
logged() { [[ $(compose logs --no-color 2>&1) == *"$1"* ]]; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.2
  done
}

for tool in docker curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif [[ $(docker-compose version 2>/dev/null) == *"version v2"* ]]; then
  compose_cmd=(docker-compose)
else
  die "Docker Compose v2 is not installed"
fi
if curl -s -o /dev/null --max-time 2 http://127.0.0.1:9000/; then
  die "127.0.0.1:9000 is in use (a relay already running?); the compose file publishes the relay there"
fi

work=$(mktemp -d)
fake_pid=
compose() {
  "${compose_cmd[@]}" -p "$project" --project-directory "$work" \
    -f "$work/docker-compose.yml" -f "$work/smoke.override.yml" ${extra_override:+-f "$extra_override"} "$@"
}
cleanup() {
  [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null
  extra_override=
  if [[ -f $work/docker-compose.yml ]]; then
    compose down --volumes --rmi all --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "$(date -u +%FT%TZ) $(uname -m), $(nproc) CPUs; compose $("${compose_cmd[@]}" version --short 2>/dev/null || "${compose_cmd[@]}" version), engine $(docker version -f "{{.Server.Version}}")"

# --- the project, a .env, the override and the fake Discord -------------------------------------
step "copy the project to a scratch folder"
tar -C "$repo" --exclude=./target --exclude=./.git --exclude=./data --exclude=./.env --exclude=./secrets -cf - . |
  tar -C "$work" -xf -
ok

# The fake Discord listens on the Docker bridge's address of this host, which the container reaches
# as host-gateway; nothing listens on other interfaces.
gateway=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
received=$work/discord.jsonl
cat >"$work/fake_discord.py" <<'EOF'
# Answers every webhook execution like Discord does with ?wait=true, and appends it to a file.
import http.server, itertools, json, sys
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ids = itertools.count(1)
class Webhook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with open(log, "a") as f:
            f.write(json.dumps(body) + "\n")
        reply = json.dumps({"id": str(next(ids)), "type": 0, "channel_id": "1", "content": "", "embeds": body.get("embeds", [])}).encode()
        self.send_response(200)
        for name, value in [("content-type", "application/json"), ("x-ratelimit-limit", "5"), ("x-ratelimit-remaining", "4"), ("x-ratelimit-reset-after", "0.4"), ("x-ratelimit-bucket", "smoke")]:
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, port), Webhook).serve_forever()
EOF
start_fake() {
  python3 "$work/fake_discord.py" "$gateway" "$port" "$received" &
  fake_pid=$!
  wait_for 5 curl -s -o /dev/null "http://$gateway:$port/" || die "the fake Discord did not start"
}
stop_fake() {
  kill "$fake_pid"
  wait "$fake_pid" 2>/dev/null || true
  fake_pid=
}
# Whether the fake Discord got a message naming user $1 (usernames arrive markdown-escaped: a\_b).
delivered() { [[ -f $received && $(tr -d '\134' <"$received") == *"$1"* ]]; }

env_file() {
  sed -e '/^WEBHOOK_SECRET=/d' -e '/^DISCORD_WEBHOOK_URL=/d' "$repo/.env.example"
  echo "RELAY_IMAGE=marzban-discord-relay:smoke"
  echo "RETRY_SCHEDULE=1s"
  printf '%s\n' "$@"
}
env_file "WEBHOOK_SECRET=$secret" "DISCORD_WEBHOOK_URL=http://fake-discord:$port/api/webhooks/112233445566778899/$token" \
  >"$work/.env"
cat >"$work/smoke.override.yml" <<'EOF'
services:
  marzban-discord-relay:
    extra_hosts:
      - "fake-discord:host-gateway"
EOF

post() {
  curl -sS --max-time 10 -H "x-webhook-secret: $secret" -H 'content-type: application/json' \
    --data-binary "@$repo/tests/fixtures/marzban-0.8.4/$1.json" http://127.0.0.1:9000/
}
container() { compose ps -aq marzban-discord-relay; }
healthz() { [[ $(curl -s --max-time 2 http://127.0.0.1:9000/healthz) == ok ]]; }
status_line() { grep -E "^$1:" "/proc/$(docker inspect -f '{{.State.Pid}}' "$(container)")/status" | awk '{ print $2 }'; }

# --- build and start ------------------------------------------------------------------------------
# Whatever an interrupted run left (its outbox would hold the fixtures: re-sent, they count as
# duplicates and are not delivered again).
compose down --volumes --remove-orphans >/dev/null 2>&1 || true

step "build the image (docker-compose.yml, Dockerfile)"
compose build --quiet >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; die "build failed"; }
# Compose 2.40 building through the engine's API (no buildx) exits 0 when the build fails.
docker image inspect marzban-discord-relay:smoke >/dev/null 2>&1 || { tail -30 "$work/build.log"; die "build failed: no image"; }
ok "$(docker image inspect -f '{{.Size}}' marzban-discord-relay:smoke | awk '{ printf "%.1f MB", $1 / 1e6 }')"
# What the relay adds to the base image, layer by layer (the binary, the templates, /data).
docker history --format '{{.Size}}  {{.CreatedBy}}' marzban-discord-relay:smoke | grep COPY | cut -c1-100 | detail

# The mode and owner of the image's /data, as `docker cp` reads them (the image has no shell).
image_data() {
  local probe
  probe=$(docker create marzban-discord-relay:smoke)
  docker cp "$probe:/data" - | python3 -c '
import sys, tarfile
entry = tarfile.open(fileobj=sys.stdin.buffer, mode="r|").next()
print("%o %d:%d" % (entry.mode & 0o777, entry.uid, entry.gid))'
  docker rm -v "$probe" >/dev/null
}
step "the image's /data is 0700 and belongs to 65532"
[[ $(image_data) == "700 65532:65532" ]] || die "the image's /data is $(image_data) (mode uid:gid)"
ok "$(image_data)"

step "start the stack and answer /healthz"
compose up -d --quiet-pull >/dev/null 2>&1 || die "compose up failed"
wait_for 30 healthz || die "/healthz did not answer"
ok

volume=${project}_relay-data
volume_dir() { docker volume inspect -f '{{.Mountpoint}}' "$volume"; }
open_folder_warnings() { compose logs --no-color 2>&1 | grep -c 'can be used by other users' || true; }
step "the new volume is 0700 and belongs to 65532; no warning"
[[ $(stat -c '%a %u:%g' "$(volume_dir)") == "700 65532:65532" ]] || die "the volume is $(stat -c '%a %u:%g' "$(volume_dir)")"
[[ $(open_folder_warnings) == 0 ]] || die "the relay warned about its data folder"
ok "$(stat -c '%a %u:%g' "$(volume_dir)")"

step "runs as uid 65532, no capabilities, no new privileges"
[[ $(status_line Uid) == 65532 ]] || die "runs as uid $(status_line Uid)"
[[ $(status_line CapEff) == 0000000000000000 ]] || die "has capabilities $(status_line CapEff)"
[[ $(status_line NoNewPrivs) == 1 ]] || die "may gain privileges"
[[ $(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$(container)") == true ]] || die "root is writable"
ok "read-only root"
grep -E '^(Uid|Gid|CapEff|NoNewPrivs):' "/proc/$(docker inspect -f '{{.State.Pid}}' "$(container)")/status" | detail

# --- delivery, and a message queued while Discord is down ----------------------------------------
start_fake
step "post user_created; the fake Discord gets it"
answer=$(post user_created)
[[ $answer == *'"accepted":1'* ]] || die "answer: $answer"
wait_for 20 delivered h5b5cf44_main || die "user_created was not delivered"
ok
echo "relay answered $answer" | detail

stop_fake
step "Discord down: post user_expired; it is stored, not delivered"
answer=$(post user_expired)
[[ $answer == *'"accepted":1'* ]] || die "answer: $answer"
sleep 3
delivered h5b5cf44_expired && die "delivered while the fake Discord was down"
compose exec -T marzban-discord-relay marzban-discord-relay outbox stats >"$work/stats" 2>&1
awk '$1 == "default" && $2 >= 1 { found = 1 } END { exit !found }' "$work/stats" ||
  die "nothing pending: $(cat "$work/stats")"
ok
detail <"$work/stats"

step "stop the stack (SIGTERM, 20 s grace)"
stop_began=$(date +%s.%N)
compose stop >/dev/null 2>&1
stop_seconds=$(since "$stop_began")
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$(container)")
[[ $exit_code == 0 ]] || die "exited with $exit_code"
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 5) }' || die "took $stop_seconds s to stop"
ok "exit code 0"
echo "compose stop took $stop_seconds s" | detail

step "down, up again, Discord back: the queued message arrives"
compose down >/dev/null 2>&1
compose up -d >/dev/null 2>&1 || die "compose up failed"
start_fake
wait_for 30 delivered h5b5cf44_expired || die "the queued user_expired was not delivered after the restart"
ok "$(wc -l <"$received") messages in all"
log_lines 'deliver|listen' 4

step "docker health check says healthy; /readyz answers 200"
health() { [[ $(docker inspect -f '{{.State.Health.Status}}' "$(container)") == healthy ]]; }
wait_for 60 health || die "health: $(docker inspect -f '{{json .State.Health}}' "$(container)")"
[[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/readyz) == 200 ]] || die "/readyz is not 200"
ok

step "the logs hold neither the secret nor the webhook token"
logs=$(compose logs --no-color 2>&1)
[[ $logs != *"$secret"* && $logs != *"$token"* ]] || die "a secret is in the logs"
ok "$(wc -l <<<"$logs") lines"

# --- a volume an older image made (0755): the warning says what to run on the host, and it works -
step "a 0755 volume: the warning's host command makes it 0700"
chmod 755 "$(volume_dir)"
compose restart >/dev/null 2>&1 || die "compose restart failed"
wait_for 20 logged 'can be used by other users (mode 755)' || die "no warning about a 0755 volume"
# The warning names the compose file's volume; this run's project has its own.
hint="sudo chmod 700 \"\$(docker volume inspect -f '{{.Mountpoint}}' marzban-discord-relay_relay-data)\""
logged "$hint" || die "the warning does not say: $hint"
chmod 700 "$(docker volume inspect -f '{{.Mountpoint}}' "$volume")"
warnings=$(open_folder_warnings)
compose restart >/dev/null 2>&1 || die "compose restart failed"
wait_for 30 healthz || die "/healthz did not answer"
[[ $(open_folder_warnings) == "$warnings" ]] || die "still warned after the chmod"
[[ $(stat -c '%a' "$(volume_dir)") == 700 ]] || die "the volume is $(stat -c '%a' "$(volume_dir)")"
ok "no warning after the restart"
log_lines 'can be used by other users'

# --- docs/DEPLOY.md's compose secrets and bind mount ------------------------------------------------
compose down >/dev/null 2>&1
env_file >"$work/.env"
mkdir -p "$work/secrets" "$work/data"
chmod 700 "$work/data"
printf '%s\n' "$secret" >"$work/secrets/webhook_secret"
printf '%s\n' "http://fake-discord:$port/api/webhooks/112233445566778899/$token" >"$work/secrets/discord_webhook_url"
chmod 600 "$work/secrets/"*
extra_override=$work/secrets.override.yml
cat >"$extra_override" <<'EOF'
services:
  marzban-discord-relay:
    environment:
      WEBHOOK_SECRET_FILE: /run/secrets/webhook_secret
      DISCORD_WEBHOOK_URL_FILE: /run/secrets/discord_webhook_url
    secrets: [webhook_secret, discord_webhook_url]
    volumes:
      - ./data:/data
secrets:
  webhook_secret:
    file: ./secrets/webhook_secret
  discord_webhook_url:
    file: ./secrets/discord_webhook_url
EOF

step "secrets of mode 0600 owned by root: the error says to chown"
compose up -d >/dev/null 2>&1 || die "compose up failed"
wait_for 20 logged 'sudo chown 65532:65532' || die "no chown hint for the secret file"
ok
log_lines 'sudo chown 65532:65532'

step "secrets chowned, ./data owned by root: the error says to chown"
chown 65532:65532 "$work/secrets/"*
compose up -d --force-recreate >/dev/null 2>&1 || die "compose up failed"
wait_for 20 logged 'sudo chown -R 65532:65532 ./data' || die "no chown hint for the data folder"
ok
log_lines 'sudo chown -R 65532:65532 ./data'

step "./data chowned too: healthy, and a post is delivered"
chown 65532:65532 "$work/data"
compose up -d --force-recreate >/dev/null 2>&1 || die "compose up failed"
wait_for 30 healthz || die "/healthz did not answer"
answer=$(post reached_days_left)
[[ $answer == *'"accepted":1'* ]] || die "answer: $answer"
wait_for 20 delivered h5b5cf44_days || die "reached_days_left was not delivered"
[[ -s $work/data/outbox.sqlite3 ]] || die "no outbox in ./data"
ok "outbox in ./data"
[[ $(open_folder_warnings) == 0 ]] || die "the relay warned about ./data, which docs/DEPLOY.md makes 0700"

step "tear down (containers, volume, image)"
compose down --remove-orphans >/dev/null 2>&1
extra_override=
compose down --volumes --rmi all --remove-orphans >/dev/null 2>&1
[[ -z $(docker ps -aq --filter "label=com.docker.compose.project=$project") ]] || die "containers left"
[[ -z $(docker volume ls -q --filter "label=com.docker.compose.project=$project") ]] || die "volume left"
ok

say "all steps passed in $(since "$started") s"
