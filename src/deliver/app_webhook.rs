//! The relay's own webhook of a channel destination, resolved when delivery first needs it: the
//! one stored in the outbox, or else one of this application's that Discord already lists for
//! the channel (an outbox that was lost or deleted, a store that failed after Discord made it), or
//! else a new one. Stored again so that the next start reuses it.

use std::sync::Arc;

use tokio::sync::Mutex;

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
    /// One look-up or making at a time: two destinations in one channel (threads of it) would
    /// otherwise both find none and make one each, or both replace a deleted one.
    one_at_a_time: Arc<Mutex<()>>,
}

impl AppWebhooks {
    pub fn new(settings: &AppWebhookSettings, timeouts: Timeouts, outbox: Outbox) -> Result<Self, String> {
        let AppWebhookSettings { api_base, application_id, bot_token } = settings;
        let api = ChannelWebhooks::new(api_base, *application_id, bot_token.clone(), timeouts)?;
        Ok(Self { api, outbox, one_at_a_time: Arc::default() })
    }

    /// The relay's webhook of `channel`: stored, listed by Discord, or new.
    pub async fn resolve(&self, channel: u64) -> Result<WebhookUrl, ChannelError> {
        let _alone = self.one_at_a_time.lock().await;
        if let Some(url) = self.stored(channel).await {
            return Ok(url);
        }
        self.find_or_make(channel, None).await
    }

    /// The webhook stored for `channel`, if one is and it reads as a URL.
    async fn stored(&self, channel: u64) -> Option<WebhookUrl> {
        match self.outbox.app_webhook(channel).await {
            Ok(stored) => stored.and_then(|stored| self.api.webhook_url(stored.webhook_id, &stored.token)),
            // Asking Discord is safe: it lists the webhook the relay made, so none is made twice.
            Err(err) => {
                log::warn!("channel {channel}: cannot read the relay's stored webhook ({err}); asking Discord");
                None
            }
        }
    }

    /// One of the relay's webhooks Discord lists for `channel` (but `gone`, should Discord still
    /// list it), or else a new one; stored.
    async fn find_or_make(&self, channel: u64, gone: Option<&WebhookUrl>) -> Result<WebhookUrl, ChannelError> {
        let listed = self
            .api
            .find(channel)
            .await?
            .filter(|url| gone.is_none_or(|gone| (url.id(), url.token()) != (gone.id(), gone.token())));
        let url = match listed {
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

    /// The webhook of `channel` in place of `gone`, which Discord said no longer exists (or no
    /// longer takes its token): the one another destination in the channel already put in its
    /// place, or one Discord still lists (a token that was wrong), or else a new one.
    pub async fn replace(&self, channel: u64, gone: &WebhookUrl) -> Result<WebhookUrl, ChannelError> {
        let _alone = self.one_at_a_time.lock().await;
        if let Some(url) = self.stored(channel).await.filter(|url| url.id() != gone.id()) {
            return Ok(url);
        }
        if let Err(err) = self.outbox.forget_app_webhook(channel, gone.id()).await {
            log::warn!("channel {channel}: cannot forget the deleted webhook {gone}: {err}");
        }
        log::info!("channel {channel}: the relay's webhook {gone} is gone; finding or making another");
        self.find_or_make(channel, Some(gone)).await
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
