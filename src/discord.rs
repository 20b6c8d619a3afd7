//! Discord's Execute Webhook endpoint: the URL type, the HTTP client, and the one place where
//! Discord's answers are classified into what the delivery engine should do.
//!
//! serenity is the message model (`ExecuteWebhook`, `CreateEmbed`, …); the request itself goes out
//! through reqwest to the exact URL the admin configured, because serenity's own `Http` client
//! ignores a base-URL override while rate limiting, drops `Retry-After` and the rate-limit headers
//! on errors, retries 429s in an uncapped loop and has no timeout.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serenity::builder::ExecuteWebhook;
use url::Url;

/// Discord's own hosts for webhooks. A URL on any other host is a reverse proxy or a test server.
const DISCORD_HOSTS: &[&str] = &[
    "discord.com",
    "discordapp.com",
    "canary.discord.com",
    "ptb.discord.com",
    "canary.discordapp.com",
    "ptb.discordapp.com",
];

/// How much of an error body is kept for logs and dead letters.
const DETAIL_MAX_CHARS: usize = 500;

/// How much of an answer's body is read. Classifying needs a few hundred bytes of an error and
/// nothing of a success; a created message is a few KiB. The rest is not read: the connection is
/// dropped instead, so an answer of any size costs at most this much memory.
pub const BODY_READ_MAX_BYTES: usize = 64 * 1024;

/// The longest wait an answer can impose on a destination. Discord asks for seconds; anything
/// beyond an hour is a broken proxy or a hostile server, and is cut to this (and logged).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The shortest wait after a 429, whatever it said: `retry_after: 0` would otherwise make the
/// relay hammer a server that is refusing it.
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Runs of token characters at least this long are redacted from upstream text wherever they
/// stand (Discord's webhook tokens are 68 characters).
const TOKEN_LIKE_MIN_CHARS: usize = 60;

/// A parsed Discord webhook URL. Its `Display` and `Debug` never show the token.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: Url,
    id: u64,
    thread_id: Option<u64>,
}

/// Why a string is not a usable webhook URL. Messages never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookUrlError {
    #[error("is not a URL")]
    NotAUrl,
    #[error("must use http or https, not {0}")]
    Scheme(String),
    #[error("must use https for Discord's own host {0}")]
    PlainHttpToDiscord(String),
    #[error("host {0} is not one of Discord's webhook hosts")]
    NotDiscordHost(String),
    #[error("must have a path /api/webhooks/<id>/<token> or /api/v<N>/webhooks/<id>/<token>")]
    Path,
    #[error("webhook id must be a number")]
    Id,
    #[error("webhook token may only contain letters, digits, '-' and '_'")]
    Token,
    #[error("thread_id must be a number")]
    ThreadId,
    #[error("must not contain a user name or password")]
    Credentials,
}

impl WebhookUrl {
    /// Parses a URL an admin configured: Discord's hosts over https, or any http(s) origin (a
    /// reverse proxy, a local test server) with a webhook path.
    pub fn parse(input: &str) -> Result<Self, WebhookUrlError> {
        Self::parse_with(input, false)
    }

    /// Parses a URL that came from a panel's payload: only Discord's own hosts are accepted, so a
    /// payload can never make the relay send a request anywhere else.
    pub fn parse_discord_only(input: &str) -> Result<Self, WebhookUrlError> {
        Self::parse_with(input, true)
    }

    fn parse_with(input: &str, discord_only: bool) -> Result<Self, WebhookUrlError> {
        let mut url = Url::parse(input.trim()).map_err(|_| WebhookUrlError::NotAUrl)?;
        let host = url.host_str().ok_or(WebhookUrlError::NotAUrl)?.to_ascii_lowercase();
        let on_discord = DISCORD_HOSTS.contains(&host.as_str());
        match url.scheme() {
            "https" => {}
            "http" if on_discord => return Err(WebhookUrlError::PlainHttpToDiscord(host)),
            "http" => {}
            other => return Err(WebhookUrlError::Scheme(other.to_owned())),
        }
        if discord_only && !on_discord {
            return Err(WebhookUrlError::NotDiscordHost(host));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookUrlError::Credentials);
        }
        let (id, token) = webhook_path(&url)?;
        let id: u64 = id.parse().map_err(|_| WebhookUrlError::Id)?;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(WebhookUrlError::Token);
        }
        let thread_id = url
            .query_pairs()
            .find(|(key, _)| key == "thread_id")
            .map(|(_, value)| value.parse::<u64>().map_err(|_| WebhookUrlError::ThreadId))
            .transpose()?;
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self { url, id, thread_id })
    }

    /// The full URL, token included. Only for storing it; never log it.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The token (the secret part of the path), to redact it from upstream text.
    fn token(&self) -> &str {
        webhook_path(&self.url).map(|(_, token)| token).unwrap_or_default()
    }

    /// The host requests go to, for logs.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// Whether the host is one of Discord's own.
    pub fn is_discord_host(&self) -> bool {
        DISCORD_HOSTS.contains(&self.host())
    }

    /// The webhook's id (not secret).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A `thread_id` given in the URL's query, if any.
    pub fn thread_id(&self) -> Option<u64> {
        self.thread_id
    }

    /// The address to POST to: `?wait=true` so that Discord answers with the created message (with
    /// the default `wait=false` a message that was not saved still gets a 204).
    pub fn execute_url(&self, thread_id: Option<u64>) -> Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("wait", "true");
            if let Some(thread) = thread_id.or(self.thread_id) {
                query.append_pair("thread_id", &thread.to_string());
            }
        }
        url
    }
}

/// Splits `/api/webhooks/<id>/<token>` or `/api/v<N>/webhooks/<id>/<token>` (trailing slash allowed).
fn webhook_path(url: &Url) -> Result<(&str, &str), WebhookUrlError> {
    let segments: Vec<&str> =
        url.path_segments().ok_or(WebhookUrlError::Path)?.filter(|segment| !segment.is_empty()).collect();
    match segments.as_slice() {
        ["api", "webhooks", id, token] => Ok((id, token)),
        ["api", version, "webhooks", id, token] if is_api_version(version) => Ok((id, token)),
        _ => Err(WebhookUrlError::Path),
    }
}

fn is_api_version(segment: &str) -> bool {
    segment.len() > 1 && segment.starts_with('v') && segment[1..].bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        write!(f, "{}://{}{}/…/webhooks/{}/[redacted]", self.url.scheme(), self.host(), port, self.id)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

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
    fn from_headers(headers: &HeaderMap) -> Self {
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
    /// 401, 403, 404: the webhook is gone or its token is wrong. Stop sending to it.
    Gone { status: u16, detail: String },
    /// 5xx (`status`), timeout or connection error (no status): try again later.
    Transient { status: Option<u16>, detail: String },
}

/// One answer from Discord: the outcome and the bucket state its headers reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub outcome: Outcome,
    pub rate_limit: RateLimit,
}

/// Classifies an HTTP answer. Pure, so every rule is unit-tested.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let detail = || error_detail(status, body);
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

fn parse_seconds(value: &str) -> Option<Wait> {
    value.parse::<f64>().ok().and_then(Wait::from_secs)
}

fn error_detail(status: StatusCode, body: &[u8]) -> String {
    let text = redact(&String::from_utf8_lossy(body), None);
    let text: String = text.trim().chars().take(DETAIL_MAX_CHARS).collect();
    if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {}", status.as_u16(), text)
    }
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

/// Timeouts for requests to Discord.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(5), request: Duration::from_secs(15) }
    }
}

/// The HTTP client for Discord webhooks. Cheap to clone; one connection pool for all destinations.
/// Proxies come from `HTTPS_PROXY` / `ALL_PROXY` (socks5 included), as reqwest reads them.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new(timeouts: Timeouts) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("marzban-discord-relay/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http })
    }

    /// Executes the webhook once with `message` and classifies the answer. Never retries.
    pub async fn execute(&self, url: &WebhookUrl, thread_id: Option<u64>, message: &ExecuteWebhook) -> Reply {
        let body = match serde_json::to_vec(message) {
            Ok(body) => body,
            Err(err) => {
                return Reply {
                    outcome: Outcome::Rejected { status: 0, detail: format!("could not serialise the message: {err}") },
                    rate_limit: RateLimit::default(),
                }
            }
        };
        let sent = self
            .http
            .post(url.execute_url(thread_id))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return transport_failure(err, url.token()),
        };
        let status = response.status();
        let headers = response.headers().clone();
        // A 2xx whose body cannot be read is still delivered; other bodies only feed the detail.
        let mut body = read_prefix(response, BODY_READ_MAX_BYTES).await;
        // Before anything quotes it: a proxy's error page may echo the URL, token and all.
        let token = url.token();
        if body.windows(token.len().max(1)).any(|w| w == token.as_bytes()) {
            body = redact(&String::from_utf8_lossy(&body), Some(token)).into_bytes();
        }
        Reply { outcome: classify(status, &headers, &body), rate_limit: RateLimit::from_headers(&headers) }
    }
}

/// At most `limit` bytes of the answer's body; a longer body is abandoned with its connection.
async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// A request that got no HTTP answer. The URL (with its token) is stripped from the error.
fn transport_failure(err: reqwest::Error, token: &str) -> Reply {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let err = err.without_url();
    let mut detail = format!("{kind}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let detail = redact(&detail, Some(token));
    Reply { outcome: Outcome::Transient { status: None, detail }, rate_limit: RateLimit::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    const TOKEN: &str = "AbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn parses_discord_urls_in_all_their_forms() {
        for host in ["discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"] {
            for path in ["api/webhooks", "api/v10/webhooks", "api/v9/webhooks"] {
                let url = WebhookUrl::parse(&format!("https://{host}/{path}/123456/{TOKEN}")).unwrap();
                assert_eq!(url.id(), 123456);
                assert!(url.is_discord_host());
            }
        }
        let url = WebhookUrl::parse(&format!("https://discord.com/api/webhooks/1/{TOKEN}/")).unwrap();
        assert_eq!(url.id(), 1);
    }

    #[test]
    fn accepts_other_origins_with_a_webhook_path() {
        let url = WebhookUrl::parse(&format!("http://127.0.0.1:8080/api/webhooks/7/{TOKEN}")).unwrap();
        assert!(!url.is_discord_host());
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.execute_url(None).as_str(), format!("http://127.0.0.1:8080/api/webhooks/7/{TOKEN}?wait=true"));
    }

    #[test]
    fn keeps_a_thread_id_from_the_query() {
        let url =
            WebhookUrl::parse(&format!("https://discord.com/api/webhooks/7/{TOKEN}?thread_id=99&wait=false")).unwrap();
        assert_eq!(url.thread_id(), Some(99));
        assert!(url.execute_url(None).as_str().ends_with("?wait=true&thread_id=99"));
        assert!(url.execute_url(Some(5)).as_str().ends_with("?wait=true&thread_id=5"));
    }

    #[test]
    fn refuses_malformed_urls_without_echoing_the_token() {
        let cases = [
            ("not a url", WebhookUrlError::NotAUrl),
            ("ftp://discord.com/api/webhooks/1/abc", WebhookUrlError::Scheme("ftp".into())),
            ("http://discord.com/api/webhooks/1/abc", WebhookUrlError::PlainHttpToDiscord("discord.com".into())),
            ("https://discord.com/webhooks/1/abc", WebhookUrlError::Path),
            ("https://discord.com/api/webhooks/1", WebhookUrlError::Path),
            ("https://discord.com/api/vX/webhooks/1/abc", WebhookUrlError::Path),
            ("https://discord.com/api/webhooks/abc/abc", WebhookUrlError::Id),
            ("https://discord.com/api/webhooks/1/ab%20c", WebhookUrlError::Token),
            ("https://u:p@discord.com/api/webhooks/1/abc", WebhookUrlError::Credentials),
        ];
        for (input, expected) in cases {
            let err = WebhookUrl::parse(input).unwrap_err();
            assert_eq!(err, expected, "{input}");
            assert!(!err.to_string().contains("abc"), "{err}");
        }
    }

    #[test]
    fn payload_urls_must_be_on_discord() {
        let err = WebhookUrl::parse_discord_only(&format!("https://evil.example/api/webhooks/1/{TOKEN}")).unwrap_err();
        assert_eq!(err, WebhookUrlError::NotDiscordHost("evil.example".into()));
        assert!(WebhookUrl::parse_discord_only(&format!("https://discord.com/api/webhooks/1/{TOKEN}")).is_ok());
    }

    #[test]
    fn display_and_debug_redact_the_token() {
        let url = WebhookUrl::parse(&format!("https://discord.com/api/webhooks/42/{TOKEN}")).unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(shown.contains("discord.com") && shown.contains("42"), "{shown}");
        }
    }

    #[test]
    fn classifies_every_status_class() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &none, b"not json"), Outcome::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT, &none, b""), Outcome::Delivered);
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &none, br#"{"embeds":["0"]}"#),
            Outcome::Rejected { status: 400, ref detail } if detail.contains("embeds")
        ));
        assert!(matches!(classify(StatusCode::PAYLOAD_TOO_LARGE, &none, b""), Outcome::Rejected { status: 413, .. }));
        for status in [401, 403, 404] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(matches!(classify(status, &none, b"{}"), Outcome::Gone { .. }));
        }
        for status in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(matches!(classify(status, &none, b"<html>"), Outcome::Transient { .. }));
        }
    }

    #[test]
    fn reads_retry_after_from_the_body_first_then_the_header() {
        let body = br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
        let h = headers(&[("retry-after", "2"), ("x-ratelimit-scope", "user")]);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, body),
            Outcome::RateLimited { retry_after: Wait::from_secs(1.5), scope: Scope::User }
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            Outcome::RateLimited { retry_after: Wait::from_secs(2.0), scope: Scope::User }
        );
    }

    #[test]
    fn a_429_without_any_delay_is_a_ban() {
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"<html>Access denied</html>"),
            Outcome::RateLimited { retry_after: None, scope: Scope::User }
        );
    }

    #[test]
    fn reads_the_scope_of_a_429() {
        let shared = headers(&[("x-ratelimit-scope", "shared")]);
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &shared, br#"{"retry_after":1}"#),
            Outcome::RateLimited { scope: Scope::Shared, .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), br#"{"retry_after":1,"global":true}"#),
            Outcome::RateLimited { scope: Scope::Global, .. }
        ));
    }

    #[test]
    fn reads_the_bucket_headers() {
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "0.75")]);
        assert_eq!(RateLimit::from_headers(&h), RateLimit { remaining: Some(0), reset_after: Wait::from_secs(0.75) });
    }

    fn retry_after(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Wait> {
        match classify(status, headers, body) {
            Outcome::RateLimited { retry_after, .. } => retry_after,
            other => panic!("not a 429: {other:?}"),
        }
    }

    #[test]
    fn caps_absurd_delays_without_panicking() {
        let capped = Some(Wait { duration: MAX_WAIT, capped: true });
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(retry_after(too_many, &HeaderMap::new(), br#"{"retry_after": 1e20}"#), capped);
        assert_eq!(retry_after(too_many, &HeaderMap::new(), br#"{"retry_after": 1e308}"#), capped);
        let header = headers(&[("retry-after", "99999999999999999999")]);
        assert_eq!(retry_after(too_many, &header, b""), capped);
        let bucket = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "1e19")]);
        assert_eq!(RateLimit::from_headers(&bucket).reset_after, capped);
        let exactly = Wait::from_secs(3600.0).unwrap();
        assert_eq!(exactly, Wait { duration: MAX_WAIT, capped: false });
        for nonsense in ["-1", "NaN", "inf", "-inf", "1e999", "", "soon"] {
            let header = headers(&[("retry-after", nonsense)]);
            assert_eq!(retry_after(too_many, &header, b""), None, "{nonsense:?} is no delay");
        }
    }

    #[test]
    fn a_429_asking_for_no_wait_still_waits_a_little() {
        let zero = headers(&[("retry-after", "0")]);
        let wait = retry_after(StatusCode::TOO_MANY_REQUESTS, &zero, br#"{"retry_after": 0}"#).unwrap();
        assert_eq!(wait.duration, MIN_RETRY_AFTER);
        let wait = retry_after(StatusCode::TOO_MANY_REQUESTS, &zero, b"").unwrap();
        assert_eq!(wait.duration, MIN_RETRY_AFTER);
    }

    #[test]
    fn redacts_tokens_from_upstream_text() {
        let echoed = format!("<pre>Cannot POST /api/webhooks/123/{TOKEN}?wait=true</pre>");
        let clean = redact(&echoed, None);
        assert_eq!(clean, "<pre>Cannot POST /api/webhooks/123/[redacted]?wait=true</pre>");
        let short = "Cannot POST /api/v10/Webhooks/9/shorttok";
        assert_eq!(redact(short, None), "Cannot POST /api/v10/Webhooks/9/[redacted]");
        assert_eq!(redact("token shorttok leaked", Some("shorttok")), "token [redacted] leaked");
        assert_eq!(redact(&format!("bare {TOKEN}."), None), "bare [redacted].");
        let harmless = r#"{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": 1}}}"#;
        assert_eq!(redact(harmless, None), harmless);
        assert_eq!(redact("webhooks/abc/def and webhooks/12 /x", None), "webhooks/abc/def and webhooks/12 /x");
    }

    #[test]
    fn error_details_never_carry_a_token_even_when_cut() {
        let body = format!("{}/api/webhooks/1/{TOKEN}", "x".repeat(480));
        let Outcome::Gone { detail, .. } = classify(StatusCode::NOT_FOUND, &HeaderMap::new(), body.as_bytes()) else {
            panic!("a 404 means gone")
        };
        assert!(!detail.contains(&TOKEN[..20]), "{detail}");
    }
}
