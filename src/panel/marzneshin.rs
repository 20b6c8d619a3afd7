//! Marzneshin's user, in the card's words. Its `UserResponse` has no `status`: it states
//! `enabled`, `expired`, `data_limit_reached` and an `expire_strategy` (`never`, `fixed_date` with
//! `expire_date`, or `start_on_first_use` with `usage_duration`), and the owner as
//! `owner_username`. The status is read as for its webhooks (docs/PANELS.md): `activated: false`
//! only means the user is not on the nodes right now, not on hold. A change of expiry is `PUT /api/users/{username}` with
//! `expire_strategy: fixed_date` and `expire_date` (an ISO time, UTC without an offset, as
//! Marzneshin writes its own); its `UserModify` requires the `username` too.
//!
//! Read as hostile input like the others: only the card's fields are kept, never `key`,
//! `subscription_url` or the links.

use reqwest::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::client::{unreadable, PanelClient};
use super::users::{
    clean, is_username, unix_seconds, Change, PanelUser, NOTE_MAX_CHARS, USERNAME_MAX_CHARS, USER_ANSWER_MAX_BYTES,
};
use super::PanelError;

/// The latest expiry written (Marzneshin's dates stop at year 9999).
const LATEST: i64 = 253_402_300_799;

impl PanelClient {
    /// `change` on `username` with Marzneshin's paths: `GET`/`PUT /api/users/{username}`,
    /// `POST .../reset`, `/enable`, `/disable`, `/revoke_sub`.
    pub(super) async fn marzneshin_call(&self, change: Change, username: &str) -> Result<PanelUser, PanelError> {
        let (method, action, name) = match change {
            Change::None => (Method::GET, "", "/api/users/{username}"),
            Change::Reset => (Method::POST, "/reset", "/api/users/{username}/reset"),
            Change::Revoke => (Method::POST, "/revoke_sub", "/api/users/{username}/revoke_sub"),
            Change::Enabled(true) => (Method::POST, "/enable", "/api/users/{username}/enable"),
            Change::Enabled(false) => (Method::POST, "/disable", "/api/users/{username}/disable"),
            Change::Expire(_) | Change::DataLimit(_) => (Method::PUT, "", "/api/users/{username}"),
        };
        if !is_username(username) {
            return Err(PanelError::Status { status: 404, path: name });
        }
        let body = match change {
            Change::Expire(at) => Some(expire(username, at)),
            // `UserModify` requires the username beside what changes.
            Change::DataLimit(limit) => Some(json!({ "username": username, "data_limit": limit })),
            _ => None,
        };
        let path = format!("/api/users/{username}{action}");
        let answer = self.call_capped(method, &path, body.as_ref(), name, USER_ANSWER_MAX_BYTES).await?;
        user(&answer).map_err(|reason| unreadable(name, reason))
    }
}

/// The user of a Marzneshin answer; `Err` when it has no username.
pub fn user(answer: &Value) -> Result<PanelUser, String> {
    let text = |key: &str, max: usize| answer.get(key).and_then(Value::as_str).map(|s| clean(s, max));
    let flag = |key: &str| answer.get(key).and_then(Value::as_bool);
    let number = |key: &str| answer.get(key).and_then(Value::as_f64).filter(|n| n.is_finite() && *n > 0.0);
    let username = text("username", USERNAME_MAX_CHARS).filter(|u| !u.is_empty()).ok_or("no username")?;
    let strategy = text("expire_strategy", 32).unwrap_or_default();
    let status = if flag("enabled") == Some(false) {
        "disabled"
    } else if flag("expired") == Some(true) {
        "expired"
    } else if flag("data_limit_reached") == Some(true) {
        "limited"
    } else if strategy == "start_on_first_use" {
        "on_hold"
    } else {
        "active"
    };
    Ok(PanelUser {
        username,
        status: status.to_owned(),
        used_traffic: number("used_traffic").map_or(0, |n| n as u64),
        data_limit: number("data_limit").map(|n| n as u64),
        expire: text("expire_date", 40).as_deref().and_then(unix_seconds),
        on_hold_expire_duration: (strategy == "start_on_first_use")
            .then(|| number("usage_duration").map(|n| n as u64))
            .flatten(),
        online_at: text("online_at", 40).as_deref().and_then(unix_seconds),
        note: text("note", NOTE_MAX_CHARS).filter(|note| !note.trim().is_empty()),
        owner: text("owner_username", 64),
    })
}

/// The body of `PUT /api/users/{username}` that sets the expiry to `expire` (unix seconds).
pub fn expire(username: &str, expire: i64) -> Value {
    let at = OffsetDateTime::from_unix_timestamp(expire.clamp(0, LATEST)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    json!({ "username": username, "expire_strategy": "fixed_date", "expire_date": date })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /api/users/alice` of Marzneshin (its `UserResponse`).
    fn alice() -> Value {
        json!({"id": 7, "username": "alice", "expire_strategy": "fixed_date", "expire_date": "2030-01-01T00:00:00",
            "usage_duration": null, "activation_deadline": null, "key": "0c6f0fbd8e6b4b1c9a1f2e3d4c5b6a79",
            "data_limit": 1_048_576, "data_limit_reset_strategy": "no_reset", "note": "vip", "sub_updated_at": null,
            "sub_last_user_agent": null, "online_at": "2026-11-27T17:39:50", "activated": true, "is_active": false,
            "expired": false, "data_limit_reached": true, "enabled": true, "used_traffic": 1_500_000,
            "lifetime_used_traffic": 1_500_000, "sub_revoked_at": null, "created_at": "2026-11-01T00:00:00",
            "service_ids": [1], "subscription_url": "/sub/alice/0c6f0fbd8e6b4b1c9a1f2e3d4c5b6a79",
            "owner_username": "root", "traffic_reset_at": null})
    }

    #[test]
    fn reads_a_marzneshin_user_in_the_cards_words_without_its_key() {
        let user = user(&alice()).unwrap();
        assert_eq!(
            (user.status.as_str(), user.expire, user.owner.as_deref()),
            ("limited", Some(1_893_456_000), Some("root"))
        );
        assert_eq!(
            (user.used_traffic, user.data_limit, user.online_at),
            (1_500_000, Some(1_048_576), Some(1_795_801_190))
        );
        assert!(!format!("{user:?}").contains("0c6f0fbd"));
        let mut held = alice();
        held["expire_strategy"] = json!("start_on_first_use");
        held["expire_date"] = Value::Null;
        held["usage_duration"] = json!(86_400);
        held["data_limit_reached"] = json!(false);
        let held = super::user(&held).unwrap();
        assert_eq!((held.status.as_str(), held.on_hold_expire_duration, held.expire), ("on_hold", Some(86_400), None));
        let mut off = alice();
        off["enabled"] = json!(false);
        assert_eq!(super::user(&off).unwrap().status, "disabled");
        assert!(super::user(&json!({"status": "active"})).is_err());
    }

    #[test]
    fn an_expiry_is_written_as_marzneshin_reads_it() {
        let body = expire("alice", 1_893_456_000);
        assert_eq!(
            body,
            json!({"username": "alice", "expire_strategy": "fixed_date", "expire_date": "2030-01-01T00:00:00"})
        );
        assert_eq!(expire("a", i64::MAX)["expire_date"], "9999-12-31T23:59:59");
    }
}
