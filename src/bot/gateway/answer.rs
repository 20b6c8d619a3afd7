//! The gateway's REST side: where to connect (`GET /gateway/bot`, with the bot token) and the
//! answer to an interaction (`POST /interactions/{id}/{token}/callback`, authorised by the
//! interaction's token). No URL is logged: a callback's holds the interaction's token.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serenity::model::application::Interaction;

use super::connection::websocket_url;
use super::{Ended, Gateway};
use crate::bot::http::without_null_data;
use crate::bot::rest::Rest;
use crate::discord::redact;

/// The most of Discord's answer read: `/gateway/bot` is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// The longest wait for new session starts taken from Discord's answer: its window is a day.
const MAX_LIMIT_WAIT_MS: u64 = 86_400_000;

impl Gateway {
    /// Answers `interaction` in its own task: the handler's response to the callback, then the
    /// handler's follow-up (the edit of a deferred response). Past [`super::MAX_ANSWERING`] at
    /// once it is left unanswered (Discord tells the member it failed) and counted.
    pub(super) fn answer(&self, interaction: Interaction) {
        let Ok(permit) = self.answering.clone().try_acquire_owned() else {
            self.metrics.unanswered.inc();
            log::warn!("gateway: too many interactions at once; one is left unanswered");
            return;
        };
        let (bot, metrics) = (Arc::clone(&self.bot), self.metrics.clone());
        tokio::spawn(async move {
            let (id, token) = (interaction.id().get(), interaction.token().to_owned());
            let answer = bot.handle(interaction).await;
            let body = serde_json::to_value(&answer.response).map(without_null_data);
            let sent = match body {
                Ok(body) => bot.rest.callback(id, &token, &body).await,
                Err(err) => Err(format!("the answer could not be written: {err}")),
            };
            match (sent, answer.follow_up) {
                (Ok(()), Some(follow_up)) => follow_up.await,
                (Ok(()), None) => {}
                // Without the response there is nothing to edit; the panel's work (if any) still
                // runs to its end in its own task.
                (Err(err), _) => {
                    metrics.unanswered.inc();
                    log::warn!("bot: Discord did not take the answer to an interaction: {err}");
                }
            }
            drop(permit);
        });
    }
}

impl Rest {
    /// Where the gateway is: `GET /gateway/bot`. A refused token ends the retries.
    pub(super) async fn gateway_url(&self) -> Result<String, Ended> {
        let lost = |reason: String| Ended::Lost { reason, was_live: false };
        let Some(token) = &self.bot_token else {
            return Err(Ended::Fatal("DISCORD_BOT_TOKEN is not set".to_owned()));
        };
        let sent = self
            .http
            .get(format!("{}/gateway/bot", self.base))
            .header(reqwest::header::AUTHORIZATION, format!("Bot {}", token.expose()))
            .send()
            .await;
        let response = sent.map_err(|err| lost(format!("cannot ask for the gateway URL: {}", err.without_url())))?;
        let status = response.status().as_u16();
        let body = read_prefix(response).await;
        if status == 401 {
            return Err(Ended::Fatal("Discord refused DISCORD_BOT_TOKEN (HTTP 401 from /gateway/bot)".to_owned()));
        }
        if !(200..300).contains(&status) {
            let text: String = redact(&String::from_utf8_lossy(&body), None).chars().take(200).collect();
            return Err(lost(format!("/gateway/bot answered HTTP {status}: {text}")));
        }
        let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
        // Past Discord's daily session starts (1,000), Discord resets the token: wait instead.
        let limit = &answer["session_start_limit"];
        if limit["remaining"].as_u64() == Some(0) {
            let wait = Duration::from_millis(limit["reset_after"].as_u64().unwrap_or(0).min(MAX_LIMIT_WAIT_MS));
            log::warn!(
                "gateway: Discord allows no new session for {} s (session_start_limit); waiting",
                wait.as_secs()
            );
            tokio::time::sleep(wait).await;
            return Err(lost("Discord's daily session starts were used up".to_owned()));
        }
        let url = answer["url"].as_str().unwrap_or_default();
        websocket_url(url).map_err(lost)?;
        // The token goes over this connection: never in the clear when the REST API is not.
        if self.base.starts_with("https:") && !url.starts_with("wss:") {
            return Err(lost("/gateway/bot gave a gateway URL that is not wss://".to_owned()));
        }
        Ok(url.to_owned())
    }

    /// Gives Discord the response to the interaction `id` with `token`.
    pub(super) async fn callback(&self, id: u64, token: &str, body: &Value) -> Result<(), String> {
        let token_ok = (1..=1000).contains(&token.len())
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !token_ok {
            return Err("the interaction's token is not usable in a URL".to_owned());
        }
        let sent = self
            .http
            .post(format!("{}/interactions/{id}/{token}/callback", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| err.without_url().to_string())?;
        let status = sent.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = read_prefix(sent).await;
        let text: String =
            redact(&String::from_utf8_lossy(&body), None).chars().filter(|c| !c.is_control()).take(200).collect();
        Err(format!("Discord answered HTTP {status}: {text}"))
    }
}

/// At most [`MAX_ANSWER_BYTES`] of the answer's body.
async fn read_prefix(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    body
}
