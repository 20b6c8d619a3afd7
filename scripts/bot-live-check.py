#!/usr/bin/env python3
"""The bot against a real Marzban 0.8.4 (the marzban-live harness), all on 127.0.0.1.

Starts Marzban (its webhooks to the relay) and the relay (a dry run: what it would send to Discord
is logged, nothing leaves the machine; Discord's REST base points at a closed local port), creates
alice with a 1 MiB limit and pushes 1.5 MB through the fake core until Marzban marks her limited
and sends `user_limited`. Then, as Discord would, it POSTs signed interactions (a test key whose
public half is the relay's DISCORD_PUBLIC_KEY):

1. a member without the moderator role: `/user alice` and a Reset click are refused, alice is
   unchanged at the panel;
2. the moderator: chooses alice in the "Act on a user..." menu under the `user_limited` message
   (click 1: her card, as `/user alice` gives it), then Reset on that card (click 2; the click
   carries the card's buttons as Discord does): her used_traffic is 0 at the panel's API, the panel's
   `data_usage_reset` reaches the relay and is rendered, and the audit line is posted;
3. then +10 GiB (her data_limit is exactly 10 GiB more at the API) and Delete, confirmed (the
   panel no longer has her; its `user_updated` and `user_deleted` are rendered), each audited.

Usage: bot-live-check.py HARNESS RELAY_BINARY   (HARNESS: a marzban-live folder with src/ and venv/
built, see its README). Needs python3 with `cryptography`. Stops what it started, by PID.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PANEL_PORT, RELAY_PORT = 8961, 8962
PANEL = f"http://127.0.0.1:{PANEL_PORT}"
RELAY = f"http://127.0.0.1:{RELAY_PORT}"
APPLICATION, GUILD, MODERATOR_ROLE = "1234567890123456789", "1100000000000000001", "1400000000000000001"
KEY = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests/fixtures/discord-interactions"
started = time.monotonic()


def say(text):
    print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)


def http(method, url, body=None, headers=None, form=False):
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
        headers.setdefault("content-type", "application/x-www-form-urlencoded" if form else "application/json")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            try:
                return response.status, json.loads(text or b"null")
            except ValueError:
                return response.status, text.decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as err:
        return 0, str(err)


def until(what, probe, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise SystemExit(f"FAILED: {what} not seen within {timeout} s")


class Panel:
    def __init__(self):
        status, answer = http("POST", f"{PANEL}/api/admin/token", {"username": "admin", "password": "admin"}, form=True)
        assert status == 200, answer
        self.auth = {"authorization": f"Bearer {answer['access_token']}"}

    def user(self, name):
        return http("GET", f"{PANEL}/api/user/{name}", headers=self.auth)[1]

    def create(self, body):
        return http("POST", f"{PANEL}/api/user", body, headers=self.auth)


def sign_and_post(interaction):
    body = json.dumps(interaction).encode()
    timestamp = str(int(time.time()))
    signature = KEY.sign(timestamp.encode() + body).hex()
    headers = {"x-signature-ed25519": signature, "x-signature-timestamp": timestamp, "content-type": "application/json"}
    request = urllib.request.Request(f"{RELAY}/interactions", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


NEXT_ID = [1300000000000000100]


def interaction(fixture, roles):
    value = json.loads((FIXTURES / fixture).read_text())
    NEXT_ID[0] += 1
    value["id"] = str(NEXT_ID[0])
    value["member"]["roles"] = roles
    return value


def command(roles):
    value = interaction("command_user.json", roles)
    value["data"]["options"][0]["value"] = "alice"
    return value


def choose(panel, username, roles):
    """Choosing `username` in the "Act on a user..." menu under a message of `panel`."""
    value = interaction("component_select.json", roles)
    value["data"]["custom_id"] = f"act:{panel}"
    value["data"]["values"] = [username]
    value["message"]["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return value


def click(custom_id, components, roles):
    value = interaction("component_button.json", roles)
    value["data"]["custom_id"] = custom_id
    value["message"]["components"] = components
    value["message"]["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return value


def buttons(response):
    rows = response.get("data", {}).get("components") or []
    return [button["custom_id"] for row in rows for button in row["components"]]


def start_relay(work, binary):
    public = KEY.public_key().public_bytes_raw().hex()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RUST_LOG": "info",
        "LISTEN_ADDR": f"127.0.0.1:{RELAY_PORT}",
        "DATA_DIR": str(work / "data"),
        "WEBHOOK_SECRET": "harness-secret",
        "PANEL_NAME": "marzban-live",
        "PANEL_API_URL": PANEL,
        "PANEL_API_USERNAME": "admin",
        "PANEL_API_PASSWORD": "admin",
        "PANEL_API_FAMILY": "marzban",
        "DISCORD_PUBLIC_KEY": public,
        "DISCORD_APPLICATION_ID": APPLICATION,
        "DISCORD_GUILD_IDS": GUILD,
        "DISCORD_ACTORS": f"role:{MODERATOR_ROLE}",
        "DISCORD_ACTIONS": "reset,traffic,delete",
        # Deferred answers would be edited here: a closed local port, never Discord.
        "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
    }
    log = open(work / "relay.log", "w")
    return subprocess.Popen([binary], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def relay_log(work):
    return (work / "relay.log").read_text(errors="replace")


def dry_run_lines(work, needle):
    return [line for line in relay_log(work).splitlines() if "would send" in line and needle in line]


def shown(line):
    """What a dry-run line would show in Discord: its content and its embeds' titles and descriptions."""
    message = json.loads(line.split("would send ", 1)[1])
    parts = [f"content {message['content']!r}"] if message.get("content") else []
    parts += [f"{e.get('title')!r} ({e.get('description', '')!r})" for e in message.get("embeds", [])]
    return "; ".join(parts)


def main():
    harness, binary = Path(sys.argv[1]).resolve(), str(Path(sys.argv[2]).resolve())
    work = Path(tempfile.mkdtemp(prefix="bot-live-"))
    env = dict(os.environ, WEBHOOK_ADDRESS=f"{RELAY}/webhook")
    relay = None
    try:
        relay = start_relay(work, binary)
        until("the relay listening", lambda: relay.poll() is None and http("GET", f"{RELAY}/healthz")[0] == 200, 30)
        say(f"relay up on {RELAY} (pid {relay.pid}), a dry run; log {work / 'relay.log'}")
        out = subprocess.run([harness / "start.sh", "--port", str(PANEL_PORT)], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"FAILED: start.sh: {out.stderr.strip()}")
        say(out.stdout.strip().splitlines()[-1])
        panel = Panel()
        status, _ = panel.create({"username": "alice", "proxies": {"vless": {}}, "inbounds": {"vless": ["VLESS TCP"]},
                                  "data_limit": 1048576, "expire": None})
        say(f"POST /api/user alice (data_limit 1 MiB): HTTP {status}")
        (harness / "run/traffic.json").write_text(json.dumps({"alice": 1_500_000}))
        limited = until("alice limited", lambda: (u := panel.user("alice"))["status"] == "limited" and u)
        say(f"alice at the panel: status {limited['status']}, used_traffic {limited['used_traffic']}")
        line = until("user_limited rendered by the relay", lambda: dry_run_lines(work, "Data limit reached: alice"))
        say(f"the panel's user_limited reached the relay and was rendered: {shown(line[-1])}")

        stranger = ["1400000000000000099"]
        refused = sign_and_post(command(stranger))
        say(f"no role, /user alice -> {refused['data']['content']}")
        issued = int(time.time())
        refused = sign_and_post(click(f"card:reset:{issued}:alice", [], stranger))
        say(f"no role, Reset click -> {refused['data']['content']}")
        after = panel.user("alice")
        assert after["used_traffic"] == limited["used_traffic"], after
        say(f"alice unchanged: used_traffic {after['used_traffic']}, status {after['status']}")

        card = sign_and_post(choose("marzban-live", "alice", [MODERATOR_ROLE]))
        embed = card["data"]["embeds"][0]
        usage = next(f["value"] for f in embed["fields"] if f["name"] == "Usage")
        say(f"click 1, alice in the user_limited message's menu -> card type {card['type']}: {embed['title']}, {usage}, buttons {buttons(card)}")
        looked_up = sign_and_post(command([MODERATOR_ROLE]))
        say(f"(/user alice gives the same card: {looked_up['data']['embeds'][0]['title']})")
        reset = next(b for b in buttons(card) if b.startswith("card:reset:"))
        done = sign_and_post(click(reset, card["data"]["components"], [MODERATOR_ROLE]))
        usage = next(f["value"] for f in done["data"]["embeds"][0]["fields"] if f["name"] == "Usage")
        say(f"click 2, Reset -> type {done['type']}: {done['data']['content']!r}, {usage}")
        after = panel.user("alice")
        say(f"GET /api/user/alice: used_traffic {after['used_traffic']}, status {after['status']}")
        assert after["used_traffic"] == 0, after
        line = until("data_usage_reset rendered", lambda: dry_run_lines(work, "Data usage reset: alice"))
        say(f"the panel's data_usage_reset reached the relay and was rendered: {shown(line[-1])}")
        line = until("the audit line", lambda: dry_run_lines(work, "reset alice's usage"))
        say(f"the audit line: {line[-1].split('would send ', 1)[1]}")

        # The other two actions on the same real panel: Add traffic, then Delete (asked first).
        plus = next(b for b in buttons(done) if b.startswith("card:traffic10:"))
        added = sign_and_post(click(plus, done["data"]["components"], [MODERATOR_ROLE]))
        after = panel.user("alice")
        say(f"+10 GiB -> {added['data']['content']!r}; data_limit {after['data_limit']} (1 MiB + 10 GiB = {1048576 + 10 * 2**30})")
        assert after["data_limit"] == 1048576 + 10 * 2**30, after
        delete = next(b for b in buttons(added) if b.startswith("card:delete:"))
        asked = sign_and_post(click(delete, added["data"]["components"], [MODERATOR_ROLE]))
        say(f"Delete -> {asked['data']['content']!r}, buttons {buttons(asked)}; alice still there: {panel.user('alice')['username']}")
        yes = next(b for b in buttons(asked) if b.startswith("card:delete!:"))
        gone = sign_and_post(click(yes, asked["data"]["components"], [MODERATOR_ROLE]))
        say(f"Yes, delete -> {gone['data']['content']!r}, buttons {gone['data']['components']}; GET alice: {panel.user('alice')}")
        line = until("user_deleted rendered", lambda: dry_run_lines(work, "User deleted: alice"))
        say(f"the panel's events reached the relay and were rendered: {shown(line[-1])}")
        audit = [l for l in relay_log(work).splitlines() if "audit:" in l]
        say("logged:\n    " + "\n    ".join(a.split("] ", 1)[-1] for a in audit))
        lines = [l.split("would send ", 1)[1] for l in relay_log(work).splitlines() if "would send" in l and '"content"' in l]
        say("audit lines posted:\n    " + "\n    ".join(json.loads(l)["content"] for l in lines))
        say("OK")
    finally:
        subprocess.run([harness / "stop.sh", "marzban", "xray"], capture_output=True)
        if relay is not None:
            relay.terminate()
            relay.wait(15)


if __name__ == "__main__":
    main()
