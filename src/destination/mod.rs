//! Destinations: the named places messages are delivered to, and whom a message may mention.
//!
//! A destination is a named target (a Discord webhook, or a channel where the relay makes its own,
//! optionally a thread of its channel and a display name and avatar, or the dry-run log). A webhook of a forum channel is marked as such
//! ([`Forum`]): its messages go into a post per user. Every stored row belongs to exactly one
//! destination, and each destination is delivered by its own task, so messages never mix
//! destinations or threads.
//!
//! Destinations come from the configuration (`default` and the routes file's) or, with
//! `DELIVER_TO_OWNER_ADMIN=true`, from a panel's payload: the webhook of the admin who owns the
//! user. Those are named after their URL (admins sharing a webhook share its destination), told
//! apart by [`Origin`], and bounded in number by [`OwnerDestinations`].
//!
//! Routing (which destinations get an event) and the outbox (which stores rows by destination)
//! both use these types; neither needs the other.

mod forum;
mod owners;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::discord::WebhookUrl;

pub use forum::{distinct_tags, parse_tags, snowflake, Forum, DIGEST_TAG_KEY, MAX_APPLIED_TAGS};
pub use owners::{OwnerDestinations, OwnerMetrics, DEFAULT_OWNER_DESTINATIONS_MAX};

/// The name of the destination configured by `DISCORD_WEBHOOK_URL` (or the dry-run log).
pub const DEFAULT_DESTINATION: &str = "default";

/// Names of owner-admin destinations start with this; the rest is a hash of the webhook URL.
/// Stored rows carry it too (the outbox's schema upgrade to version 3 spells it out).
const OWNER_PREFIX: &str = "owner:";

/// Where a destination comes from, which decides how it is named, shown and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The configuration: `default`, or a routes file's destination.
    Configured,
    /// An owner admin's webhook, named in a panel's payload. Its name is made by
    /// [`Destination::owner`]; such destinations share one metrics label, do not make the relay
    /// unready, and are forgotten once they have no rows.
    Owner,
}

impl Origin {
    /// The origin of the destination named `name` (a configured name cannot look like an owner
    /// destination's: the routes file refuses it).
    pub fn of(name: &str) -> Self {
        if name.starts_with(OWNER_PREFIX) {
            Self::Owner
        } else {
            Self::Configured
        }
    }
}

/// Counts of one destination's rows: what the outbox reports and `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationStats {
    pub destination: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    /// When the oldest pending row was received (unix ms).
    pub oldest_pending_ms: Option<i64>,
}

/// Where a destination's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A Discord webhook.
    Webhook(WebhookUrl),
    /// The relay's own webhook in this channel (`DISCORD_CHANNEL_ID`, a routes file's
    /// `channel_id`): created with the bot token when it has none, so its URL is known only at
    /// delivery. Discord keeps the components (the "Act on a user…" menu) of its messages.
    Channel(u64),
    /// No webhook configured: log each message as JSON instead of sending it.
    DryRun,
}

impl Target {
    /// The webhook, when it is one.
    pub fn webhook(&self) -> Option<&WebhookUrl> {
        if let Self::Webhook(url) = self {
            Some(url)
        } else {
            None
        }
    }

    /// The channel, when the relay makes its own webhook there.
    pub fn channel(&self) -> Option<u64> {
        if let Self::Channel(id) = self {
            Some(*id)
        } else {
            None
        }
    }
}

/// A named place messages are delivered to.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub target: Target,
    /// A thread of the webhook's channel to post into.
    pub thread_id: Option<u64>,
    /// The name and avatar the messages show instead of the webhook's own.
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// Forum mode: the webhook belongs to a forum channel and each user gets a post of their own.
    pub forum: Option<Forum>,
}

impl Destination {
    /// A plain destination: the webhook (or dry run) with no thread or display overrides.
    pub fn new(name: impl Into<String>, target: Target) -> Self {
        Self { name: name.into(), target, thread_id: None, username: None, avatar_url: None, forum: None }
    }

    /// The destination of an owner admin's webhook `url` (its thread included), named after the
    /// URL so that every admin using that webhook shares it.
    pub fn owner(url: WebhookUrl) -> Self {
        Self { thread_id: url.thread_id(), ..Self::new(owner_name(&url), Target::Webhook(url)) }
    }

    /// Where this destination comes from.
    pub fn origin(&self) -> Origin {
        Origin::of(&self.name)
    }

    /// Where this destination posts: its webhook's id (Discord limits a webhook by its id, however
    /// the URL is spelled and whatever proxy it goes through) and the thread it posts into; none
    /// for a dry run. Two destinations with the same place would each pace alone against one limit.
    pub fn posts_to(&self) -> Option<(u64, Option<u64>)> {
        let Target::Webhook(url) = &self.target else { return None };
        Some((url.id(), self.thread_id.or(url.thread_id())))
    }
}

/// The name of an owner destination: the prefix and a hash of the URL (thread included), so it is
/// short, safe to show, and the same for every admin using that webhook.
fn owner_name(url: &WebhookUrl) -> String {
    let hash = Sha256::digest(url.identity().as_str().as_bytes());
    format!("{OWNER_PREFIX}{}", &crate::secret::lower_hex(&hash)[..12])
}

/// Role and user ids a message may ping. They are put into the message's `content` and its
/// `allowed_mentions` lists exactly them, so nothing else (no text from the panel) can ping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub roles: BTreeSet<u64>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub users: BTreeSet<u64>,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty()
    }

    pub fn extend(&mut self, other: &Mentions) {
        self.roles.extend(&other.roles);
        self.users.extend(&other.users);
    }

    /// Everyone any of `all` mentions, once.
    pub fn union<'a>(all: impl IntoIterator<Item = &'a Mentions>) -> Self {
        let mut union = Self::default();
        all.into_iter().for_each(|mentions| union.extend(mentions));
        union
    }

    /// The mentions as Discord writes them: `<@&role> <@user>`.
    pub fn to_content(&self) -> String {
        let roles = self.roles.iter().map(|id| format!("<@&{id}>"));
        let users = self.users.iter().map(|id| format!("<@{id}>"));
        roles.chain(users).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_mentions_as_discord_does() {
        let mentions = Mentions { roles: BTreeSet::from([2, 1]), users: BTreeSet::from([3]) };
        assert_eq!(mentions.to_content(), "<@&1> <@&2> <@3>");
    }

    #[test]
    fn an_owner_destination_is_named_by_its_url_and_known_by_its_name() {
        let url = WebhookUrl::parse_discord_only("https://discord.com/api/webhooks/9/tok").unwrap();
        let owner = Destination::owner(url);
        assert_eq!((owner.origin(), owner.name.len()), (Origin::Owner, OWNER_PREFIX.len() + 12));
        assert_eq!(Origin::of(DEFAULT_DESTINATION), Origin::Configured);
    }

    #[test]
    fn one_webhook_on_any_of_discords_hosts_is_one_owner_destination() {
        let name = |url: &str| Destination::owner(WebhookUrl::parse_discord_only(url).unwrap()).name;
        let discord = name("https://discord.com/api/webhooks/9/tok");
        assert_eq!(name("https://discordapp.com/api/webhooks/9/tok"), discord);
        assert_eq!(name("https://Canary.Discord.com/api/webhooks/9/tok"), discord);
        // Discord's own spellings of its path: an API version, a trailing slash.
        assert_eq!(name("https://discord.com/api/v10/webhooks/9/tok"), discord);
        assert_eq!(name("https://discord.com/api/webhooks/9/tok/"), discord);
        assert_ne!(name("https://discord.com/api/webhooks/9/other"), discord);
        assert_ne!(name("https://discord.com/api/webhooks/9/tok?thread_id=123456789012345678"), discord);
    }
}
