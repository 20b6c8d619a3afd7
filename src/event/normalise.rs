//! Normalising one notification of any panel into an [`Event`]: the family's meaning of its
//! fields, renamed actions, derived numbers, and secret fields removed.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::json::{as_int, kind_of, take_int, take_str, unix_seconds};
use super::{
    cut_name, Action, Admin, Event, Family, NextPlan, User, PASARGUARD_MAX_DELAY, PASARGUARD_MAX_SKEW, SECRET_KEYS,
};
use crate::secret::lower_hex;

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
        let may_be_resend = fingerprint.is_some() && family.may_be_resend(&map);
        // Before stripping too: the protocol names are the keys of the secret `proxies`.
        let protocols = map.get("user").map(protocols).unwrap_or_default();
        strip_secrets(&mut map);

        let action = match map.remove("action") {
            Some(Value::String(action)) => Action::parse(&action)?,
            Some(Value::Null) | None => return Err("missing `action`".into()),
            Some(other) => return Err(format!("`action` must be a string, not {}", kind_of(&other))),
        };
        let user = match map.remove("user") {
            Some(Value::Object(user)) => Some(User { protocols, ..User::from_map(user) }),
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
            Some(Value::String(name)) => cut_name(name),
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
            may_be_resend,
            node: None,
        })
    }
}

impl Event {
    /// The action and, when the relay renamed the event, the panel's own name for it: a rule's
    /// `actions` that names either one matches the event (`mute` names the presented action only).
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.action.as_str()).chain(self.original_action.as_ref().map(Action::as_str))
    }
}

/// The action an event really is when its panel's name for it hides that, for templates and rules
/// to treat it like the same event from any other panel; `None` when the panel's name is right.
pub(super) fn renamed(
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
            _ => take_str(&mut map, "owner_username")
                .map(|name| Admin { username: Some(cut_name(name)), ..Admin::default() }),
        };
        User {
            username: take_str(&mut map, "username").map(cut_name),
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
            next_plan: match map.remove("next_plan") {
                Some(Value::Object(plan)) => Some(NextPlan::from_map(plan)),
                _ => None,
            },
            protocols: Vec::new(),
            note: take_str(&mut map, "note"),
            admin,
            extra: map,
        }
    }
}

/// Below this, a next plan's `expire` is a length of time, not a date: 10⁹ seconds is 31 years, and
/// as a date September 2001, before any of the panels existed.
const NEXT_PLAN_DATE_FROM: i64 = 1_000_000_000;

impl NextPlan {
    fn from_map(mut map: Map<String, Value>) -> Self {
        let expire = take_int(&mut map, "expire").filter(|seconds| *seconds > 0);
        Self {
            data_limit: take_int(&mut map, "data_limit").filter(|limit| *limit > 0),
            expire,
            expire_duration: expire.filter(|seconds| *seconds < NEXT_PLAN_DATE_FROM),
            expire_date: expire.filter(|seconds| *seconds >= NEXT_PLAN_DATE_FROM),
            add_remaining_traffic: map.remove("add_remaining_traffic").and_then(|v| v.as_bool()).unwrap_or(false),
            extra: map,
        }
    }
}

/// The protocol names of a user, from the secret maps keyed by protocol: Marzban's `proxies` (or,
/// without it, `inbounds`), PasarGuard's `proxy_settings`, where a protocol whose settings are all
/// empty (a WireGuard without keys) is one the user does not have. Only keys that look like a
/// protocol name are kept, so nothing else from those maps can come through.
pub(super) fn protocols(user: &Value) -> Vec<String> {
    let settings = ["proxies", "proxy_settings", "inbounds"].iter().find_map(|key| user.get(key)?.as_object());
    let Some(settings) = settings else {
        return Vec::new();
    };
    settings
        .iter()
        .filter(|(_, value)| has_setting(value))
        .map(|(name, _)| name.as_str())
        .filter(|name| is_protocol_name(name))
        .map(str::to_owned)
        .collect()
}

/// Whether a protocol's settings hold anything: Marzban's `{"id": …}` or `{}` (both configured),
/// PasarGuard's `{"private_key": null, "peer_ips": []}` (not).
fn has_setting(value: &Value) -> bool {
    match value {
        Value::Object(fields) => fields.is_empty() || fields.values().any(has_value),
        _ => true,
    }
}

fn has_value(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}

/// 1 to 24 lowercase ASCII letters, digits, `-` or `_`: `vless`, `shadowsocks`, `hysteria2`.
fn is_protocol_name(name: &str) -> bool {
    (1..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Admin {
    fn from_map(mut map: Map<String, Value>) -> Self {
        Self {
            username: take_str(&mut map, "username").map(cut_name),
            is_sudo: map.remove("is_sudo").and_then(|v| v.as_bool()),
            users_usage: take_int(&mut map, "users_usage"),
            extra: map,
        }
    }
}

/// Marzneshin sends flags instead of a status; map them to Marzban's status names. A
/// `start_on_first_use` user is on hold until first used. `activated: false` is not on hold: it
/// means the user is not pushed to the nodes right now (disabled, expired, limited, or deleted).
pub(super) fn marzneshin_status(map: &Map<String, Value>) -> Option<String> {
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
pub(super) fn used_percent(map: &Map<String, Value>, action: &Action, user: Option<&User>) -> Option<f64> {
    let sent = map.get("used_percent").and_then(Value::as_f64).filter(|p| p.is_finite());
    let percent = sent.or_else(|| (action.as_str() == "reached_usage_percent").then(|| user?.used_percent()).flatten());
    percent.map(|p| (p * 100.0).round() / 100.0).filter(|p| p.is_finite())
}

/// Whole days left, never negative: the panel's count, or from `user.expire` at `at`, rounded to
/// the nearest day (Marzneshin warns when the expiry is between N days and N days + 30 s away and
/// sends no count: a second of delay or clock skew must not turn 3 days into 2). Computed once,
/// when the event is received, and kept with it (its rendered message is stored): a retry or a
/// later look at it says what was true when it happened.
pub(super) fn days_left(map: &Map<String, Value>, user: Option<&User>, at: OffsetDateTime) -> Option<i64> {
    let counted = || Some(user?.expire?.saturating_sub(at.unix_timestamp()).saturating_add(43_200).div_euclid(86_400));
    map.get("days_left").and_then(as_int).or_else(counted).map(|days| days.max(0))
}

/// PasarGuard's `enqueued_at` (float unix seconds) as a time, if it is plausible for an event
/// received at `received_at`: at most [`PASARGUARD_MAX_DELAY`] before it, or at most
/// [`PASARGUARD_MAX_SKEW`] after it (then the receive time).
pub(super) fn enqueue_time(value: Option<&Value>, received_at: OffsetDateTime) -> Option<OffsetDateTime> {
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
pub(super) fn owner_webhook(map: &Map<String, Value>) -> Option<String> {
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

pub(super) fn strip_value(value: &mut Value) {
    match value {
        Value::Object(map) => strip_secrets(map),
        Value::Array(items) => items.iter_mut().for_each(strip_value),
        _ => {}
    }
}

/// A hash of the notification without `resend_keys`. Only the hash is kept, so the secrets it covers
/// cannot be read back from it.
pub(super) fn fingerprint(map: &Map<String, Value>, panel: Option<&str>, resend_keys: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(panel.unwrap_or_default().as_bytes());
    hasher.update([0]);
    let stable: Map<String, Value> =
        map.iter().filter(|(k, _)| !resend_keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    // serde_json's Map is ordered by key, so equal content always serialises the same.
    hasher.update(serde_json::to_vec(&stable).unwrap_or_default());
    lower_hex(&hasher.finalize())
}
