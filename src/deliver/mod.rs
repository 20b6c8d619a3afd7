//! Delivery: one task per destination takes the oldest pending rows, packs them into as few Discord
//! messages as the limits allow, sends, and records what Discord said.
//!
//! Order is the order received: the head of a destination's queue blocks the rows behind it while
//! it is retried, so nothing overtakes anything. What Discord's answer means is decided in
//! [`discord::classify`]; what to do about it is decided here, in [`Worker::try_deliver_once`]:
//!
//! * delivered: mark the rows delivered;
//! * 429: wait `retry_after` (a long cool-down if Discord gave none), not counted as a failure;
//! * 5xx / timeout / connection error: count an attempt and wait per the retry schedule, with
//!   jitter; rows older than the retry horizon become dead letters;
//! * 400: a packed message is re-sent one embed per message to find the refused one, which alone
//!   becomes a dead letter with Discord's answer;
//! * 401/403/404: the webhook is gone; pause the destination, keep its rows, say so loudly.
//!
//! Pacing: the task waits when the rate-limit headers say the bucket is empty, and keeps to
//! Discord's hidden per-channel limit (about 30 messages a minute) on its own. A burst of one action
//! (more than `digest_threshold` pending) goes out as digest embeds listing the users.
//!
//! Forum mode ([`forum`]): a forum destination's messages go into one post per user (and one per
//! day for digests), looked up in and recorded to the outbox.

mod app_webhook;
mod digest;
mod dispatch;
mod forum;
mod menu;
mod pacer;
mod pack;
pub mod preview;
mod settings;
pub(crate) mod supervise;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use app_webhook::{AppWebhookSettings, AppWebhooks};
pub use digest::DIGEST_LOOKAHEAD;
pub use dispatch::{Delivery, Dispatch, Retention};
pub use forum::{new_post, node_post};
pub use menu::{menu_panel_key, user_menus, MENU_PREFIX};
pub use pack::{
    build_message, digest_chunks, digest_members, fitting_parts, mention_chars, next_message, DIGEST_EMBED_BUDGET,
};
pub use settings::DeliverySettings;
pub use worker::Worker;

use crate::discord;
use crate::metrics::{Health, Metrics};
use crate::outbox::Outbox;
use crate::render::Templates;

/// What one delivery step did, and so what the task does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing is pending.
    Idle,
    /// A message went out (or rows were settled); look for more right away.
    Progress,
    /// Try again after this long.
    Wait(Duration),
    /// The destination is paused (webhook gone); nothing is sent until restart.
    Paused,
}

/// What every delivery task shares.
#[derive(Clone)]
pub struct Services {
    pub outbox: Outbox,
    pub client: discord::Client,
    pub templates: Arc<Templates>,
    pub settings: Arc<DeliverySettings>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Finds or makes the relay's own webhooks of channel destinations (with `DISCORD_BOT_TOKEN`).
    pub app_webhooks: Option<AppWebhooks>,
}

/// What a message carried, which decides how a refusal is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Embeds,
    Digest,
}
