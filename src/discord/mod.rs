//! Discord's Execute Webhook endpoint: the URL type ([`url`]), the HTTP client (here), and the one
//! place where Discord's answers are classified into what the delivery engine should do
//! ([`answer`]); and the relay's own webhooks of a channel, found or created with the bot token
//! ([`channel`]).
//!
//! serenity is the message model (`ExecuteWebhook`, `CreateEmbed`, …); the request itself goes out
//! through reqwest to the exact URL the admin configured, because serenity's own `Http` client
//! ignores a base-URL override while rate limiting, drops `Retry-After` and the rate-limit headers
//! on errors, retries 429s in an uncapped loop and has no timeout.

mod answer;
mod channel;
#[cfg(test)]
mod tests;
mod url;

use std::time::Duration;

use serenity::builder::ExecuteWebhook;

pub use answer::{
    classify, created_channel_id, redact, Outcome, RateLimit, Reply, Scope, Wait, MAX_WAIT, MIN_RETRY_AFTER,
};
pub use channel::{BotToken, ChannelError, ChannelWebhooks, WEBHOOK_NAME};
pub use url::{WebhookUrl, WebhookUrlError};

/// How much of an answer's body is read. Classifying needs a few hundred bytes of an error and
/// nothing of a success; a created message is a few KiB. The rest is not read: the connection is
/// dropped instead, so an answer of any size costs at most this much memory.
pub const BODY_READ_MAX_BYTES: usize = 64 * 1024;

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
                    channel_id: None,
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
        let body = read_prefix(response, BODY_READ_MAX_BYTES).await;
        // Before anything quotes it: a proxy's error page may echo the URL, token and all.
        let outcome = classify(status, &headers, &body).map_detail(|detail| guard(detail, url.token()));
        let channel_id = if status.is_success() { created_channel_id(&body) } else { None };
        Reply { outcome, rate_limit: RateLimit::from_headers(&headers), channel_id }
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
    let detail = guard(detail, token);
    Reply { outcome: Outcome::Transient { status: None, detail }, rate_limit: RateLimit::default(), channel_id: None }
}

/// `detail` with `token` redacted, or left out whole if it is there in disguise.
fn guard(detail: String, token: &str) -> String {
    answer::guard_token(redact(&detail, Some(token)), token)
}
