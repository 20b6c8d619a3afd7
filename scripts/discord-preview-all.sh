#!/bin/sh
# Draws, as Discord shows them, what the relay sends for every capture in tests/fixtures/ (all
# three panels), an edit after the user's earlier state (the change list), digests, forum posts
# and both reports: in every language, on a desktop window and on a 390 px phone.
#
#   scripts/discord-preview-all.sh [RELAY_BINARY] [OUT_DIR]
#
# RELAY_BINARY defaults to target/debug/marzban-discord-relay, OUT_DIR to /tmp/discord-preview.
# Writes OUT_DIR/<page>-<lang>-<width>.png (and the .html beside it); look at every one. Needs
# chromium and the Noto fonts (fonts-noto-core, fonts-noto-cjk, fonts-noto-color-emoji).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
relay=${1:-$root/target/debug/marzban-discord-relay}
out=${2:-/tmp/discord-preview}
fixtures=$root/tests/fixtures
mkdir -p "$out"
# Render as the captures were received, so days left read as they did then.
at=2026-11-28T12:00:00Z
export PREVIEW_NOW=1795867200
export PANEL_NAME=main

render() { "$relay" render --received-at "$at" "$@" 2>/dev/null || true; }

# Each page: a few messages, so each picture stays readable.
page() {
    name=$1
    shift
    for lang in en ru fa zh; do
        TEMPLATE_LANG=$lang "$@" >"$out/$name-$lang.txt"
        for width in 860 390; do
            # Tall enough for the page's messages (a phone's are about twice as tall).
            height=$((($(grep -c '^# to destination' "$out/$name-$lang.txt") + 1) * (width == 390 ? 330 : 230)))
            python3 "$root/scripts/discord-preview.py" --width "$width" "$out/$name-$lang.txt" >"$out/$name-$lang-$width.html"
            chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$width,$height" \
                --screenshot="$out/$name-$lang-$width.png" "file://$out/$name-$lang-$width.html" >/dev/null 2>&1
        done
    done
}

marzban_a() { for f in user_created user_updated user_disabled user_enabled user_expired user_limited; do
    render "$fixtures/marzban-0.8.4/$f.json"; done; }
marzban_b() { for f in data_usage_reset data_reset_by_next reached_days_left reached_usage_percent \
    subscription_revoked user_deleted; do render "$fixtures/marzban-0.8.4/$f.json"; done; }
# An edit after the state the user was created in: the change list.
edits() {
    render "$fixtures/marzban-0.8.4/user_created.json" "$fixtures/marzban-0.8.4/user_updated.json"
    render "$fixtures/pasarguard-5.2.1/003_user_created.json" "$fixtures/pasarguard-5.2.1/004_user_updated.json"
    render "$fixtures/pasarguard-5.2.1/004_user_updated.json" "$fixtures/pasarguard-5.2.1/009_user_updated.json"
    render "$fixtures/marzneshin-0.7.4/003_user_created.json" "$fixtures/marzneshin-0.7.4/004_user_updated.json"
    render "$fixtures/marzneshin-0.7.4/004_user_updated.json" "$fixtures/marzneshin-0.7.4/006_user_updated.json"
}
panel_files() { for f in "$fixtures/$1"/$2; do render "$f"; done; }
pasarguard_a() { panel_files pasarguard-5.2.1 '00[1-7]_*.json'; }
pasarguard_b() { panel_files pasarguard-5.2.1 '00[89]_*.json'; panel_files pasarguard-5.2.1 '01[0-4]_*.json'; }
pasarguard_c() { panel_files pasarguard-5.2.1 '01[5-9]_*.json'; panel_files pasarguard-5.2.1 '02?_*.json'; }
marzneshin_a() { panel_files marzneshin-0.7.4 '00[1-8]_*.json'; }
marzneshin_b() { panel_files marzneshin-0.7.4 '009_*.json'; panel_files marzneshin-0.7.4 '01?_*.json'; }
digests() { for action in user_expired user_limited user_created; do
    DIGEST_THRESHOLD=3 render --action "$action" --burst 12; done; }
forum() { DISCORD_FORUM=true DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/1/preview marzban_a; }
reports() { render --report daily; render --report weekly; }

page marzban-a marzban_a
page marzban-b marzban_b
page edits edits
page pasarguard-a pasarguard_a
page pasarguard-b pasarguard_b
page pasarguard-c pasarguard_c
page marzneshin-a marzneshin_a
page marzneshin-b marzneshin_b
page digests digests
page forum forum
page reports reports
echo "pictures in $out"
