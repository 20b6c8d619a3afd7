//! One user of the panel, as the bot's user card shows it, and the changes an admin may make from
//! Discord: reset the usage, enable or disable, extend the expiry, revoke the subscription.
//!
//! Marzban and PasarGuard: `GET`/`PUT /api/user/{username}`, `POST /api/user/{username}/reset`
//! and `/revoke_sub`; each answers the user as it now is. Marzneshin's paths and fields differ
//! (`/api/users/{username}`, `/enable`, `/disable`, `expire_date`) and are not built yet.
//!
//! The answer is read as hostile input and only the fields the card shows are kept: never the
//! subscription link, the proxy credentials (`proxies`, `links`) or the owner's webhook.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Iso8601;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::client::{unreadable, PanelClient};
use super::{Family, PanelError};

/// A username is at most this many characters (Marzban allows 32; PasarGuard and Marzneshin fewer).
pub const USERNAME_MAX_CHARS: usize = 64;

/// A user's note is cut to this many characters.
pub const NOTE_MAX_CHARS: usize = 500;

/// The most days an expiry may be extended by at once (ten years).
pub const EXTEND_MAX_DAYS: u32 = 3650;

/// The largest answer read for one user: Marzban's user is 1 to 3 KiB (a link per proxy and
/// inbound; a hundred inbounds are about 40 KiB). A larger answer is an error, not read on.
pub const USER_ANSWER_MAX_BYTES: usize = 256 << 10;

/// One user as the panel reports them, without a single secret field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelUser {
    pub username: String,
    /// `active`, `disabled`, `limited`, `expired`, `on_hold` (anything else cut to 32 characters).
    pub status: String,
    pub used_traffic: u64,
    /// `None`: no data limit (the panel's `0` or `null`).
    pub data_limit: Option<u64>,
    /// Unix seconds; `None`: never expires.
    pub expire: Option<i64>,
    /// On hold: the seconds of validity that start at the first connection.
    pub on_hold_expire_duration: Option<u64>,
    /// Unix seconds of the last connection; `None`: never connected.
    pub online_at: Option<i64>,
    pub note: Option<String>,
    /// The admin who owns the user.
    pub owner: Option<String>,
}

/// Whether `name` may be a username: 1 to [`USERNAME_MAX_CHARS`] ASCII letters, digits, `_`, `-`,
/// `.` or `@`, with a letter or digit among them (so never `..`, nothing that changes the path).
pub fn is_username(name: &str) -> bool {
    (1..=USERNAME_MAX_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
        && name.bytes().any(|b| b.is_ascii_alphanumeric())
}

impl PanelClient {
    /// The user named `username`; a user the panel does not know is `Status { status: 404, .. }`.
    pub async fn user(&self, username: &str) -> Result<PanelUser, PanelError> {
        self.user_call(Method::GET, username, "", None).await
    }

    /// Resets the user's used traffic to 0.
    pub async fn reset_usage(&self, username: &str) -> Result<PanelUser, PanelError> {
        self.user_call(Method::POST, username, "/reset", None).await
    }

    /// Revokes the user's subscription (a new link; the old one stops working).
    pub async fn revoke_subscription(&self, username: &str) -> Result<PanelUser, PanelError> {
        self.user_call(Method::POST, username, "/revoke_sub", None).await
    }

    /// Enables (`active`) or disables the user.
    pub async fn set_enabled(&self, username: &str, enabled: bool) -> Result<PanelUser, PanelError> {
        let status = if enabled { "active" } else { "disabled" };
        self.user_call(Method::PUT, username, "", Some(&json!({ "status": status }))).await
    }

    /// Moves the expiry `days` days later, counted from now when it has passed. A user who never
    /// expires stays so (the answer is the user unchanged).
    pub async fn extend(&self, username: &str, days: u32) -> Result<PanelUser, PanelError> {
        let user = self.user(username).await?;
        let Some(expire) = user.expire else {
            return Ok(user);
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let seconds = i64::from(days.min(EXTEND_MAX_DAYS)) * 86_400;
        let expire = expire.max(now).saturating_add(seconds);
        self.user_call(Method::PUT, username, "", Some(&json!({ "expire": expire }))).await
    }

    pub(super) async fn user_call(
        &self,
        method: Method,
        username: &str,
        action: &'static str,
        body: Option<&Value>,
    ) -> Result<PanelUser, PanelError> {
        let name = match action {
            "/reset" => "/api/user/{username}/reset",
            "/revoke_sub" => "/api/user/{username}/revoke_sub",
            _ => "/api/user/{username}",
        };
        if !is_username(username) {
            return Err(PanelError::Status { status: 404, path: name });
        }
        if self.family().await == Some(Family::Marzneshin) {
            return Err(PanelError::Unsupported("user actions on Marzneshin"));
        }
        let path = format!("/api/user/{username}{action}");
        let answer = self.call_capped(method, &path, body, name, USER_ANSWER_MAX_BYTES).await?;
        user(&answer).map_err(|reason| unreadable(name, reason))
    }
}

/// The user of an answer; `Err` when it has no username or status.
pub fn user(answer: &Value) -> Result<PanelUser, String> {
    let text = |key: &str, max: usize| answer.get(key).and_then(Value::as_str).map(|s| clean(s, max));
    let username = text("username", USERNAME_MAX_CHARS).filter(|u| !u.is_empty()).ok_or("no username")?;
    let status = text("status", 32).ok_or("no status")?;
    let number = |key: &str| answer.get(key).and_then(Value::as_f64).filter(|n| n.is_finite() && *n > 0.0);
    Ok(PanelUser {
        username,
        status,
        used_traffic: number("used_traffic").map_or(0, |n| n as u64),
        data_limit: number("data_limit").map(|n| n as u64),
        expire: number("expire").map(|n| n as i64).or_else(|| text("expire", 40).as_deref().and_then(unix_seconds)),
        on_hold_expire_duration: number("on_hold_expire_duration").map(|n| n as u64),
        online_at: text("online_at", 40).as_deref().and_then(unix_seconds),
        note: text("note", NOTE_MAX_CHARS).filter(|note| !note.trim().is_empty()),
        owner: answer
            .get("admin")
            .and_then(|admin| admin.get("username"))
            .and_then(Value::as_str)
            .map(|s| clean(s, 64)),
    })
}

/// An ISO 8601 time as unix seconds: with an offset (PasarGuard), or without one, meaning UTC
/// (Marzban's `2026-11-27T17:39:50.120875`).
fn unix_seconds(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Iso8601::DEFAULT)
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc))
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// `text` without control characters, cut to `max` characters. Markdown stays: the card escapes it.
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n').take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_marzban_user_without_its_secrets() {
        let answer = json!({"username": "alice", "status": "limited", "used_traffic": 1_500_000,
            "data_limit": 1_000_000, "expire": 1_798_393_190, "online_at": "2026-11-27T17:39:50.120875",
            "note": "**vip** @everyone", "admin": {"username": "harness", "discord_webhook": "https://discord.com/api/webhooks/1/tok"},
            "subscription_url": "/sub/aDViNWNmNDRfbmV4dGF1dG8sMTc5NTgwMTE5MgDi5YR0K5s6",
            "links": ["vless://281f2177-afa0-4b3d-a73b-d00e8d3b7c2c@127.0.0.1:20001"],
            "proxies": {"vless": {"id": "281f2177-afa0-4b3d-a73b-d00e8d3b7c2c"}}});
        let user = user(&answer).unwrap();
        assert_eq!(
            (user.used_traffic, user.data_limit, user.expire),
            (1_500_000, Some(1_000_000), Some(1_798_393_190))
        );
        assert_eq!(user.online_at, Some(1_795_801_190));
        assert_eq!(user.owner.as_deref(), Some("harness"));
        let shown = format!("{user:?}");
        for secret in ["aDViNWNm", "281f2177", "webhooks"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn survives_hostile_answers() {
        assert!(user(&json!([])).is_err());
        assert!(user(&json!({"username": "", "status": "active"})).is_err());
        let odd = json!({"username": "x".repeat(500), "status": "active\u{7}", "used_traffic": -5,
            "data_limit": 0, "expire": "soon", "online_at": 5, "note": "   "});
        let user = user(&odd).unwrap();
        assert_eq!(user.username.len(), USERNAME_MAX_CHARS);
        assert_eq!((user.status.as_str(), user.used_traffic, user.data_limit), ("active", 0, None));
        assert_eq!((user.expire, user.online_at, user.note), (None, None, None));
    }

    #[test]
    fn a_username_cannot_change_the_path() {
        assert!(is_username("alice_01") && is_username("mail.user@example.com"));
        for bad in ["", "..", "a/b", "a?x=1", "a b", "a%2e", &"a".repeat(65)] {
            assert!(!is_username(bad), "{bad}");
        }
    }
}
