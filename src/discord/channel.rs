//! A channel's webhooks through Discord's REST API, with the bot token: finding the relay's own
//! (application-owned) webhook of a channel and creating one (`GET` / `POST
//! {DISCORD_API_BASE}/channels/{id}/webhooks`, both need the bot's Manage Webhooks permission).
//! Discord keeps the interactive components (a select menu) of messages sent through such a
//! webhook; a webhook a person made drops them.
//!
//! A webhook's token is a secret: it is read from the answer into a [`WebhookUrl`] (whose display
//! hides it) and never quoted; no answer's body is logged.

use std::fmt;

use serde::Deserialize;

use super::answer::{classify, guard_token, Outcome, Wait};
use super::{read_prefix, Timeouts, WebhookUrl, BODY_READ_MAX_BYTES};

/// The name the relay gives the webhooks it creates. Discord refuses webhook names holding
/// "discord" or "clyde", so not the project's name.
pub const WEBHOOK_NAME: &str = "Marzban relay";

/// Discord's error code when a channel already has its 15 webhooks.
const TOO_MANY_WEBHOOKS: u64 = 30007;

/// The bot token (`DISCORD_BOT_TOKEN`). Its `Debug` never shows it.
#[derive(Clone)]
pub struct BotToken(String);

impl BotToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken([redacted])")
    }
}

/// Why the relay has no webhook of its own in a channel. Never holds a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    /// 403: the bot may not manage the channel's webhooks (or see the channel).
    #[error("the bot may not manage this channel's webhooks ({0}): give it the Manage Webhooks permission there")]
    Forbidden(String),
    /// 401: Discord does not take the bot token.
    #[error("Discord refused DISCORD_BOT_TOKEN ({0})")]
    BadToken(String),
    /// 404: no such channel, or not one the bot is in.
    #[error("no such channel, or the bot is not in its server ({0})")]
    UnknownChannel(String),
    /// Any other refusal (the channel has 15 webhooks already, a channel kind without webhooks).
    #[error("Discord refused to make a webhook there ({0})")]
    Refused(String),
    /// 429: wait this long.
    #[error("Discord asked to wait {:?}", .0.duration)]
    RateLimited(Wait),
    /// 5xx, timeout, no connection, an answer that is not a webhook: try again later.
    #[error("{0}")]
    Transient(String),
}

/// The REST calls for one application's webhooks.
#[derive(Clone)]
pub struct ChannelWebhooks {
    http: reqwest::Client,
    /// `DISCORD_API_BASE`, without a trailing slash.
    base: String,
    application_id: u64,
    token: BotToken,
}

/// A webhook as Discord describes it (fields the relay reads).
#[derive(Deserialize)]
struct Webhook {
    id: String,
    #[serde(rename = "type")]
    kind: u8,
    application_id: Option<String>,
    name: Option<String>,
    token: Option<String>,
}

impl ChannelWebhooks {
    pub fn new(base: &str, application_id: u64, token: BotToken, timeouts: Timeouts) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("DiscordBot (marzban-discord-relay, ", env!("CARGO_PKG_VERSION"), ")"))
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| format!("cannot build the Discord REST client: {err}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), application_id, token })
    }

    /// The execute URL of webhook `id` with `token`, through `DISCORD_API_BASE`, keeping components.
    pub fn webhook_url(&self, id: u64, token: &str) -> Option<WebhookUrl> {
        WebhookUrl::parse(&format!("{}/webhooks/{id}/{token}", self.base)).ok().map(WebhookUrl::with_components)
    }

    /// The relay's own webhook of `channel` if it has one: an incoming webhook of this application
    /// with a token, the one named [`WEBHOOK_NAME`] first.
    pub async fn find(&self, channel: u64) -> Result<Option<WebhookUrl>, ChannelError> {
        let body = self.call(self.http.get(self.channel_url(channel))).await?;
        let hooks: Vec<Webhook> = serde_json::from_slice(&body)
            .map_err(|_| ChannelError::Transient("the list of the channel's webhooks did not read as one".into()))?;
        let ours = self.application_id.to_string();
        let mut own: Vec<&Webhook> = hooks
            .iter()
            .filter(|hook| hook.kind == 1 && hook.application_id.as_deref() == Some(&ours) && hook.token.is_some())
            .collect();
        own.sort_by_key(|hook| hook.name.as_deref() != Some(WEBHOOK_NAME));
        Ok(own.first().and_then(|hook| self.url_of(hook)))
    }

    /// Creates the relay's webhook in `channel`.
    pub async fn create(&self, channel: u64) -> Result<WebhookUrl, ChannelError> {
        let body = serde_json::json!({ "name": WEBHOOK_NAME }).to_string();
        let request =
            self.http.post(self.channel_url(channel)).header(reqwest::header::CONTENT_TYPE, "application/json");
        let answer = self.call(request.body(body)).await?;
        let created: Webhook = serde_json::from_slice(&answer)
            .map_err(|_| ChannelError::Transient("Discord's answer did not read as a webhook".into()))?;
        self.url_of(&created)
            .ok_or_else(|| ChannelError::Transient("Discord's new webhook came without a token".into()))
    }

    fn channel_url(&self, channel: u64) -> String {
        format!("{}/channels/{channel}/webhooks", self.base)
    }

    fn url_of(&self, hook: &Webhook) -> Option<WebhookUrl> {
        self.webhook_url(hook.id.parse().ok()?, hook.token.as_deref()?)
    }

    /// Sends `request` with the bot token; the body of a 2xx answer (at most
    /// [`BODY_READ_MAX_BYTES`]), or what the refusal means.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, ChannelError> {
        let sent = request.header(reqwest::header::AUTHORIZATION, format!("Bot {}", self.token.0)).send().await;
        let response = sent.map_err(|err| ChannelError::Transient(err.without_url().to_string()))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = read_prefix(response, BODY_READ_MAX_BYTES).await;
        if status.is_success() {
            return Ok(body);
        }
        let outcome = classify(status, &headers, &body).map_detail(|detail| guard_token(detail, &self.token.0));
        Err(refusal(outcome, &body))
    }
}

/// What a refused channel-webhooks call means.
fn refusal(outcome: Outcome, body: &[u8]) -> ChannelError {
    match outcome {
        Outcome::RateLimited { retry_after, .. } => {
            ChannelError::RateLimited(retry_after.unwrap_or(Wait { duration: super::MAX_WAIT, capped: false }))
        }
        Outcome::Gone { status: 401, detail } => ChannelError::BadToken(detail),
        Outcome::Gone { status: 403, detail } => ChannelError::Forbidden(detail),
        Outcome::Gone { status: 404, detail } | Outcome::ThreadUnusable { status: 404, detail, .. } => {
            ChannelError::UnknownChannel(detail)
        }
        Outcome::Transient { detail, .. } => ChannelError::Transient(detail),
        Outcome::Rejected { detail, .. } if too_many_webhooks(body) => ChannelError::Refused(format!(
            "{detail}; the channel has 15 webhooks, Discord's most: delete one it no longer needs"
        )),
        Outcome::Rejected { detail, .. }
        | Outcome::Gone { detail, .. }
        | Outcome::ThreadUnusable { detail, .. }
        | Outcome::TitleBlocked { detail } => ChannelError::Refused(detail),
        Outcome::Delivered => ChannelError::Transient("an answer that was not an error".into()),
    }
}

fn too_many_webhooks(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["code"].as_u64() == Some(TOO_MANY_WEBHOOKS))
}
