//! A channel destination's step: its webhook is the relay's own, found or made when the task
//! starts ([`crate::deliver::AppWebhooks`]), and made again when someone deletes it.

use serenity::builder::ExecuteWebhook;

use super::Worker;
use crate::deliver::Step;
use crate::destination::Target;
use crate::discord::{ChannelError, Outcome, RateLimit, Reply, Scope};

impl Worker {
    /// For a channel destination whose webhook is not known yet: finds or makes it. `Some` step
    /// when delivery must wait (Discord is busy or down) or pause (the bot may not make one: the
    /// reason says why, in the log and in `/readyz`).
    pub(super) async fn ensure_app_webhook(&mut self) -> Option<Step> {
        let Target::Channel(channel) = self.destination.target else { return None };
        if self.app_url.is_some() {
            return None;
        }
        let Some(webhooks) = self.app_webhooks.clone() else {
            return Some(self.pause(&format!(
                "channel {channel} needs DISCORD_BOT_TOKEN (and DISCORD_APPLICATION_ID) for the relay to make its \
                 webhook there"
            )));
        };
        match webhooks.resolve(channel).await {
            Ok(url) => {
                self.app_url = Some(url);
                None
            }
            Err(err) => Some(self.unresolved(channel, err)),
        }
    }

    /// What the task does when the channel's webhook could not be found or made.
    fn unresolved(&mut self, channel: u64, err: ChannelError) -> Step {
        let why = format!("cannot make the relay's own webhook in channel {channel}: {err}");
        match err {
            ChannelError::RateLimited(wait) => {
                self.park(wait, &why);
                Step::Wait(wait.duration)
            }
            ChannelError::Transient(_) => {
                self.failures += 1;
                let wait = self.settings.backoff(self.failures);
                log::warn!("{}: {why}; trying again in {wait:?}", self.destination.name);
                self.show_wait(wait, false, &why);
                self.pacer.delay(wait);
                Step::Wait(wait)
            }
            ChannelError::Forbidden(_)
            | ChannelError::BadToken(_)
            | ChannelError::UnknownChannel(_)
            | ChannelError::Refused(_) => self.pause(&why),
        }
    }

    /// Sends `message` through the relay's webhook of `channel`. When Discord says that webhook no
    /// longer exists (someone deleted it), makes a new one and sends the same message through it:
    /// Discord did not accept it, so it is sent once.
    pub(super) async fn execute_own(
        &mut self,
        channel: u64,
        thread_id: Option<u64>,
        message: &ExecuteWebhook,
    ) -> Reply {
        let (Some(url), Some(webhooks)) = (self.app_url.clone(), self.app_webhooks.clone()) else {
            return transient(format!("the relay has no webhook in channel {channel} yet"));
        };
        let reply = self.client.execute(&url, thread_id, message).await;
        if !matches!(reply.outcome, Outcome::Gone { status: 401 | 404, .. }) {
            return reply;
        }
        self.app_url = None;
        log::warn!(
            "{}: the relay's webhook {url} in channel {channel} is gone (someone deleted it); making a new one",
            self.destination.name
        );
        match webhooks.replace(channel, &url).await {
            Ok(new) => {
                self.app_url = Some(new.clone());
                self.client.execute(&new, thread_id, message).await
            }
            // Discord's wait is kept: the message waits it out, not counted as a failed attempt.
            Err(ChannelError::RateLimited(wait)) => Reply {
                outcome: Outcome::RateLimited { retry_after: Some(wait), scope: Scope::User },
                ..transient(String::new())
            },
            Err(err) => transient(format!("the relay's webhook in channel {channel} was deleted: {err}")),
        }
    }
}

/// A failure to try again later (the next step finds or makes the webhook, or says why not).
fn transient(detail: String) -> Reply {
    Reply { outcome: Outcome::Transient { status: None, detail }, rate_limit: RateLimit::default(), channel_id: None }
}
