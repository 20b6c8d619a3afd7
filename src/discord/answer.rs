//! The one place where Discord's answers are classified into what the delivery engine should
//! do, with the rate-limit headers and waits they carry, and the redaction of webhook tokens from
//! anything upstream echoes back.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// How much of an error body is kept for logs and dead letters.
const DETAIL_MAX_CHARS: usize = 500;

/// The longest wait an answer can impose on a destination. Discord asks for seconds; anything
/// beyond an hour is a broken proxy or a hostile server, and is cut to this (and logged).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The shortest wait after a 429, whatever it said: `retry_after: 0` would otherwise make the
/// relay hammer a server that is refusing it.
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Runs of token characters at least this long are redacted from upstream text wherever they
/// stand (Discord's webhook tokens are 68 characters).
const TOKEN_LIKE_MIN_CHARS: usize = 60;

/// A wait an answer asked for, cut to [`MAX_WAIT`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait {
    /// What the relay waits: at most [`MAX_WAIT`].
    pub duration: Duration,
    /// The answer asked for more than [`MAX_WAIT`].
    pub capped: bool,
}

impl Wait {
    /// A wait of `seconds`, which must be finite and not negative (anything else is no wait at all).
    pub fn from_secs(seconds: f64) -> Option<Self> {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        let capped = seconds > MAX_WAIT.as_secs_f64();
        let duration = if capped { MAX_WAIT } else { Duration::try_from_secs_f64(seconds).unwrap_or(MAX_WAIT) };
        Some(Self { duration, capped })
    }

    /// This wait, or `floor` if it is shorter.
    pub fn at_least(self, floor: Duration) -> Self {
        Self { duration: self.duration.max(floor), ..self }
    }
}

/// What Discord's rate-limit headers said about a webhook's bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimit {
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset-After`: time until the window resets.
    pub reset_after: Option<Wait>,
}

impl RateLimit {
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            remaining: header_str(headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok()),
            reset_after: header_str(headers, "x-ratelimit-reset-after").and_then(parse_seconds),
        }
    }
}

/// Who a 429 blames, from `X-RateLimit-Scope` and the body's `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This webhook sent too much.
    User,
    /// The whole application or IP sent too much.
    Global,
    /// A resource shared with others is limited; not counted against us by Discord.
    Shared,
}

impl Scope {
    /// The scope as Discord names it.
    pub fn label(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Global => "global",
            Scope::Shared => "shared",
        }
    }
}

/// What the delivery engine should do after one request. Decided here and nowhere else.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: Discord has the message (even if the body did not parse).
    Delivered,
    /// 429: wait `retry_after` (at least [`MIN_RETRY_AFTER`]). `None` means no `retry_after` and no
    /// `Retry-After`: a ban, so cool down for a long time.
    RateLimited { retry_after: Option<Wait>, scope: Scope },
    /// 400 and other 4xx but 401/403/404: this payload will never be accepted as it is.
    Rejected { status: u16, detail: String },
    /// 401, 403, 404: the webhook is gone or its token is wrong; or a 400 whose code says the
    /// destination is set up wrong for its channel (forum mode). Stop sending to it.
    Gone { status: u16, detail: String },
    /// 5xx (`status`), timeout or connection error (no status): try again later.
    Transient { status: Option<u16>, detail: String },
    /// The thread the message was sent to cannot take it: deleted (`404`, code 10003 Unknown
    /// Channel) or locked / archived for good (codes 160005 Thread is locked, 50083 Thread is
    /// archived, whatever the status). A forum destination makes a new post; any other pauses.
    ThreadUnusable { status: u16, locked: bool, detail: String },
    /// 400, code 200001: Discord's AutoMod blocked the title (`thread_name`) of the forum post the
    /// message would have made. The message itself was not judged: with another title it may pass.
    TitleBlocked { detail: String },
}

impl Outcome {
    /// The outcome with its detail (the text quoted from the answer) passed through `change`.
    pub fn map_detail(self, change: impl FnOnce(String) -> String) -> Self {
        match self {
            Outcome::Rejected { status, detail } => Outcome::Rejected { status, detail: change(detail) },
            Outcome::Gone { status, detail } => Outcome::Gone { status, detail: change(detail) },
            Outcome::Transient { status, detail } => Outcome::Transient { status, detail: change(detail) },
            Outcome::ThreadUnusable { status, locked, detail } => {
                Outcome::ThreadUnusable { status, locked, detail: change(detail) }
            }
            Outcome::TitleBlocked { detail } => Outcome::TitleBlocked { detail: change(detail) },
            other => other,
        }
    }
}

/// One answer from Discord: the outcome and the bucket state its headers reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub outcome: Outcome,
    pub rate_limit: RateLimit,
    /// The `channel_id` of the created message (with `?wait=true`): for a message that created a
    /// forum post, the new post's id. `None` when the answer had none that reads as an id.
    pub channel_id: Option<u64>,
}

/// Discord's error codes the relay acts on (`code` in an error body).
const UNKNOWN_CHANNEL: u64 = 10003;
const THREAD_ARCHIVED: u64 = 50083;
const THREAD_LOCKED: u64 = 160005;
/// Title was blocked by automatic moderation (a forum post's `thread_name`).
const TITLE_BLOCKED: u64 = 200001;

/// Codes that refuse every message of a destination alike, because the destination is set up
/// wrong for its channel: pausing keeps the rows, where dead-lettering would lose every event.
/// Each with the hint that says how to fix it.
const SETUP_REFUSALS: [(u64, &str); 5] = [
    // Webhooks posted to forum channels must have a thread_name or thread_id.
    (
        220001,
        "the webhook belongs to a forum channel: set forum = true on the destination (or DISCORD_FORUM=true for \
         DISCORD_WEBHOOK_URL); an admin's own webhook (their discord_webhook in the panel) must be a text \
         channel's",
    ),
    // Webhooks posted to forum channels cannot have both a thread_name and thread_id.
    (220002, "a forum destination cannot post into a fixed thread: remove thread_id from its URL"),
    // Webhooks can only create threads in forum channels.
    (
        220003,
        "forum mode is on but the webhook is not a forum channel's: remove forum = true (or DISCORD_FORUM), or use \
         the webhook of a forum channel",
    ),
    // There are no tags available that can be set by non-moderators.
    (
        40066,
        "the forum requires a tag on every post but only moderators may apply its tags: let everyone use a tag in \
         the forum's settings, or turn off its required tags",
    ),
    // A tag is required to create a forum post in this channel.
    (
        40067,
        "the forum requires a tag on every post: give every action (and digest) a tag in DISCORD_FORUM_TAGS (or \
         the destination's tags), or turn off the forum's required tags in its settings",
    ),
];

/// The `channel_id` of a created message in a 2xx body, if it is a snowflake.
pub fn created_channel_id(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Created {
        channel_id: Option<String>,
    }
    let created: Created = serde_json::from_slice(body).ok()?;
    created.channel_id?.parse().ok().filter(|id| (1..1 << 63).contains(id))
}

/// The `code` of a Discord error body, if it has one.
fn error_code(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Error {
        code: Option<u64>,
    }
    serde_json::from_slice::<Error>(body).ok()?.code
}

/// Classifies an HTTP answer. Pure, so every rule is unit-tested.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let detail = || error_detail(status, body);
    let code = if status.is_client_error() { error_code(body) } else { None };
    match (status.as_u16(), code) {
        (404, Some(UNKNOWN_CHANNEL)) => {
            return Outcome::ThreadUnusable { status: 404, locked: false, detail: detail() };
        }
        (status @ 400..=499, Some(THREAD_LOCKED | THREAD_ARCHIVED)) => {
            return Outcome::ThreadUnusable { status, locked: true, detail: detail() };
        }
        (400, Some(TITLE_BLOCKED)) => return Outcome::TitleBlocked { detail: detail() },
        (status @ 400, Some(code)) => {
            if let Some((_, hint)) = SETUP_REFUSALS.iter().find(|(refused, _)| *refused == code) {
                return Outcome::Gone { status, detail: format!("{}; {hint}", detail()) };
            }
        }
        _ => {}
    }
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        429 => rate_limited(headers, body),
        401 | 403 | 404 => Outcome::Gone { status: status.as_u16(), detail: detail() },
        400..=499 => Outcome::Rejected { status: status.as_u16(), detail: detail() },
        _ => Outcome::Transient { status: Some(status.as_u16()), detail: detail() },
    }
}

fn rate_limited(headers: &HeaderMap, body: &[u8]) -> Outcome {
    #[derive(serde::Deserialize)]
    struct TooManyRequests {
        retry_after: Option<f64>,
        #[serde(default)]
        global: bool,
    }
    let parsed: Option<TooManyRequests> = serde_json::from_slice(body).ok();
    let from_body = parsed.as_ref().and_then(|b| b.retry_after).and_then(Wait::from_secs);
    let retry_after = from_body
        .or_else(|| header_str(headers, "retry-after").and_then(parse_seconds))
        .map(|wait| wait.at_least(MIN_RETRY_AFTER));
    let scope = match header_str(headers, "x-ratelimit-scope") {
        Some("shared") => Scope::Shared,
        Some("global") => Scope::Global,
        _ if parsed.is_some_and(|b| b.global) => Scope::Global,
        _ => Scope::User,
    };
    Outcome::RateLimited { retry_after, scope }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `Retry-After` as delay-seconds, or as an HTTP date (RFC 9110 allows both; a proxy in front of
/// Discord may send the date): the wait until then, none if it is past.
fn parse_seconds(value: &str) -> Option<Wait> {
    if let Ok(seconds) = value.parse::<f64>() {
        return Wait::from_secs(seconds);
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let until = at - time::OffsetDateTime::now_utc();
    Wait::from_secs(until.as_seconds_f64().max(0.0))
}

/// What an error answer said, for logs, dead letters and `/readyz`: Discord's own JSON (its
/// `message`, `code` and `errors`), re-serialised, redacted and without control characters. Any
/// other body (an HTML page, a proxy's text, another encoding) is not quoted at all: only its size
/// is, since such text can carry the request's URL in forms no redaction can be sure to catch.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    let status = status.as_u16();
    if body.iter().all(u8::is_ascii_whitespace) {
        return format!("HTTP {status}");
    }
    let Ok(json @ serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("HTTP {status} (a {}-byte answer that is not Discord's JSON; not shown)", body.len());
    };
    let text: String = redact(&json.to_string(), None).chars().filter(|c| !c.is_control()).collect();
    format!("HTTP {status}: {}", text.chars().take(DETAIL_MAX_CHARS).collect::<String>())
}

/// `detail` unless it holds any 16 characters in a row of `token`, however disguised (percent-
/// encoded, cased, broken up by other characters); then only the status line before it.
pub fn guard_token(detail: String, token: &str) -> String {
    if detail.is_empty() {
        return detail;
    }
    const WINDOW: usize = 16;
    let squeeze = |text: &str| -> String {
        percent_decode(text)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let (seen, token) = (squeeze(&detail), token.to_ascii_lowercase());
    if token.len() < WINDOW
        || !token.as_bytes().windows(WINDOW).any(|w| seen.as_bytes().windows(WINDOW).any(|s| s == w))
    {
        return detail;
    }
    let status = detail.split(':').next().unwrap_or("HTTP");
    format!("{status}: (the answer quoted the webhook's token; not shown)")
}

/// `text` with `%XX` sequences decoded (as Latin-1 bytes, enough to compare ASCII tokens).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(char::from((high * 16 + low) as u8));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// `text` with every webhook token removed: `token` (the destination's own) wherever it stands,
/// whatever follows `webhooks/<id>/`, and any run of token characters long enough to be one. For
/// text that came from upstream (an error page may echo the request's URL) before it is logged,
/// stored or served.
pub fn redact(text: &str, token: Option<&str>) -> String {
    let text = match token {
        Some(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_owned(),
    };
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    // The last two runs of token characters and what separated them, to spot `webhooks/<id>/`.
    let (mut before_id, mut id) = ("", "");
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let run_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let (run, after) = rest.split_at(run_len);
        if !run.is_empty() {
            let after_webhook_id = before_id.eq_ignore_ascii_case("webhooks")
                && !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && out.ends_with(&format!("/{id}/"));
            if run.len() >= TOKEN_LIKE_MIN_CHARS || after_webhook_id {
                out.push_str("[redacted]");
            } else {
                out.push_str(run);
            }
            (before_id, id) = (id, run);
        }
        let gap_len = after.find(is_token_char).unwrap_or(after.len());
        let (gap, next) = after.split_at(gap_len);
        if gap != "/" {
            (before_id, id) = ("", "");
        }
        out.push_str(gap);
        rest = next;
    }
    out
}
