//! The relay's own webhook of a channel destination, resolved when delivery first needs it: the
//! one stored in the outbox, or else one of this application's that Discord already lists for
//! the channel (an outbox that was lost or deleted, a store that failed after Discord made it), or
//! else a new one. Stored again so that the next start reuses it.

use crate::discord::{BotToken, ChannelError, ChannelWebhooks, Timeouts, WebhookUrl};
use crate::outbox::{AppWebhook, Outbox};

/// What the relay needs to find or make its webhooks: given when a destination is a channel
/// (`DISCORD_CHANNEL_ID`, a routes file's `channel_id`).
#[derive(Debug, Clone)]
pub struct AppWebhookSettings {
    /// `DISCORD_API_BASE`, without a trailing slash; the webhooks are executed through it too.
    pub api_base: String,
    /// `DISCORD_APPLICATION_ID`: the relay's own webhooks are the ones of this application.
    pub application_id: u64,
    /// `DISCORD_BOT_TOKEN` (or `_FILE`): the bot needs Manage Webhooks in the channels.
    pub bot_token: BotToken,
}

/// Finds or makes the relay's webhooks; shared by the delivery tasks of channel destinations.
#[derive(Clone)]
pub struct AppWebhooks {
    api: ChannelWebhooks,
    outbox: Outbox,
}

impl AppWebhooks {
    pub fn new(settings: &AppWebhookSettings, timeouts: Timeouts, outbox: Outbox) -> Result<Self, String> {
        let AppWebhookSettings { api_base, application_id, bot_token } = settings;
        let api = ChannelWebhooks::new(api_base, *application_id, bot_token.clone(), timeouts)?;
        Ok(Self { api, outbox })
    }

    /// The relay's webhook of `channel`: stored, listed by Discord, or new.
    pub async fn resolve(&self, channel: u64) -> Result<WebhookUrl, ChannelError> {
        match self.outbox.app_webhook(channel).await {
            Ok(Some(stored)) => {
                if let Some(url) = self.api.webhook_url(stored.webhook_id, &stored.token) {
                    return Ok(url);
                }
            }
            Ok(None) => {}
            // Asking Discord is safe: it lists the webhook the relay made, so none is made twice.
            Err(err) => log::warn!("channel {channel}: cannot read the relay's stored webhook ({err}); asking Discord"),
        }
        let url = match self.api.find(channel).await? {
            Some(url) => {
                log::info!("channel {channel}: using the relay's existing webhook {url}");
                url
            }
            None => {
                let url = self.api.create(channel).await?;
                log::info!("channel {channel}: made the relay's own webhook {url}");
                url
            }
        };
        self.remember(channel, &url).await;
        Ok(url)
    }

    /// Makes a new webhook for `channel`: Discord said `gone` no longer exists.
    pub async fn replace(&self, channel: u64, gone: &WebhookUrl) -> Result<WebhookUrl, ChannelError> {
        if let Err(err) = self.outbox.forget_app_webhook(channel, gone.id()).await {
            log::warn!("channel {channel}: cannot forget the deleted webhook {gone}: {err}");
        }
        let url = self.api.create(channel).await?;
        log::info!("channel {channel}: made the relay's own webhook {url} in place of the deleted {gone}");
        self.remember(channel, &url).await;
        Ok(url)
    }

    /// Stores `url` for `channel`. A failure only costs a look-up at the next start (Discord lists
    /// the webhook), so it is logged and delivery goes on.
    async fn remember(&self, channel: u64, url: &WebhookUrl) {
        let webhook = AppWebhook { webhook_id: url.id(), token: url.token().to_owned() };
        if let Err(err) = self.outbox.store_app_webhook(channel, webhook).await {
            log::warn!("channel {channel}: cannot store the relay's webhook {url} ({err}); the next start looks it up");
        }
    }
}
