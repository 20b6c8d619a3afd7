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

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

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
    pub next_plan: Option<Value>,
    /// Free text written by admins.
    pub note: Option<String>,
    /// The admin who owns the user (Marzneshin: only `owner_username` is known).
    pub admin: Option<Admin>,
    /// Everything else the panel sent, minus secrets (e.g. PasarGuard's `group_names`).
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

/// A request body that is not a batch of events at all.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body must be a JSON array of events or a single event object, not {0}")]
    NotEventOrBatch(&'static str),
}

/// One element of a batch that could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// How many rejected elements a [`Batch`] describes; the rest are only counted.
pub const REJECTIONS_SHOWN: usize = 100;

/// A parsed request body: the good events, in order, and what was wrong with the bad elements.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The first [`REJECTIONS_SHOWN`] bad elements.
    pub rejected: Vec<Rejection>,
    /// How many elements were bad in all.
    pub rejected_total: usize,
}

impl Batch {
    fn add(&mut self, index: usize, element: Value, received_at: OffsetDateTime, panel: Option<&str>) {
        match Event::from_value(element, received_at, panel) {
            Ok(event) => self.events.push(event),
            Err(error) => {
                self.rejected_total += 1;
                if self.rejected.len() < REJECTIONS_SHOWN {
                    self.rejected.push(Rejection { index, error });
                }
            }
        }
    }
}

/// Parses a webhook body (an array or a single object) into events. Only a body that is not JSON,
/// or JSON that is neither an array nor an object, fails as a whole.
///
/// An array is read one element at a time, so a body of millions of tiny elements costs memory
/// for the events it holds, not for a tree of the whole body.
pub fn parse_batch(body: &[u8], received_at: OffsetDateTime, panel: Option<&str>) -> Result<Batch, BodyError> {
    let mut batch = Batch::default();
    if body.trim_ascii_start().first() != Some(&b'[') {
        match serde_json::from_slice::<Value>(body)? {
            object @ Value::Object(_) => batch.add(0, object, received_at, panel),
            other => return Err(BodyError::NotEventOrBatch(kind_of(&other))),
        }
        return Ok(batch);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde::Deserializer::deserialize_seq(
        &mut deserializer,
        Elements(|index, element| batch.add(index, element, received_at, panel)),
    )?;
    deserializer.end()?;
    Ok(batch)
}

/// Hands each element of a JSON array to a function as soon as it is parsed.
struct Elements<F>(F);

impl<'de, F: FnMut(usize, Value)> serde::de::Visitor<'de> for Elements<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(element) = seq.next_element::<Value>()? {
            (self.0)(index, element);
            index += 1;
        }
        Ok(())
    }
}

impl Event {
    /// Normalises one notification. Errors say what is wrong without quoting any value.
    pub fn from_value(element: Value, received_at: OffsetDateTime, panel: Option<&str>) -> Result<Self, String> {
        let Value::Object(mut map) = element else {
            return Err(format!("element must be an object, not {}", kind_of(&element)));
        };
        let family = Family::of(&map);
        let event_time = match family {
            Family::PasarGuard => enqueue_time(map.get("enqueued_at"), received_at).unwrap_or(received_at),
            Family::Marzban | Family::Marzneshin => received_at,
        };
        let owner_webhook = owner_webhook(&map);
        // Before stripping: the subscription token is made when the panel builds the event, so it
        // tells two identical-looking events apart while a re-send keeps it.
        let fingerprint = family.resend_keys().map(|resend_keys| fingerprint(&map, panel, resend_keys));
        strip_secrets(&mut map);

        let action = match map.remove("action") {
            Some(Value::String(action)) => Action::parse(&action)?,
            Some(Value::Null) | None => return Err("missing `action`".into()),
            Some(other) => return Err(format!("`action` must be a string, not {}", kind_of(&other))),
        };
        let user = match map.remove("user") {
            Some(Value::Object(user)) => Some(User::from_map(user)),
            Some(Value::Null) | None => None,
            Some(other) => return Err(format!("`user` must be an object or null, not {}", kind_of(&other))),
        };
        let by_sent = map.contains_key("by");
        let by = match map.remove("by") {
            Some(Value::Object(by)) => Some(Admin::from_map(by)),
            Some(Value::Null) | None => None,
            Some(other) => return Err(format!("`by` must be an object or null, not {}", kind_of(&other))),
        };
        let username = match map.remove("username") {
            Some(Value::String(name)) => name,
            Some(Value::Null) | None => user.as_ref().and_then(|u| u.username.clone()).unwrap_or_default(),
            Some(other) => return Err(format!("`username` must be a string, not {}", kind_of(&other))),
        };
        let (action, original_action) = match renamed(family, &action, by_sent, by.as_ref(), user.as_ref()) {
            Some(name) => (Action(name.to_owned()), Some(action)),
            None => (action, None),
        };
        let admin = user.as_ref().and_then(|u| u.admin.clone());
        let used_percent = used_percent(&map, &action, user.as_ref());
        let days_left = days_left(&map, user.as_ref(), event_time);
        let remaining = user.as_ref().and_then(User::remaining);
        Ok(Self {
            action,
            original_action,
            username,
            panel: panel.map(str::to_owned),
            event_time,
            received_at,
            admin,
            user,
            by,
            used_percent,
            days_left,
            remaining,
            reason: map.get("reason").and_then(Value::as_str).map(str::to_owned),
            owner_webhook,
            family,
            fingerprint,
        })
    }
}

impl Event {
    /// The action and, when the relay renamed the event, the panel's own name for it: an action
    /// list (a rule's `actions`, `mute`) that names either one matches the event.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.action.as_str()).chain(self.original_action.as_ref().map(Action::as_str))
    }
}

/// The action an event really is when its panel's name for it hides that, for templates and rules
/// to treat it like the same event from any other panel; `None` when the panel's name is right.
fn renamed(
    family: Family,
    action: &Action,
    by_sent: bool,
    by: Option<&Admin>,
    user: Option<&User>,
) -> Option<&'static str> {
    match (family, action.as_str()) {
        // PasarGuard sends a next-plan reset as `data_usage_reset` without any `by` key, while its
        // manual, bulk and scheduled resets always carry one (the scheduler's is "system").
        (Family::PasarGuard, "data_usage_reset") if !by_sent => Some("data_reset_by_next"),
        // Marzneshin's review job reports a user cut off by its data limit or expiry as
        // `user_deactivated` by nobody; an admin's deactivation names the admin.
        (Family::Marzneshin, "user_deactivated") if by.is_none() => match user?.status.as_deref()? {
            "expired" => Some("user_expired"),
            "limited" => Some("user_limited"),
            _ => None,
        },
        _ => None,
    }
}

impl User {
    /// Bytes left this period, at least 0; `None` when unlimited.
    fn remaining(&self) -> Option<i64> {
        let used = self.used_traffic.unwrap_or(0).max(0);
        Some(self.data_limit?.saturating_sub(used).max(0))
    }

    /// `used_traffic` as a percentage of `data_limit`; `None` when unlimited or unknown.
    fn used_percent(&self) -> Option<f64> {
        let (used, limit) = (self.used_traffic?.max(0), self.data_limit.filter(|limit| *limit > 0)?);
        Some(used as f64 / limit as f64 * 100.0)
    }

    fn from_map(mut map: Map<String, Value>) -> Self {
        let status = take_str(&mut map, "status").or_else(|| marzneshin_status(&map));
        let expire = map.remove("expire").or_else(|| map.remove("expire_date"));
        let admin = match map.remove("admin") {
            Some(Value::Object(admin)) => Some(Admin::from_map(admin)),
            _ => take_str(&mut map, "owner_username").map(|name| Admin { username: Some(name), ..Admin::default() }),
        };
        User {
            username: take_str(&mut map, "username"),
            status,
            used_traffic: take_int(&mut map, "used_traffic"),
            lifetime_used_traffic: take_int(&mut map, "lifetime_used_traffic"),
            // Marzban means 0 as "no limit", the same as null.
            data_limit: take_int(&mut map, "data_limit").filter(|limit| *limit > 0),
            data_limit_reset_strategy: take_str(&mut map, "data_limit_reset_strategy"),
            expire: expire.as_ref().and_then(unix_seconds),
            created_at: take_str(&mut map, "created_at"),
            online_at: take_str(&mut map, "online_at"),
            sub_updated_at: take_str(&mut map, "sub_updated_at"),
            sub_last_user_agent: take_str(&mut map, "sub_last_user_agent"),
            // Marzneshin's `start_on_first_use` user: `activation_deadline` is when the hold ends
            // at the latest, `usage_duration` how long the user lasts once first used.
            on_hold_timeout: map
                .remove("on_hold_timeout")
                .filter(|v| !v.is_null())
                .or_else(|| map.remove("activation_deadline"))
                .as_ref()
                .and_then(unix_seconds),
            on_hold_expire_duration: take_int(&mut map, "on_hold_expire_duration")
                .or_else(|| take_int(&mut map, "usage_duration"))
                .filter(|seconds| *seconds > 0),
            auto_delete_in_days: take_int(&mut map, "auto_delete_in_days"),
            next_plan: map.remove("next_plan").filter(|v| !v.is_null()),
            note: take_str(&mut map, "note"),
            admin,
            extra: map,
        }
    }
}

impl Admin {
    fn from_map(mut map: Map<String, Value>) -> Self {
        Self {
            username: take_str(&mut map, "username"),
            is_sudo: map.remove("is_sudo").and_then(|v| v.as_bool()),
            users_usage: take_int(&mut map, "users_usage"),
            extra: map,
        }
    }
}

/// Marzneshin sends flags instead of a status; map them to Marzban's status names. A
/// `start_on_first_use` user is on hold until first used. `activated: false` is not on hold: it
/// means the user is not pushed to the nodes right now (disabled, expired, limited, or deleted).
fn marzneshin_status(map: &Map<String, Value>) -> Option<String> {
    let flag = |key: &str| map.get(key).and_then(Value::as_bool);
    let on_first_use = map.get("expire_strategy").and_then(Value::as_str) == Some("start_on_first_use");
    let status = match (flag("enabled")?, flag("expired"), flag("data_limit_reached")) {
        (false, ..) => "disabled",
        (true, Some(true), _) => "expired",
        (true, _, Some(true)) => "limited",
        _ if on_first_use => "on_hold",
        _ => "active",
    };
    Some(status.to_owned())
}

/// The usage that triggered a `reached_usage_percent`: the panel's figure, or, since Marzneshin
/// sends none, computed from the user's traffic (else `min_used_percent` rules and the template's
/// sentence would never see it).
///
/// Rounded to two decimals, as shown: PasarGuard sends `59.9999999627471` for a 60 % warning, and a
/// `min_used_percent = 60` rule must match what the card calls 60 %.
fn used_percent(map: &Map<String, Value>, action: &Action, user: Option<&User>) -> Option<f64> {
    let sent = map.get("used_percent").and_then(Value::as_f64).filter(|p| p.is_finite());
    let percent = sent.or_else(|| (action.as_str() == "reached_usage_percent").then(|| user?.used_percent()).flatten());
    percent.map(|p| (p * 100.0).round() / 100.0).filter(|p| p.is_finite())
}

/// Whole days left, never negative: the panel's count, or from `user.expire` at `at`, rounded to
/// the nearest day (Marzneshin warns when the expiry is between N days and N days + 30 s away and
/// sends no count: a second of delay or clock skew must not turn 3 days into 2). Computed once,
/// when the event is received, and kept with it (its rendered message is stored): a retry or a
/// later look at it says what was true when it happened.
fn days_left(map: &Map<String, Value>, user: Option<&User>, at: OffsetDateTime) -> Option<i64> {
    let counted = || Some(user?.expire?.saturating_sub(at.unix_timestamp()).saturating_add(43_200).div_euclid(86_400));
    map.get("days_left").and_then(as_int).or_else(counted).map(|days| days.max(0))
}

/// PasarGuard's `enqueued_at` (float unix seconds) as a time, if it is plausible for an event
/// received at `received_at`: at most [`PASARGUARD_MAX_DELAY`] before it, or at most
/// [`PASARGUARD_MAX_SKEW`] after it (then the receive time).
fn enqueue_time(value: Option<&Value>, received_at: OffsetDateTime) -> Option<OffsetDateTime> {
    let seconds = value?.as_f64().filter(|s| s.is_finite())?;
    // Python sends microseconds; `as` saturates, and anything out of range is refused just below.
    let micros = (seconds * 1e6).round() as i128;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros.saturating_mul(1000)).ok()?;
    if at > received_at {
        return (at - received_at <= PASARGUARD_MAX_SKEW).then_some(received_at);
    }
    (received_at - at <= PASARGUARD_MAX_DELAY).then_some(at)
}

/// The per-admin webhook, read before secrets are stripped: the owning admin's, or the acting
/// admin's when the event has no user (a deletion).
fn owner_webhook(map: &Map<String, Value>) -> Option<String> {
    let from =
        |admin: Option<&Value>| admin.and_then(|a| a.get("discord_webhook")).and_then(Value::as_str).map(str::to_owned);
    match map.get("user").filter(|u| u.is_object()) {
        Some(user) => from(user.get("admin")),
        None => from(map.get("by")),
    }
    .filter(|url| !url.trim().is_empty())
}

/// Removes every key in [`SECRET_KEYS`] from `map`, recursively.
pub fn strip_secrets(map: &mut Map<String, Value>) {
    map.retain(|key, _| !SECRET_KEYS.contains(&key.as_str()));
    for value in map.values_mut() {
        strip_value(value);
    }
}

fn strip_value(value: &mut Value) {
    match value {
        Value::Object(map) => strip_secrets(map),
        Value::Array(items) => items.iter_mut().for_each(strip_value),
        _ => {}
    }
}

/// A hash of the notification without `resend_keys`. Only the hash is kept, so the secrets it covers
/// cannot be read back from it.
fn fingerprint(map: &Map<String, Value>, panel: Option<&str>, resend_keys: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(panel.unwrap_or_default().as_bytes());
    hasher.update([0]);
    let stable: Map<String, Value> =
        map.iter().filter(|(k, _)| !resend_keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    // serde_json's Map is ordered by key, so equal content always serialises the same.
    hasher.update(serde_json::to_vec(&stable).unwrap_or_default());
    hex::encode(hasher.finalize())
}

fn take_str(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn take_int(map: &mut Map<String, Value>, key: &str) -> Option<i64> {
    map.remove(key).as_ref().and_then(as_int)
}

/// An integer from a JSON number; floats are truncated, anything else is no value.
fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Unix seconds from a number (unix seconds) or an ISO 8601 datetime, with or without an offset
/// (without one it is UTC, as the panels mean it).
pub fn unix_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(_) => as_int(value),
        Value::String(text) => parse_datetime(text).map(OffsetDateTime::unix_timestamp),
        _ => None,
    }
}

/// Parses an ISO 8601 datetime as the panels send it: RFC 3339 with `Z` or an offset, or without
/// any offset (UTC), with or without fractional seconds; a bare date is midnight UTC.
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(dt);
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(dt) = PrimitiveDateTime::parse(text, naive) {
        return Some(dt.assume_utc());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, date).ok().map(|d| d.midnight().assume_utc())
}

fn serialize_unix<S: serde::Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(at.unix_timestamp_nanos() as f64 / 1e9)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn one(value: Value) -> Result<Event, String> {
        Event::from_value(value, now(), None)
    }

    #[test]
    fn accepts_an_array_or_a_single_object() {
        let batch = parse_batch(br#"[{"action":"user_created","username":"a"}]"#, now(), None).unwrap();
        assert_eq!(batch.events.len(), 1);
        let batch = parse_batch(br#"{"action":"user_created","username":"a"}"#, now(), None).unwrap();
        assert_eq!(batch.events.len(), 1);
    }

    #[test]
    fn refuses_bodies_that_are_not_batches() {
        assert!(matches!(parse_batch(b"hello", now(), None), Err(BodyError::NotJson(_))));
        assert!(matches!(parse_batch(b"[{", now(), None), Err(BodyError::NotJson(_))));
        assert!(matches!(parse_batch(b"42", now(), None), Err(BodyError::NotEventOrBatch("a number"))));
    }

    #[test]
    fn describes_the_first_hundred_bad_elements_and_counts_the_rest() {
        let body = format!("[{}]", vec!["{}"; 1000].join(","));
        let batch = parse_batch(body.as_bytes(), now(), None).unwrap();
        assert_eq!(batch.rejected_total, 1000);
        assert_eq!(batch.rejected.len(), REJECTIONS_SHOWN);
        assert_eq!(batch.rejected.last().unwrap().index, REJECTIONS_SHOWN - 1);
        assert!(matches!(parse_batch(b"[{}] trailing", now(), None), Err(BodyError::NotJson(_))));
        assert!(matches!(parse_batch(b"  []", now(), None), Ok(Batch { rejected_total: 0, .. })));
    }

    #[test]
    fn rejects_bad_elements_and_keeps_good_ones() {
        let body = br#"[{"action":"user_created","username":"a"}, 5, {"username":"b"}, {"action":7},
                        {"action":"x","user":"nope"}, {"action":"user_deleted","username":"c"}]"#;
        let batch = parse_batch(body, now(), None).unwrap();
        assert_eq!(batch.events.iter().map(|e| e.username.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        let indexes: Vec<usize> = batch.rejected.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [1, 2, 3, 4]);
        assert_eq!(batch.rejected[1].error, "missing `action`");
    }

    #[test]
    fn takes_the_username_from_the_user_when_absent() {
        let event = one(json!({"action":"user_deactivated","user":{"username":"kate"}})).unwrap();
        assert_eq!(event.username, "kate");
    }

    #[test]
    fn normalises_expire_from_int_or_iso() {
        for (expire, expected) in [
            (json!(1798393156), Some(1798393156)),
            (json!("2026-01-31T20:30:00Z"), Some(1769891400)),
            (json!("2026-01-31T20:30:00"), Some(1769891400)),
            (json!("2026-01-31T23:30:00+03:00"), Some(1769891400)),
            (json!("2026-01-31T20:30:00.123456"), Some(1769891400)),
            (json!(null), None),
            (json!("soon"), None),
        ] {
            let event = one(json!({"action":"a","user":{"expire": expire}})).unwrap();
            assert_eq!(event.user.unwrap().expire, expected, "{expire}");
        }
    }

    #[test]
    fn removes_every_secret_at_any_depth() {
        let event = one(json!({
            "action": "user_created",
            "by": {"username": "root", "telegram_id": 1, "discord_webhook": "https://discord.com/api/webhooks/1/x"},
            "user": {
                "username": "u", "links": ["vless://x"], "subscription_url": "/sub/x",
                "proxies": {"vless": {"id": "x"}}, "proxy_settings": {}, "key": "k",
                "next_plan": {"nested": {"subscription_url": "/sub/y"}},
                "admin": {"username": "owner", "discord_webhook": "https://discord.com/api/webhooks/2/y"}
            }
        }))
        .unwrap();
        let context = serde_json::to_string(&event).unwrap();
        for secret in
            ["links", "subscription_url", "proxies", "proxy_settings", "\"key\"", "telegram_id", "discord_webhook"]
        {
            assert!(!context.contains(secret), "{secret} in {context}");
        }
        assert_eq!(event.owner_webhook.as_deref(), Some("https://discord.com/api/webhooks/2/y"));
        assert_eq!(event.admin.unwrap().username.as_deref(), Some("owner"));
    }

    #[test]
    fn a_deleted_users_webhook_is_the_acting_admins() {
        let event =
            one(json!({"action":"user_deleted","by":{"discord_webhook":"https://discord.com/api/webhooks/3/z"}}))
                .unwrap();
        assert_eq!(event.owner_webhook.as_deref(), Some("https://discord.com/api/webhooks/3/z"));
    }

    #[test]
    fn derives_a_status_from_marzneshin_flags() {
        let flags = |enabled, expired, limited, activated| {
            let user = json!({"enabled":enabled,"expired":expired,"data_limit_reached":limited,"activated":activated});
            one(json!({"action":"a","user":user})).unwrap().user.unwrap().status.unwrap()
        };
        assert_eq!(flags(false, true, true, true), "disabled");
        assert_eq!(flags(true, true, false, true), "expired");
        assert_eq!(flags(true, false, true, true), "limited");
        assert_eq!(flags(true, false, false, false), "active", "not pushed to the nodes is not on hold");
        assert_eq!(flags(true, false, false, true), "active");
    }

    #[test]
    fn a_marzneshin_cut_off_is_presented_as_limited_or_expired_keeping_its_own_name() {
        let deactivated = |by: Value, expired: bool, limited: bool| {
            let user = json!({"username":"u","enabled":true,"expired":expired,"data_limit_reached":limited});
            one(json!({"created_at":1.0,"action":"user_deactivated","by":by,"user":user})).unwrap()
        };
        let limited = deactivated(json!(null), false, true);
        assert_eq!(
            (limited.action.as_str(), limited.original_action.as_ref().map(Action::as_str)),
            ("user_limited", Some("user_deactivated"))
        );
        assert_eq!(limited.action_names().collect::<Vec<_>>(), ["user_limited", "user_deactivated"]);
        assert_eq!(deactivated(json!(null), true, false).action.as_str(), "user_expired");
        let by_admin = deactivated(json!({"username":"boss"}), true, false);
        assert_eq!((by_admin.action.as_str(), by_admin.original_action), ("user_deactivated", None));
        let context = serde_json::to_value(&limited).unwrap();
        assert_eq!(context["original_action"], "user_deactivated", "templates see the panel's name");
    }

    #[test]
    fn a_pasarguard_reset_without_by_is_a_next_plan() {
        let reset = |by: Option<Value>, user: Value| {
            let mut value = json!({"action":"data_usage_reset","username":"u","enqueued_at":1.0,"tries":0,"user":user});
            if let Some(by) = by {
                value["by"] = by;
            }
            let event = one(value).unwrap();
            (event.action.to_string(), event.original_action.map(|a| a.to_string()))
        };
        let pasarguard = json!({"id": 1, "username": "u"});
        assert_eq!(reset(None, pasarguard.clone()), ("data_reset_by_next".into(), Some("data_usage_reset".into())));
        assert_eq!(reset(Some(json!({"id": 1, "username": "system"})), pasarguard.clone()).0, "data_usage_reset");
        assert_eq!(reset(Some(json!({"id": 1, "username": "owner"})), pasarguard).0, "data_usage_reset");
        assert_eq!(reset(None, json!({"username": "u", "proxies": {}})).0, "data_usage_reset", "only PasarGuard");
    }

    #[test]
    fn a_marzneshin_start_on_first_use_user_is_on_hold_with_marzbans_fields() {
        let user = json!({"enabled": true, "expired": false, "data_limit_reached": false, "activated": true,
                          "expire_strategy": "start_on_first_use", "expire_date": null,
                          "usage_duration": 604800, "activation_deadline": "2026-12-08T01:01:00"});
        let user = one(json!({"action": "user_created", "user": user})).unwrap().user.unwrap();
        assert_eq!(user.status.as_deref(), Some("on_hold"));
        assert_eq!(user.on_hold_expire_duration, Some(604800));
        assert_eq!(user.on_hold_timeout, Some(1_796_691_660), "2026-12-08T01:01:00, UTC");
        assert_eq!(user.expire, None);
    }

    #[test]
    fn computes_days_left_and_remaining_traffic() {
        let in_days = |days: i64| now().unix_timestamp() + days * 86_400 + 3_600;
        let event =
            one(json!({"action":"a","user":{"expire": in_days(3), "data_limit": 1000, "used_traffic": 300}})).unwrap();
        assert_eq!((event.days_left, event.remaining), (Some(3), Some(700)));
        let sent = one(json!({"action":"reached_days_left","days_left":2,"user":{"expire": in_days(3)}})).unwrap();
        assert_eq!(sent.days_left, Some(2), "the panel's own count wins");
        let expired =
            one(json!({"action":"a","user":{"expire": in_days(-5), "data_limit": 10, "used_traffic": 50}})).unwrap();
        assert_eq!((expired.days_left, expired.remaining), (Some(0), Some(0)));
        let unlimited = one(json!({"action":"a","user":{"expire": null, "data_limit": 0}})).unwrap();
        assert_eq!((unlimited.days_left, unlimited.remaining), (None, None));
        let absurd =
            one(json!({"action":"a","user":{"expire": i64::MIN, "data_limit": i64::MAX, "used_traffic": i64::MIN}}))
                .unwrap();
        assert_eq!((absurd.days_left, absurd.remaining), (Some(0), Some(i64::MAX)), "clamped, no overflow");
        let far =
            one(json!({"action":"a","user":{"expire": i64::MAX, "data_limit": 1, "used_traffic": i64::MAX}})).unwrap();
        assert_eq!((far.days_left, far.remaining), (Some((i64::MAX - now().unix_timestamp()) / 86_400), Some(0)));
        let negative = one(json!({"action":"reached_days_left","days_left":-3})).unwrap();
        assert_eq!(negative.days_left, Some(0));
    }

    #[test]
    fn what_a_card_shows_is_what_rules_see() {
        // PasarGuard's real 60 % and 110 % warnings.
        let percent = |p: f64| one(json!({"action":"reached_usage_percent","used_percent":p})).unwrap().used_percent;
        assert_eq!(percent(59.9999999627471), Some(60.0));
        assert_eq!(percent(109.9999999627471), Some(110.0));
        assert_eq!(percent(87.456), Some(87.46));
        // Marzneshin warns 3 days (plus up to 30 s) ahead; a second late or a skewed clock is still 3.
        let days = |seconds: i64| {
            let expire = now().unix_timestamp() + seconds;
            one(json!({"created_at":1.0,"action":"reached_days_left","user":{"expire_date":expire}})).unwrap().days_left
        };
        assert_eq!(days(3 * 86_400 - 1), Some(3));
        assert_eq!(days(3 * 86_400 + 30), Some(3));
        assert_eq!(days(3 * 86_400 - 12 * 3600 - 1), Some(2));
        // A hold end that is no time is left out, not a failed template.
        let hold = |value: Value| {
            let user = json!({"status":"on_hold","on_hold_timeout":value});
            one(json!({"action":"user_created","username":"u","user":user})).unwrap().user.unwrap().on_hold_timeout
        };
        assert_eq!(hold(json!("garbage")), None);
        assert_eq!(hold(json!("2026-12-08T01:01:00Z")), Some(1_796_691_660));
    }

    #[test]
    fn a_pasarguard_event_happened_when_it_was_queued_if_that_is_plausible() {
        let at = |family_key: &str, enqueued_at: Value| {
            let mut value = json!({"action":"user_enabled","username":"u","enqueued_at":enqueued_at,"tries":0});
            value[family_key] = json!({"id": 1});
            let event = one(value).unwrap();
            assert_eq!(event.received_at, now());
            event.event_time.unix_timestamp_nanos()
        };
        let received = now().unix_timestamp_nanos();
        let second = 1_000_000_000;
        assert_eq!(at("user", json!(1_799_999_910.25)), received - 89_750_000_000, "90 s in the queue");
        assert_eq!(at("by", json!(1_800_000_000 - 14 * 60)), received - 14 * 60 * second);
        assert_eq!(at("user", json!(1_800_000_030.0)), received, "a panel clock 30 s ahead: the receive time");
        for implausible in
            [json!(1_800_000_061.0), json!(1_800_000_000 - 16 * 60), json!(1e300), json!(-1e300), json!("x")]
        {
            assert_eq!(at("user", implausible.clone()), received, "{implausible}: the receive time");
        }
        let marzban = one(json!({"action":"a","username":"u","enqueued_at":1_799_999_990.0,"tries":0})).unwrap();
        assert_eq!(marzban.event_time, now(), "Marzban's enqueued_at is the panel's start time");
    }

    #[test]
    fn days_left_are_counted_from_when_the_event_was_received() {
        // Marzneshin's days-left task fires when the expiry is 3 days and up to 30 s away, and
        // sends no count; a day later the same body would count 2.
        let warning =
            json!({"created_at":1.0,"action":"reached_days_left","user":{"expire_date":"2027-01-18T08:00:20"}});
        let then = Event::from_value(warning.clone(), now(), None).unwrap();
        assert_eq!(then.days_left, Some(3));
        let a_day_later = Event::from_value(warning, now() + time::Duration::DAY, None).unwrap();
        assert_eq!(a_day_later.days_left, Some(2));
        assert_eq!(serde_json::to_value(&then).unwrap()["days_left"], 3, "kept with the event");
    }

    #[test]
    fn computes_the_usage_percentage_of_a_warning_without_one() {
        let warning = |action: &str, used_percent: Value, used: Value, limit: Value| {
            let user = json!({"used_traffic": used, "data_limit": limit});
            one(json!({"created_at":1.0,"action":action,"used_percent":used_percent,"user":user})).unwrap().used_percent
        };
        assert_eq!(warning("reached_usage_percent", json!(null), json!(805306368), json!(1073741824)), Some(75.0));
        assert_eq!(
            warning("reached_usage_percent", json!(87.89), json!(1), json!(100)),
            Some(87.89),
            "the panel's wins"
        );
        assert_eq!(warning("reached_usage_percent", json!(null), json!(-5), json!(100)), Some(0.0));
        assert_eq!(warning("reached_usage_percent", json!(null), json!(5), json!(null)), None, "unlimited");
        assert_eq!(
            warning("reached_usage_percent", json!(null), json!(i64::MAX), json!(1)),
            Some(i64::MAX as f64 * 100.0)
        );
        assert_eq!(warning("user_updated", json!(null), json!(50), json!(100)), None, "only for the warning");
    }

    #[test]
    fn tolerates_wrong_types_in_detail_fields() {
        let event =
            one(json!({"action":"a","used_percent":"x","days_left":[1],"user":{"used_traffic":"lots","note":5}}))
                .unwrap();
        assert_eq!(event.used_percent, None);
        assert_eq!(event.days_left, None);
        let user = event.user.unwrap();
        assert_eq!(user.used_traffic, None);
        assert_eq!(user.note, None);
    }

    #[test]
    fn a_resend_has_the_same_fingerprint() {
        let first =
            one(json!({"action":"a","username":"u","tries":0,"send_at":1.0,"user":{"subscription_url":"/sub/1"}}))
                .unwrap();
        let resent =
            one(json!({"action":"a","username":"u","tries":1,"send_at":2.0,"user":{"subscription_url":"/sub/1"}}))
                .unwrap();
        // The same change made again later: the panel built a new subscription token for it.
        let again =
            one(json!({"action":"a","username":"u","tries":0,"send_at":1.0,"user":{"subscription_url":"/sub/2"}}))
                .unwrap();
        let other = one(json!({"action":"a","username":"v","tries":0})).unwrap();
        assert_eq!(first.fingerprint, resent.fingerprint);
        assert_ne!(first.fingerprint, again.fingerprint);
        assert_ne!(first.fingerprint, other.fingerprint);
        let other_panel = Event::from_value(json!({"action":"a","username":"u"}), now(), Some("eu1")).unwrap();
        let same_panel = Event::from_value(json!({"action":"a","username":"u"}), now(), None).unwrap();
        assert_ne!(other_panel.fingerprint, same_panel.fingerprint);
    }

    #[test]
    fn tells_the_panel_families_apart_by_their_shape() {
        let family = |value: Value| one(value).unwrap().family;
        let envelope = json!({"action":"a","username":"u","enqueued_at":1.0,"send_at":1.0,"tries":0});
        let mut marzban = envelope.clone();
        marzban["user"] = json!({"username":"u","proxies":{},"expire":1});
        marzban["by"] = json!({"username":"root","is_sudo":true});
        assert_eq!(family(marzban), Family::Marzban);
        let mut pasarguard = envelope.clone();
        pasarguard["user"] = json!({"id":3,"username":"u","proxy_settings":{}});
        assert_eq!(family(pasarguard), Family::PasarGuard);
        let mut pasarguard_deleted = envelope.clone();
        pasarguard_deleted["by"] = json!({"id":1,"username":"owner"});
        assert_eq!(family(pasarguard_deleted), Family::PasarGuard);
        let marzneshin = json!({"created_at":1.0,"action":"a","by":null,"user":{"id":1,"owner_username":"boss"}});
        assert_eq!(family(marzneshin), Family::Marzneshin);
        assert_eq!(family(json!({"action":"a","username":"u"})), Family::Marzban, "nothing to tell: Marzban");
    }

    #[test]
    fn only_panels_that_re_send_get_a_fingerprint() {
        let marzneshin = json!({"created_at":1.0,"action":"user_disabled","by":null,"user":{"username":"u","key":"k"}});
        assert_eq!(one(marzneshin).unwrap().fingerprint, None, "Marzneshin never re-sends");
        let pasarguard = |enqueued_at: f64, tries: i64| {
            let value = json!({"action":"user_disabled","username":"u","enqueued_at":enqueued_at,
                               "send_at":enqueued_at + tries as f64 * 180.0,"tries":tries,"user":{"id":1}});
            one(value).unwrap().fingerprint.expect("PasarGuard re-sends")
        };
        assert_eq!(pasarguard(10.0, 0), pasarguard(10.0, 1), "a retry is the same notification");
        assert_ne!(pasarguard(10.0, 0), pasarguard(11.0, 0), "a later enqueue is another event");
    }
}
