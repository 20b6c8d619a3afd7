//! The panel's own counts for `/stats`: users by status, online now, traffic and the version.
//!
//! Marzban and PasarGuard answer all of it at `GET /api/system` (Marzban names the counts
//! `users_active`…, PasarGuard `active_users`…; both `total_user`, `online_users`,
//! `incoming_bandwidth`, `outgoing_bandwidth`, `version`). Marzneshin has its own endpoints:
//! `GET /api/system/stats/users` (`total`, `active`, `on_hold`, `expired`, `limited`, `online`; no
//! disabled count) and `GET /api/system/stats/traffic` (`total`: the last 30 days by default), and
//! states no version in its API.
//!
//! Every number is read as hostile input: a negative, fractional, non-finite or missing one is
//! "not reported", and a count is clamped to [`MAX_COUNT`], bytes to [`MAX_BYTES`].

use serde_json::Value;

use super::client::{unreadable, PanelClient};
use super::{Family, PanelError};

/// A count of users is clamped to this (a trillion).
pub const MAX_COUNT: u64 = 1_000_000_000_000;

/// A number of bytes is clamped to this (1 EiB).
pub const MAX_BYTES: u64 = 1 << 60;

/// A version is cut to this many characters.
pub const VERSION_MAX_CHARS: usize = 32;

/// One panel's counts; `None`: the panel did not report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanelStats {
    pub family: Option<Family>,
    pub version: Option<String>,
    pub total: Option<u64>,
    pub active: Option<u64>,
    pub limited: Option<u64>,
    pub expired: Option<u64>,
    pub disabled: Option<u64>,
    pub on_hold: Option<u64>,
    pub online: Option<u64>,
    /// Bytes up and down through the panel (Marzban, PasarGuard: since the panel's host started;
    /// Marzneshin: its users' traffic of the last 30 days).
    pub traffic: Option<u64>,
}

const SYSTEM: &str = "/api/system";
const MARZNESHIN_USERS: &str = "/api/system/stats/users";
const MARZNESHIN_TRAFFIC: &str = "/api/system/stats/traffic";

impl PanelClient {
    /// The panel's counts. An unknown family is learnt on the way: the login tells Marzneshin,
    /// whose API has no `/api/system`.
    pub async fn stats(&self) -> Result<PanelStats, PanelError> {
        if self.family().await != Some(Family::Marzneshin) {
            match self.call(reqwest::Method::GET, SYSTEM, None, SYSTEM).await {
                Ok(answer) => {
                    let mut stats = system(&answer).map_err(|reason| unreadable(SYSTEM, reason))?;
                    // The names of the counts tell Marzban from PasarGuard, which a login does not.
                    stats.family = stats.family.or(self.family().await);
                    return Ok(stats);
                }
                Err(PanelError::Status { status: 404, .. }) if self.family().await == Some(Family::Marzneshin) => {}
                Err(err) => return Err(err),
            }
        }
        let users = self.call(reqwest::Method::GET, MARZNESHIN_USERS, None, MARZNESHIN_USERS).await?;
        let traffic = self.call(reqwest::Method::GET, MARZNESHIN_TRAFFIC, None, MARZNESHIN_TRAFFIC).await?;
        marzneshin(&users, &traffic).map_err(|reason| unreadable(MARZNESHIN_USERS, reason))
    }
}

/// Marzban's or PasarGuard's `GET /api/system`.
pub fn system(answer: &Value) -> Result<PanelStats, String> {
    if !answer.is_object() {
        return Err("not an object".to_owned());
    }
    let count = |names: [&str; 2]| names.iter().find_map(|name| number(answer.get(*name), MAX_COUNT));
    let bytes = |name: &str| number(answer.get(name), MAX_BYTES);
    let traffic = match (bytes("incoming_bandwidth"), bytes("outgoing_bandwidth")) {
        (None, None) => None,
        (up, down) => Some(up.unwrap_or(0).saturating_add(down.unwrap_or(0)).min(MAX_BYTES)),
    };
    let family = if answer.get("users_active").is_some() {
        Some(Family::Marzban)
    } else if answer.get("active_users").is_some() {
        Some(Family::PasarGuard)
    } else {
        None
    };
    Ok(PanelStats {
        family,
        version: answer.get("version").and_then(Value::as_str).map(version),
        total: count(["total_user", "total_users"]),
        active: count(["users_active", "active_users"]),
        limited: count(["users_limited", "limited_users"]),
        expired: count(["users_expired", "expired_users"]),
        disabled: count(["users_disabled", "disabled_users"]),
        on_hold: count(["users_on_hold", "on_hold_users"]),
        online: count(["online_users", "online_users"]),
        traffic,
    })
}

/// Marzneshin's `GET /api/system/stats/users` and `/traffic`.
pub fn marzneshin(users: &Value, traffic: &Value) -> Result<PanelStats, String> {
    if !users.is_object() {
        return Err("not an object".to_owned());
    }
    let count = |name: &str| number(users.get(name), MAX_COUNT);
    Ok(PanelStats {
        family: Some(Family::Marzneshin),
        version: None,
        total: count("total"),
        active: count("active"),
        limited: count("limited"),
        expired: count("expired"),
        disabled: None,
        on_hold: count("on_hold"),
        online: count("online"),
        traffic: number(traffic.get("total"), MAX_BYTES),
    })
}

/// A whole number from 0 up, clamped to `max`; anything else is `None`.
fn number(value: Option<&Value>, max: u64) -> Option<u64> {
    let value = value?;
    if let Some(n) = value.as_u64() {
        return Some(n.min(max));
    }
    // A float such as 1e30 or 12.0: whole and not negative, then clamped.
    let n = value.as_f64().filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0)?;
    Some(if n >= max as f64 { max } else { n as u64 })
}

fn version(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(VERSION_MAX_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_each_familys_counts() {
        let marzban = json!({"version": "0.8.4", "mem_total": 1, "mem_used": 1, "cpu_cores": 2, "cpu_usage": 3.5,
            "total_user": 12, "online_users": 3, "users_active": 7, "users_on_hold": 1, "users_disabled": 2,
            "users_expired": 1, "users_limited": 1, "incoming_bandwidth": 1000, "outgoing_bandwidth": 24,
            "incoming_bandwidth_speed": 0, "outgoing_bandwidth_speed": 0});
        let stats = system(&marzban).unwrap();
        assert_eq!((stats.total, stats.active, stats.on_hold), (Some(12), Some(7), Some(1)));
        assert_eq!((stats.online, stats.traffic, stats.version.as_deref()), (Some(3), Some(1024), Some("0.8.4")));

        let pasarguard = json!({"version": "5.2.1", "uptime_seconds": 5, "total_user": 4, "online_users": 0,
            "active_users": 2, "on_hold_users": 0, "disabled_users": 1, "expired_users": 0, "limited_users": 1,
            "incoming_bandwidth": 5, "outgoing_bandwidth": 5});
        let stats = system(&pasarguard).unwrap();
        assert_eq!((stats.active, stats.disabled, stats.limited, stats.traffic), (Some(2), Some(1), Some(1), Some(10)));
        assert_eq!(stats.family, Some(Family::PasarGuard), "told by the names of its counts");

        let users = json!({"total": 9, "active": 5, "on_hold": 1, "expired": 2, "limited": 1, "online": 4});
        let stats = marzneshin(&users, &json!({"step": 3600, "total": 77, "usages": []})).unwrap();
        assert_eq!((stats.active, stats.disabled, stats.online, stats.traffic), (Some(5), None, Some(4), Some(77)));
    }

    #[test]
    fn survives_hostile_numbers() {
        assert!(system(&json!([1, 2])).is_err());
        let odd = json!({"version": "x".repeat(500), "total_user": -3, "users_active": 1e30, "users_limited": 2.5,
            "users_expired": "7", "incoming_bandwidth": u64::MAX, "outgoing_bandwidth": u64::MAX});
        let stats = system(&odd).unwrap();
        assert_eq!((stats.total, stats.active, stats.limited, stats.expired), (None, Some(MAX_COUNT), None, None));
        assert_eq!(stats.traffic, Some(MAX_BYTES));
        assert_eq!(stats.version.unwrap().len(), VERSION_MAX_CHARS);
        assert!(marzneshin(&json!(null), &json!({})).is_err());
    }
}
