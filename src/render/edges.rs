//! Edge events for `check`: what the panels really send at the edges of their models, so that a
//! template passing `check` does not fail (and fall back) on a real event.
//!
//! The bases are real captures (`edges.json`: one element per action and shape of every captured
//! panel in `tests/fixtures/`, secret values replaced by `"redacted"` or 0, a test keeps them equal
//! to the captures). Each is used as sent and with what its panel leaves null or out:
//!
//! * no owner: `user.admin` null (Marzban, PasarGuard: a user created by an admin defined only in
//!   the panel's env, whose `by.users_usage` is null too), `user.owner_username` null (Marzneshin);
//! * no actor: `by` null (PasarGuard's status changes, a panel's own jobs), except on the actions
//!   every panel's model requires it on ([`BY_REQUIRED`]);
//! * every nullable field of the panel's user model null at once, `by` and `reason` too;
//! * an on-hold user (for the actions an on-hold user can have);
//! * unlimited data and no expiry;
//! * no `user` at all on `user_deleted` (Marzban always, PasarGuard before 2.0).
//!
//! A field an action is about is never nulled (`expire` of `user_expired` and
//! `reached_days_left`, `data_limit` of `user_limited` and `reached_usage_percent`): no panel sends
//! those without it.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{Digest, DigestEntry};
use crate::event::Event;

const EDGES: &str = include_str!("edges.json");

/// The user fields each panel's model allows to be null (Marzban's and PasarGuard's
/// `UserResponse`, Marzneshin's `User`).
const MARZBAN_NULLABLE: &[&str] = &[
    "expire",
    "data_limit",
    "note",
    "sub_updated_at",
    "sub_last_user_agent",
    "online_at",
    "on_hold_expire_duration",
    "on_hold_timeout",
    "auto_delete_in_days",
    "next_plan",
    "admin",
];
const PASARGUARD_NULLABLE: &[&str] = &[
    "expire",
    "data_limit",
    "note",
    "sub_updated_at",
    "sub_last_user_agent",
    "online_at",
    "on_hold_expire_duration",
    "on_hold_timeout",
    "auto_delete_in_days",
    "next_plan",
    "admin",
    "edit_at",
    "hwid_limit",
];
const MARZNESHIN_NULLABLE: &[&str] = &[
    "data_limit",
    "expire_date",
    "note",
    "online_at",
    "sub_last_user_agent",
    "sub_revoked_at",
    "sub_updated_at",
    "traffic_reset_at",
    "usage_duration",
    "activation_deadline",
    "owner_username",
];

/// Actions an on-hold user can have (not expiring, limited or warned: an on-hold user has used
/// nothing and has no expiry yet).
const ON_HOLD_ACTIONS: &[&str] = &[
    "user_created",
    "user_updated",
    "user_deleted",
    "user_enabled",
    "user_disabled",
    "data_usage_reset",
    "subscription_revoked",
];

/// Actions on which every panel's model requires `by` (the admin who acted): Marzban's,
/// PasarGuard's and Marzneshin's `UserCreated`, `UserUpdated`, `UserDeleted` and
/// `UserSubscriptionRevoked`. Their `by` is never nulled: a template may use `by.username` there
/// unguarded. (`user_enabled`, `user_disabled` and `data_usage_reset` may come without one.)
const BY_REQUIRED: &[&str] = &["user_created", "user_updated", "user_deleted", "subscription_revoked"];

/// Seven days: the hold the captures use.
const HOLD_SECONDS: i64 = 7 * 24 * 3600;

/// One real capture, as stored in `edges.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Capture {
    /// The capture's file under `tests/fixtures/`.
    pub capture: String,
    /// Its place in the file's array (0 for a body that is one object).
    pub element: usize,
    /// The element, secret values replaced.
    pub body: Value,
}

/// An event `check` renders every template against, and what it is, for its messages.
#[derive(Debug, Clone)]
pub struct Edge {
    /// `marzban-0.8.4/user_created.json#0 with user.admin null (…)`.
    pub what: String,
    pub event: Event,
}

/// The captures the edge events are made from.
pub fn captures() -> Vec<Capture> {
    serde_json::from_str(EDGES).expect("edges.json is a list of captures")
}

/// Every edge event, received at `received_at`.
pub fn events(received_at: OffsetDateTime) -> Vec<Edge> {
    let mut edges = Vec::new();
    for capture in captures() {
        let name = format!("{}#{}", capture.capture, capture.element);
        for (variant, body) in variants(&capture) {
            // A variant no panel could send is not an edge; the unit tests make sure none is lost.
            if let Ok(event) = Event::from_value(body, received_at, None) {
                edges.push(Edge { what: format!("{name} ({}) {variant}", event.action), event });
            }
        }
    }
    edges
}

/// Edge digests for `action`: the last part of a split burst, with one user and no panel label.
pub fn digests(action: &str, received_at: OffsetDateTime) -> Vec<(String, Digest)> {
    let at = received_at.unix_timestamp() as f64;
    let digest = Digest {
        action: action.to_owned(),
        total: 41,
        count: 1,
        part: 2,
        parts: 2,
        usernames: vec!["alice".into()],
        events: vec![DigestEntry { username: "alice".into(), panel: None, event_time: at }],
        panel: None,
        event_time: at,
    };
    vec![("an edge digest: the last part of a burst of 41, one user, no panel label".into(), digest)]
}

/// The panel family of a capture, by the folder it was captured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Marzban,
    PasarGuard,
    Marzneshin,
}

impl Panel {
    fn of(capture: &str) -> Self {
        if capture.starts_with("pasarguard") {
            Panel::PasarGuard
        } else if capture.starts_with("marzneshin") {
            Panel::Marzneshin
        } else {
            Panel::Marzban
        }
    }

    fn nullable(self) -> &'static [&'static str] {
        match self {
            Panel::Marzban => MARZBAN_NULLABLE,
            Panel::PasarGuard => PASARGUARD_NULLABLE,
            Panel::Marzneshin => MARZNESHIN_NULLABLE,
        }
    }
}

/// The fields an action is about, which its panel always sends.
fn kept(action: &str) -> &'static [&'static str] {
    match action {
        "user_expired" | "reached_days_left" => &["expire", "expire_date"],
        "user_limited" | "reached_usage_percent" => &["data_limit"],
        "user_deactivated" => &["expire", "expire_date", "data_limit"],
        _ => &[],
    }
}

/// The capture as sent and its edge variants, each with what it is.
fn variants(capture: &Capture) -> Vec<(String, Value)> {
    let panel = Panel::of(&capture.capture);
    let body = &capture.body;
    let action = body.get("action").and_then(Value::as_str).unwrap_or_default();
    let user = body.get("user").and_then(Value::as_object);
    let by = body.get("by").and_then(Value::as_object);
    let mut variants = vec![("as sent".to_owned(), body.clone())];
    let edit = |what: &str, change: &dyn Fn(&mut Map<String, Value>)| {
        let mut changed = body.clone();
        if let Some(map) = changed.as_object_mut() {
            change(map);
        }
        (what.to_owned(), changed)
    };
    if user.is_some() {
        variants.push(match panel {
            Panel::Marzneshin => edit("with user.owner_username null (a user without an owner)", &|map| {
                set_user(map, "owner_username", Value::Null);
            }),
            _ => edit("with user.admin null (a user created by an admin defined in the panel's env)", &|map| {
                set_user(map, "admin", Value::Null);
                if let Some(Value::Object(by)) = map.get_mut("by") {
                    by.insert("users_usage".into(), Value::Null);
                }
            }),
        });
    }
    let by_nullable = !BY_REQUIRED.contains(&action);
    if by.is_some() && by_nullable {
        variants.push(edit("with by null (the panel acted by itself)", &|map| {
            map.insert("by".into(), Value::Null);
        }));
    }
    variants.push(edit("with every nullable field null", &|map| {
        for key in ["by", "reason"] {
            if map.contains_key(key) && (key != "by" || by_nullable) {
                map.insert(key.into(), Value::Null);
            }
        }
        for key in panel.nullable().iter().filter(|key| !kept(action).contains(key)) {
            set_user(map, key, Value::Null);
        }
    }));
    let on_hold = user.is_some_and(|user| {
        user.get("status").and_then(Value::as_str) == Some("on_hold")
            || user.get("expire_strategy").and_then(Value::as_str) == Some("start_on_first_use")
    });
    if user.is_some() && !on_hold && ON_HOLD_ACTIONS.contains(&action) {
        variants.push(edit("with the user on hold (7 days from the first connection)", &|map| hold(map, panel)));
    }
    if user.is_some() && kept(action).is_empty() {
        variants.push(edit("with unlimited data and no expiry", &|map| {
            set_user(map, "data_limit", Value::Null);
            match panel {
                Panel::Marzneshin => {
                    set_user(map, "expire_date", Value::Null);
                    set_user(map, "expire_strategy", Value::from("never"));
                }
                _ => set_user(map, "expire", Value::Null),
            }
        }));
    }
    if action == "user_deleted" && user.is_some() && panel != Panel::Marzneshin {
        variants.push(edit("without user (as Marzban and PasarGuard before 2.0 send it)", &|map| {
            map.remove("user");
        }));
    }
    variants
}

/// Sets `key` of the body's `user`, if it has one.
fn set_user(map: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(Value::Object(user)) = map.get_mut("user") {
        user.insert(key.into(), value);
    }
}

/// Puts the body's user on hold, in its panel's words.
fn hold(map: &mut Map<String, Value>, panel: Panel) {
    let Some(Value::Object(user)) = map.get_mut("user") else {
        return;
    };
    let created = user.get("created_at").cloned().unwrap_or(Value::Null);
    match panel {
        Panel::Marzneshin => {
            user.insert("expire_strategy".into(), Value::from("start_on_first_use"));
            user.insert("expire_date".into(), Value::Null);
            user.insert("usage_duration".into(), Value::from(HOLD_SECONDS));
            user.insert("activation_deadline".into(), created);
        }
        Panel::Marzban | Panel::PasarGuard => {
            user.insert("status".into(), Value::from("on_hold"));
            user.insert("expire".into(), Value::Null);
            user.insert("on_hold_expire_duration".into(), Value::from(HOLD_SECONDS));
            user.insert("on_hold_timeout".into(), created);
            user.insert("online_at".into(), Value::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_of_every_capture_is_an_event() {
        let now = OffsetDateTime::now_utc();
        for capture in captures() {
            for (variant, body) in variants(&capture) {
                let event = Event::from_value(body, now, None);
                assert!(event.is_ok(), "{}#{} {variant}: {event:?}", capture.capture, capture.element);
            }
        }
    }

    #[test]
    fn the_edges_cover_every_panel_and_the_shapes_the_issue_names() {
        let edges = events(OffsetDateTime::now_utc());
        let has = |what: &dyn Fn(&Edge) -> bool| edges.iter().any(what);
        assert!(has(&|e| e.event.admin.is_none() && e.event.user.is_some() && e.event.by.is_some()), "env sudo");
        assert!(has(&|e| e.event.action.as_str() == "user_deleted" && e.event.user.is_none()), "no user");
        assert!(has(&|e| e.what.starts_with("pasarguard") && e.event.by.is_none()), "PasarGuard by: null");
        assert!(has(&|e| e.what.starts_with("marzneshin") && e.event.admin.is_none()), "Marzneshin, no owner");
        assert!(has(&|e| e.event.user.as_ref().is_some_and(|u| u.status.as_deref() == Some("on_hold"))));
        assert!(has(&|e| e.event.user.as_ref().is_some_and(|u| u.expire.is_none() && u.data_limit.is_none())));
        for action in crate::event::KNOWN_ACTIONS {
            assert!(has(&|e| e.event.action.as_str() == *action), "no edge event for {action}");
        }
    }

    #[test]
    fn by_is_null_only_where_a_panel_sends_it_so() {
        // Every panel's model requires `by` on these (Marzban's and PasarGuard's UserCreated,
        // UserUpdated, UserDeleted, UserSubscriptionRevoked; Marzneshin's likewise).
        for edge in events(OffsetDateTime::now_utc()) {
            if BY_REQUIRED.contains(&edge.event.action.as_str()) {
                assert!(edge.event.by.is_some(), "{}", edge.what);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        for action in BY_REQUIRED {
            let title = format!("title = \"{{{{ username }}}} ({action} by {{{{ by.username }}}})\"\n");
            std::fs::write(dir.path().join(format!("{action}.toml")), title).unwrap();
        }
        let loaded = crate::render::Renderer::load(dir.path(), crate::render::Lang::En);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let problems = loaded.renderer.check();
        assert!(problems.is_empty(), "no false alarm for what no panel sends: {problems:#?}");
    }

    #[test]
    fn an_action_keeps_the_field_it_is_about() {
        for edge in events(OffsetDateTime::now_utc()) {
            let user = edge.event.user.as_ref();
            match edge.event.action.as_str() {
                "user_expired" | "reached_days_left" => {
                    assert!(user.and_then(|u| u.expire).is_some(), "{}", edge.what)
                }
                "user_limited" | "reached_usage_percent" => {
                    assert!(user.and_then(|u| u.data_limit).is_some(), "{}", edge.what)
                }
                _ => {}
            }
        }
    }
}
