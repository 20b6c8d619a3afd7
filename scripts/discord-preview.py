#!/usr/bin/env python3
"""Draws Discord request bodies the way Discord's dark theme shows them, as an HTML page.

Input: what `marzban-discord-relay render` prints (one or more "# to destination NAME" lines, each
followed by a JSON request body), or a JSON array of request bodies, on standard input or in files.
Output: an HTML page on standard output. To look at it:

    marzban-discord-relay render --action user_created | scripts/discord-preview.py > /tmp/p.html
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,1400 \
        --screenshot=/tmp/p.png file:///tmp/p.html

`--width 390` lays the page out as Discord's phone client does on a screen that wide: the message
column starts after the avatar (64 px), embeds take the rest of the width less the margin, and
every line wraps at the embed's edge (long words and links break anywhere, as on the phone); give
chromium the same `--window-size` width. The default, 860, is a desktop window: embeds at most
516 px wide. `scripts/discord-preview-all.sh` draws every capture of `tests/fixtures/` this way.

Discord renders markdown in the content, the title, the description and field values, but not in
the author name, field names' emphasis aside, or the footer; the page does the same. Times
(`<t:UNIX:STYLE>`) are shown as Discord would in UTC, mentions as pills. Layout is left to right,
as Discord lays out messages. Relative times are counted from now, or from PREVIEW_NOW (unix
seconds) when it is set, to match `render --received-at`.
"""

import datetime
import html
import json
import os
import re
import sys


def parse_input(text):
    text = text.strip()
    if text.startswith("["):
        return [("", body) for body in json.loads(text)]
    bodies = []
    decoder = json.JSONDecoder()
    destination, at = "", 0
    while at < len(text):
        if text.startswith("#", at):
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            destination = text[at + 1 : end].strip()
            at = end + 1
        elif text[at].isspace():
            at += 1
        else:
            body, at = decoder.raw_decode(text, at)
            bodies.append((destination, body))
    return bodies


def preview_now():
    """When the reader looks: now, or PREVIEW_NOW (unix seconds), so that relative times
    (`<t:…:R>`) read as they did when a saved body was received (`render --received-at`)."""
    at = os.environ.get("PREVIEW_NOW")
    if at:
        return datetime.datetime.fromtimestamp(int(at), datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc)


def relative(seconds):
    """How Discord's English client words a span in `<t:…:R>` (moment.js's thresholds)."""
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    steps = [
        (seconds < 45, "a few seconds"),
        (seconds < 90, "a minute"),
        (minutes < 45, f"{round(minutes)} minutes"),
        (minutes < 90, "an hour"),
        (hours < 22, f"{round(hours)} hours"),
        (hours < 36, "a day"),
        (days < 26, f"{round(days)} days"),
        (days < 45, "a month"),
        (days < 320, f"{round(days / 30.4)} months"),
        (days < 548, "a year"),
    ]
    return next((words for matches, words in steps if matches), f"{round(days / 365)} years")


def timestamp(match):
    at = datetime.datetime.fromtimestamp(int(match.group(1)), datetime.timezone.utc)
    style = match.group(2) or "f"
    now = preview_now()
    if style == "R":
        seconds = (at - now).total_seconds()
        span = relative(abs(seconds))
        shown = f"in {span}" if seconds >= 0 else f"{span} ago"
    elif style == "D":
        shown = at.strftime("%B %-d, %Y")
    elif style == "d":
        shown = at.strftime("%m/%d/%Y")
    elif style == "F":
        shown = at.strftime("%A, %B %-d, %Y %-I:%M %p")
    else:
        shown = at.strftime("%B %-d, %Y %-I:%M %p")
    return f'<span class="time">{shown}</span>'


def markdown(text):
    """A small subset of Discord markdown: escapes, bold, italic, underline, code, links, times,
    mentions, list lines and headings."""
    escaped = {}

    def keep(match):
        key = f"\x00{len(escaped)}\x00"
        escaped[key] = html.escape(match.group(1))
        return key

    text = re.sub(r"\\([\\*_`~|<>#\-\[\]().@:!])", keep, text)
    text = html.escape(text, quote=False)
    text = re.sub(r"&lt;t:(-?\d+)(?::([tTdDfFR]))?&gt;", timestamp, text)
    text = re.sub(r"&lt;@&amp;(\d+)&gt;", r'<span class="mention">@role \1</span>', text)
    text = re.sub(r"&lt;@!?(\d+)&gt;", r'<span class="mention">@user \1</span>', text)
    text = re.sub(r"@(everyone|here)", r'<span class="mention">@\1</span>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"__(.+?)__", r"<u>\1</u>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    text = re.sub(r"\b_(.+?)_\b", r"<i>\1</i>", text)
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)]+)\)", r'<a href="\2">\1</a>', text)
    lines = []
    for line in text.split("\n"):
        if re.match(r"^(- |\* )", line):
            line = "• " + line[2:]
        elif re.match(r"^#{1,3} ", line):
            line = f"<b class='h'>{line.lstrip('#').strip()}</b>"
        lines.append(line)
    text = "<br>".join(lines)
    for key, value in escaped.items():
        text = text.replace(key, value)
    return text


def plain(text):
    return html.escape(text or "")


def embed_html(embed):
    colour = embed.get("color")
    bar = f"#{colour:06x}" if isinstance(colour, int) else "#1e1f22"
    parts = [f'<div class="embed" style="border-left-color:{bar}">']
    author = embed.get("author")
    if author:
        parts.append(f'<div class="author">{plain(author.get("name"))}</div>')
    if embed.get("title"):
        parts.append(f'<div class="title">{markdown(embed["title"])}</div>')
    if embed.get("description"):
        parts.append(f'<div class="description">{markdown(embed["description"])}</div>')
    fields = embed.get("fields") or []
    if fields:
        parts.append('<div class="fields">')
        column = 0
        for field in fields:
            inline = field.get("inline") and column < 3
            column = column + 1 if inline else 0
            span = "inline" if field.get("inline") else "block"
            parts.append(
                f'<div class="field {span}"><div class="fname">{markdown(field.get("name", ""))}</div>'
                f'<div class="fvalue">{markdown(field.get("value", ""))}</div></div>'
            )
        parts.append("</div>")
    footer = embed.get("footer", {}).get("text")
    when = embed.get("timestamp")
    if footer or when:
        shown = [plain(footer)] if footer else []
        if when:
            at = datetime.datetime.fromisoformat(when.replace("Z", "+00:00")[:26] + "+00:00" if "." in when else when.replace("Z", "+00:00"))
            shown.append(at.strftime("%m/%d/%Y %-I:%M %p"))
        parts.append(f'<div class="footer">{" • ".join(shown)}</div>')
    parts.append("</div>")
    return "".join(parts)


def message_html(destination, body):
    name = body.get("username") or "Marzban relay"
    parts = ['<div class="message">', f'<div class="dest">{plain(destination)}</div>']
    parts.append(f'<div class="who">{plain(name)} <span class="bot">APP</span></div>')
    if body.get("thread_name"):
        parts.append(f'<div class="thread">new post: {plain(body["thread_name"])}</div>')
    if body.get("content"):
        parts.append(f'<div class="content">{markdown(body["content"])}</div>')
    for embed in body.get("embeds") or []:
        parts.append(embed_html(embed))
    for row in body.get("components") or []:
        parts.append(row_html(row))
    parts.append("</div>")
    return "".join(parts)


def row_html(row):
    """An action row as Discord draws it closed: a select menu shows its placeholder (the options
    are listed below it in grey, as they would open), a button its label."""
    parts = ['<div class="row">']
    for item in row.get("components") or []:
        if item.get("type") == 3:
            options = ", ".join(plain(o.get("label")) for o in item.get("options") or [])
            parts.append(
                f'<div class="select"><span>{plain(item.get("placeholder") or "Make a selection")}</span>'
                f'<span class="chevron">⌄</span></div><div class="options">{options}</div>'
            )
        elif item.get("type") == 2:
            # Discord's button styles: 1 primary, 2 secondary, 3 success, 4 danger, 5 link.
            style = {1: "primary", 3: "success", 4: "danger"}.get(item.get("style"), "secondary")
            parts.append(f'<span class="button {style}">{plain(item.get("label"))}</span>')
    parts.append("</div>")
    return "".join(parts)


STYLE = """
body { background:#313338; color:#dbdee1; font-family:"gg sans","Noto Sans","Noto Sans Arabic",
  "Noto Color Emoji","Noto Sans CJK SC",sans-serif; font-size:16px; margin:16px 0; width:WIDTHpx;
  overflow-wrap:anywhere; word-break:normal; }
.message { margin-bottom:22px; padding:0 GUTTERpx 0 COLUMNpx; position:relative; box-sizing:border-box;
  width:100%; }
.message::before { content:""; position:absolute; left:AVATARpx; top:16px; width:40px; height:40px;
  border-radius:50%; background:#5865f2; }
.dest { color:#80848e; font-size:12px; }
.who { color:#f2f3f5; font-weight:600; margin:2px 0 4px; }
.bot { background:#5865f2; color:#fff; font-size:10px; padding:1px 4px; border-radius:3px; }
.thread { color:#00a8fc; font-size:14px; }
.content { margin-bottom:4px; }
.embed { background:#2b2d31; border-left:4px solid; border-radius:4px; padding:8px 16px 16px 12px;
  max-width:EMBEDpx; margin-top:4px; box-sizing:border-box; }
.author { font-size:14px; font-weight:600; margin-top:8px; color:#f2f3f5; }
.title { font-weight:600; margin-top:8px; color:#f2f3f5; }
.description { font-size:14px; margin-top:8px; white-space:normal; }
.fields { display:grid; grid-template-columns:repeat(3, minmax(0, 1fr)); gap:8px; margin-top:8px; }
.field { font-size:14px; min-width:0; }
.field.block { grid-column:1 / -1; }
.fname { font-weight:600; color:#f2f3f5; margin-bottom:2px; }
.footer { font-size:12px; color:#b5bac1; margin-top:8px; }
.time { background:#3f4147; border-radius:3px; padding:0 2px; }
.mention { background:#3c4270; color:#c9cdfb; border-radius:3px; padding:0 2px; }
code { background:#1e1f22; padding:0 3px; border-radius:3px; font-size:85%; }
a { color:#00a8fc; text-decoration:none; }
.row { margin-top:8px; max-width:520px; }
.select { background:#1e1f22; border:1px solid #1e1f22; border-radius:4px; padding:8px 12px;
  color:#949ba4; display:flex; justify-content:space-between; }
.chevron { color:#dbdee1; }
.options { font-size:12px; color:#80848e; margin-top:4px; }
.button { display:inline-block; background:#4e5058; color:#fff; border-radius:3px; padding:4px 14px;
  margin-right:8px; font-size:14px; }
.button.primary { background:#5865f2; }
.button.success { background:#248046; }
.button.danger { background:#da373c; }
"""

# Discord's phone client below this width: a narrower gutter, and embeds as wide as the screen lets.
PHONE_MAX_WIDTH = 600


def style(width):
    """The page's style for a window `width` px wide: desktop (avatar column 72 px, embeds at most
    516 px) or phone (avatar column 64 px, 12 px right margin, embeds the rest of the width)."""
    phone = width <= PHONE_MAX_WIDTH
    column, gutter, avatar = (64, 12, 12) if phone else (72, 16, 16)
    embed = width - column - gutter if phone else 516
    values = {"WIDTH": width, "COLUMN": column, "GUTTER": gutter, "AVATAR": avatar, "EMBED": embed}
    css = STYLE
    for key, value in values.items():
        css = css.replace(f"{key}px", f"{value}px")
    return css


def main():
    args = sys.argv[1:]
    width = 860
    if args[:1] == ["--width"] and len(args) >= 2:
        width = max(200, min(int(args[1]), 4000))
        args = args[2:]
    sources = args or ["-"]
    bodies = []
    for source in sources:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
        bodies.extend(parse_input(text))
    page = [f"<!doctype html><meta charset='utf-8'><style>{style(width)}</style><body>"]
    page.extend(message_html(destination, body) for destination, body in bodies)
    print("".join(page))


if __name__ == "__main__":
    main()
