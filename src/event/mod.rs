//! The Marzban-family payload model and its normalisation.
//!
//! Marzban 0.8 POSTs a JSON array of notifications; PasarGuard posts objects or arrays with ISO
//! `expire` and `proxy_settings`; Marzneshin posts one object with no top-level `username`, an
//! `expire_date` and flags instead of `status`. [`parse_batch`] turns any of those into [`Event`]s
//! whose shape is the same for every panel, so templates and routing never care where an event came
//! from.
//!
//! Where the panels differ in meaning rather than shape, the [`Family`] of each body decides: which
//! fields a re-send changes (the de-duplication fingerprint), whether `enqueued_at` is an event time
//! (PasarGuard) or the panel's start time (Marzban), and which events a panel names otherwise than
//! the Marzban family does (Marzneshin's cut-off `user_deactivated`, PasarGuard's next-plan
//! `data_usage_reset`): those get the Marzban family's action, the panel's own in
//! [`Event::original_action`].
//!
//! Secret fields (see [`SECRET_KEYS`]) are removed here, at the edge: nothing after this module can
//! see a subscription link, a proxy credential or an admin's own Discord webhook, except the one
//! field [`Event::owner_webhook`] that per-admin delivery needs and that is never serialised.
mod batch;
mod json;
mod node;
mod normalise;
mod state;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use json::serialize_unix;

pub use batch::{parse_batch, Batch, BodyError, Rejection, REJECTIONS_SHOWN};
pub use json::{parse_datetime, unix_seconds};
pub use node::{is_known_action, is_watch_action, known_actions, known_actions_list, NodeContext, WATCH_ACTIONS};
pub use normalise::strip_secrets;
pub use state::{Change, PlanState, UserState, STATE_MAX_BYTES};

/// The actions the panels send: Marzban's and PasarGuard's twelve and Marzneshin's two more.
pub const KNOWN_ACTIONS: &[&str] = &[
    "user_created",
    "user_updated",
    "user_deleted",
    "user_limited",
    "user_expired",
    "user_enabled",
    "user_disabled",
    "data_usage_reset",
    "data_reset_by_next",
    "subscription_revoked",
    "reached_usage_percent",
    "reached_days_left",
    "user_activated",
    "user_deactivated",
];

/// Keys removed from every payload, at any depth, before anything else sees it.
pub const SECRET_KEYS: &[&str] =
    &["links", "subscription_url", "proxies", "proxy_settings", "key", "discord_webhook", "telegram_id"];

/// The fields a Marzban or PasarGuard re-send changes (`tries` + 1, a later `send_at`): left out of
/// the fingerprint, so a re-send matches the notification it repeats.
const RESEND_KEYS: &[&str] = &["tries", "send_at"];

/// How long after PasarGuard queued an event its `enqueued_at` is still believed. With its defaults
/// an event goes out within 30 s and is retried twice, 180 s apart (about 7 minutes in all); older
/// than this the panel's clock is not to be trusted and the receive time is used.
const PASARGUARD_MAX_DELAY: time::Duration = time::Duration::minutes(15);

/// How far PasarGuard's `enqueued_at` may lie after the receive time (the panel's clock a little
/// ahead of the relay's) and still be believed; it then counts as the receive time itself, so an
/// event never seems to happen after it arrived. Further ahead, the receive time is used.
const PASARGUARD_MAX_SKEW: time::Duration = time::Duration::seconds(60);

/// The longest action name accepted. Real ones are under 25 characters.
const ACTION_MAX_CHARS: usize = 64;

/// The most characters kept of a user's or an admin's name: Marzban allows 32, so real names are
/// whole, while a longer one (a sender may put a megabyte there) is cut to this many, its last
/// character `…`. Names become the outbox's columns, forum posts' keys, report lists and log
/// lines: each holds a name of at most this size.
pub const NAME_MAX_CHARS: usize = 64;

/// `name`, cut to [`NAME_MAX_CHARS`] characters (on a character boundary, the last one `…`) when
/// longer.
pub fn cut_name(mut name: String) -> String {
    let mut starts = name.char_indices().map(|(at, _)| at);
    if let Some(kept_end) = starts.nth(NAME_MAX_CHARS - 1) {
        if starts.next().is_some() {
            name.truncate(kept_end);
            name.push('…');
        }
    }
    name
}

/// The panel software a notification came from, told apart by the shape of its body: the panels
/// share action names but not what their fields mean, nor how they re-send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Marzban 0.8 (and anything with the Marzban envelope that is not PasarGuard).
    Marzban,
    /// PasarGuard: the Marzban envelope with a `user.id`, `user.proxy_settings` or `by.id`.
    PasarGuard,
    /// Marzneshin: `{created_at, user, action, by}`, without the `enqueued_at`/`send_at`/`tries`
    /// envelope.
    Marzneshin,
}

impl Family {
    /// Which panel sent `map`. Reads only key names, never values.
    pub fn of(map: &Map<String, Value>) -> Self {
        let has =
            |object: Option<&Value>, key: &str| object.and_then(Value::as_object).is_some_and(|o| o.contains_key(key));
        let (user, by) = (map.get("user"), map.get("by"));
        let envelope = ["enqueued_at", "send_at", "tries"].iter().any(|key| map.contains_key(*key));
        let marzneshin_user = has(user, "owner_username") || has(user, "expire_strategy");
        if !envelope && (map.contains_key("created_at") || marzneshin_user) {
            Family::Marzneshin
        } else if has(user, "proxy_settings") || has(user, "id") || has(by, "id") {
            Family::PasarGuard
        } else {
            Family::Marzban
        }
    }

    /// The fields a re-send of this family's notifications changes, or `None` when the family never
    /// re-sends (and so two identical bodies are two real events).
    ///
    /// Marzban re-sends a failed batch with `tries` and `send_at` changed and nothing else; its
    /// `enqueued_at` is the panel's start time, the same for every event, so keeping it in the
    /// fingerprint changes nothing. PasarGuard re-sends the same payload (with `tries`/`send_at`
    /// changed when it retries), and its `enqueued_at` is the real enqueue time: kept, it tells two
    /// events with the same content apart. Marzneshin never re-sends, and its `created_at` is fixed
    /// at panel start, so disabling a user twice gives two identical bodies: no fingerprint at all.
    /// Whether the notification in `map` may be a re-send of one already received.
    fn may_be_resend(self, map: &Map<String, Value>) -> bool {
        match self {
            Family::Marzban => map.get("tries").and_then(Value::as_f64).is_some_and(|tries| tries >= 1.0),
            Family::PasarGuard => true,
            Family::Marzneshin => false,
        }
    }

    fn resend_keys(self) -> Option<&'static [&'static str]> {
        match self {
            Family::Marzban | Family::PasarGuard => Some(RESEND_KEYS),
            Family::Marzneshin => None,
        }
    }
}

/// An action name: 1 to 64 characters of ASCII letters, digits, `_` and `-`. Unknown names are
/// fine; they are rendered with the default template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Action(String);

impl Action {
    pub fn parse(value: &str) -> Result<Self, String> {
        let valid_chars = value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if value.is_empty() || value.len() > ACTION_MAX_CHARS || !valid_chars {
            return Err(format!("`action` must be 1 to {ACTION_MAX_CHARS} characters of letters, digits, '_' or '-'"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One user event, normalised. Serialising it gives exactly the template context.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened, in the Marzban family's words: the panel's action, or what it really is when
    /// the panel names it otherwise (see `original_action`).
    pub action: Action,
    /// The panel's own name for the event when `action` differs from it: Marzneshin's cut-off
    /// `user_deactivated` (presented as `user_limited`/`user_expired`) and PasarGuard's next-plan
    /// `data_usage_reset` (presented as `data_reset_by_next`). `None` otherwise.
    pub original_action: Option<Action>,
    /// The user's name: the top-level `username`, or `user.username` (Marzneshin). Empty if neither.
    pub username: String,
    /// The label of the panel that sent it, when the relay serves several.
    pub panel: Option<String>,
    /// When it happened: PasarGuard's `enqueued_at` when plausible, otherwise the receive time
    /// (Marzban's `enqueued_at` and Marzneshin's `created_at` are the panel's start time, not event
    /// times). The embed's timestamp.
    #[serde(serialize_with = "serialize_unix")]
    pub event_time: OffsetDateTime,
    /// When the relay received it.
    #[serde(serialize_with = "serialize_unix")]
    pub received_at: OffsetDateTime,
    /// The user as the panel described it; `None` for `user_deleted`.
    pub user: Option<User>,
    /// The admin who acted; `None` for events the panel raised by itself.
    pub by: Option<Admin>,
    /// The admin who owns the user (`user.admin`, or Marzneshin's `owner_username`).
    pub admin: Option<Admin>,
    /// `reached_usage_percent`: the usage that triggered it, in percent; computed from the user's
    /// traffic and limit when the panel sends none (Marzneshin).
    pub used_percent: Option<f64>,
    /// Whole days until the user expires: the panel's own count (`reached_days_left`), or computed
    /// from `user.expire` at the event time, once, when the event is received (0 once expired);
    /// `None` for users who never expire.
    pub days_left: Option<i64>,
    /// Bytes the user has left this period (`data_limit - used_traffic`, at least 0); `None` when
    /// unlimited or unknown.
    pub remaining: Option<i64>,
    /// `user_disabled`: the panel's reason, when it gives one.
    pub reason: Option<String>,
    /// The owning admin's own Discord webhook (or the acting admin's when the user is gone), for
    /// per-admin delivery. Never serialised, never logged.
    #[serde(skip)]
    pub owner_webhook: Option<String>,
    /// Which panel software sent it.
    pub family: Family,
    /// Identifies a re-send of the same notification (same content apart from `tries`/`send_at`);
    /// `None` for panels that never re-send (Marzneshin), whose events are never de-duplicated.
    #[serde(skip)]
    pub fingerprint: Option<String>,
    /// Whether this may be a re-send, to be checked against what was stored: a Marzban event only
    /// once `tries` is 1 or more (a first attempt is always a new event, even one that looks exactly
    /// like a recent one, such as a second deletion of a re-created user); a PasarGuard event always
    /// (it re-sends unchanged, and its `enqueued_at` tells distinct events apart).
    #[serde(skip)]
    pub may_be_resend: bool,
    /// Node watch events (`node_*`, `core_*`, `panel_*`): the node, or the core or panel, the event
    /// is about. `None` for the panels' own events.
    pub node: Option<NodeContext>,
}

/// A panel user. Every field a default template uses is always present (null when unknown), so a
/// strict template can tell a typo from a missing value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct User {
    pub username: Option<String>,
    /// `active`, `disabled`, `limited`, `expired` or `on_hold` (derived from Marzneshin's flags).
    pub status: Option<String>,
    /// Bytes used in the current period.
    pub used_traffic: Option<i64>,
    pub lifetime_used_traffic: Option<i64>,
    /// Bytes allowed per period; `None` means unlimited (the panels' 0 and null both become `None`).
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: Option<String>,
    /// Expiry as unix seconds, whatever form the panel sent; `None` means never.
    pub expire: Option<i64>,
    pub created_at: Option<String>,
    pub online_at: Option<String>,
    pub sub_updated_at: Option<String>,
    pub sub_last_user_agent: Option<String>,
    /// When an on-hold user's hold ends even without a first connection, in unix seconds (the
    /// panels send an ISO datetime, UTC when it has no offset; Marzneshin's `activation_deadline`).
    /// A value that is no time is left out rather than failing the template.
    pub on_hold_timeout: Option<i64>,
    /// Seconds an on-hold user gets once activated (Marzneshin's `usage_duration`).
    pub on_hold_expire_duration: Option<i64>,
    pub auto_delete_in_days: Option<i64>,
    /// What the panel applies when the user runs out of data or time (Marzban, PasarGuard).
    pub next_plan: Option<NextPlan>,
    /// The names of the protocols the user has (`vless`, `vmess`, `trojan`, `shadowsocks`…), read
    /// from Marzban's `proxies` (or `inbounds`) and PasarGuard's `proxy_settings` before those are
    /// stripped: only the names, never an id, password or flow. Empty when the panel sends none
    /// (Marzneshin, whose users have services instead).
    pub protocols: Vec<String>,
    /// Free text written by admins.
    pub note: Option<String>,
    /// The admin who owns the user (Marzneshin: only `owner_username` is known).
    pub admin: Option<Admin>,
    /// Everything else the panel sent, minus secrets (e.g. PasarGuard's `group_names`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user's next plan, as Marzban and PasarGuard send it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NextPlan {
    /// Bytes allowed once the plan applies; `None` means unlimited.
    pub data_limit: Option<i64>,
    /// The panel's `expire` as sent.
    pub expire: Option<i64>,
    /// When `expire` is a length of time (PasarGuard: seconds from when the plan applies), that
    /// length in seconds; `None` otherwise.
    pub expire_duration: Option<i64>,
    /// When `expire` is a point in time (Marzban: unix seconds), that time; `None` otherwise.
    pub expire_date: Option<i64>,
    /// Whether the traffic left over is added to the new limit.
    pub add_remaining_traffic: bool,
    /// Everything else the panel sent (`user_template_id`, `fire_on_either`…).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A panel admin (`by`, `user.admin`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Admin {
    pub username: Option<String>,
    pub is_sudo: Option<bool>,
    pub users_usage: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
